"""Errors raised by the warehouse.

    WarehouseError
     ├── WarehouseClosedError      use after close()
     ├── SchemaVersionError        the file was written by a newer Switchyard
     ├── WarehouseWriteError       a batch could not be written (its rows were dropped)
     ├── WarehouseQueryError (ValueError)  query() was given a statement that writes
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


class WarehouseWriteError(WarehouseError):
    """A batch could not be written; its rows were dropped (reported by the next flush)."""


class WarehouseQueryError(WarehouseError, ValueError):
    """``query()`` runs reads only; writes go through the single writer."""

    status = 400


class WarehouseConfigError(WarehouseError, ValueError):
    """Invalid warehouse configuration."""

    status = 400
