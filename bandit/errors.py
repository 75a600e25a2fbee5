"""Errors raised by the bandit.

    BanditError
     ├── RouterStringError (ValueError)   a router string that cannot be parsed (status 400)
     ├── NoCandidateError                 constraints leave no endpoint (status 422)
     └── ModelStateError                  a checkpoint that cannot be loaded
"""

from __future__ import annotations


class BanditError(Exception):
    """Base class of every bandit error."""

    status = 500


class RouterStringError(BanditError, ValueError):
    """A router string that cannot be parsed; the message says which part and why."""

    status = 400


class NoCandidateError(BanditError):
    """The constraints leave no endpoint to route to."""

    status = 422


class ModelStateError(BanditError):
    """A model checkpoint that cannot be loaded or saved."""
