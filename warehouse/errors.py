"""Errors raised by the warehouse.

    WarehouseError
     ├── WarehouseClosedError      use after close()
     ├── SchemaVersionError        the file was written by a newer Switchyard
     └── WarehouseConfigError (ValueError)
"""

from __future__ import annotations


class WarehouseError(Exception):
    """Base class of every warehouse error."""

    status = 500


class WarehouseClosedError(WarehouseError):
    """The warehouse was used after close()."""

    status = 503


class SchemaVersionError(WarehouseError):
    """The database file has a schema this version cannot read."""


class WarehouseConfigError(WarehouseError, ValueError):
    """Invalid warehouse configuration."""

    status = 400
