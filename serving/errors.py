"""Errors raised by the sidecar.

    ServingError
     └── (HTTP errors are added with the sidecar)
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class of every serving error."""

    status = 500
