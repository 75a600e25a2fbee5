"""Errors raised by the bandit.

    BanditError
     ├── RouterStringError (ValueError)   a router string that cannot be parsed (status 400)
     │    └── RouterStringPartError       ... naming the offending part and its position
     ├── NoCandidateError                 constraints leave no endpoint (status 422)
     ├── ModelStateError                  a checkpoint that cannot be loaded
     ├── UnknownEventError                feedback/outcome for an unknown event (status 404)
     └── FeedbackWindowError              feedback after the event's window closed (409)
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


class RouterStringPartError(RouterStringError):
    """One part of a router string is wrong; ``part`` and ``position`` (0-based) say where."""

    def __init__(self, message: str, *, part: str, position: int) -> None:
        super().__init__(f"{message} (part {part!r} at position {position})")
        self.part = part
        self.position = position


class UnknownEventError(BanditError):
    """Feedback or an outcome names an event id that was never logged."""

    status = 404


class FeedbackWindowError(BanditError):
    """Feedback arrived after the event's feedback window closed; ``reason`` says how late."""

    status = 409

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
