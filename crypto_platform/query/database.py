"""Opening the analytics database for reading, while the pipeline may be writing to it.

DuckDB lets one process write a file or several read it, never both at once: a reader that
arrives while the pipeline holds the write lock gets an ``IOException`` ("Could not set lock on
file ... Conflicting lock is held in <program> (PID n)"). The pipeline holds the lock only for
the moment it replaces minutes, so readers retry briefly (``crypto_platform.warehouse``) and
then say who holds it.

Reader connections are read-only and have external access off: no ``COPY ... TO``, no
``ATTACH``, no reading or writing other files, no extension downloads. Whatever SQL a user types,
the database and the machine stay as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from crypto_platform.warehouse import WarehouseLockedError, connect

LOCK_WAIT_S = 5.0
# Read-only, and no files but the database: COPY TO, ATTACH, read_csv and INSTALL all fail.
READER_CONFIG = {"enable_external_access": False}


class QueryError(ValueError):
    """A question cannot be answered; the message says why and what to do."""


class DatabaseBusyError(QueryError):
    """Another process held the write lock for longer than the reader was willing to wait."""


def connect_read_only(path: Path, wait_s: float = LOCK_WAIT_S) -> duckdb.DuckDBPyConnection:
    """A read-only, sandboxed connection, retrying for ``wait_s`` while a writer holds the file."""
    if not path.is_file():
        raise QueryError(
            f"no analytics database at {path}: start the platform (make run) or point "
            "CRYPTO_PLATFORM_DUCKDB_PATH at one"
        )
    try:
        con = connect(path, read_only=True, timeout_s=wait_s, config=READER_CONFIG)
    except WarehouseLockedError as exc:
        raise DatabaseBusyError(str(exc)) from None
    except duckdb.Error as exc:
        raise QueryError(f"cannot open {path}: {exc}") from None
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextmanager
def reading(path: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """Hold a read-only connection only as long as the block, so writers are not kept out."""
    con = connect_read_only(path, wait_s)
    try:
        yield con
    finally:
        con.close()


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
        [table],
    ).fetchone()
    return bool(found and found[0])
