"""Errors raised by the collector.

Provider failures are never raised: they become ``ProbeResult`` rows. What is raised here is
the user's to fix: a bad catalog or bad settings.

    CollectorError
     └── CatalogError (ValueError)   a catalog file that cannot be loaded, naming file and field
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base class of every collector error."""

    status = 500


class CatalogError(CollectorError, ValueError):
    """A catalog file is missing, unreadable or invalid; the message names file and field."""

    status = 400
