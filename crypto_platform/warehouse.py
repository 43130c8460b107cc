"""The DuckDB analytics database: lock-aware connections, the table, minutes replaced atomically.

DuckDB lets one process at a time open a database file for writing, and a read-only opener
also needs the lock to be free. Writers (Dagster runs, the Spark sink) are serialised by a
Dagster concurrency pool; anything that still meets the lock (a reader in the query CLI or the
dashboard, a run started by hand) waits briefly and tries again, with a bound: a lock that
does not clear becomes :class:`WarehouseLockedError`, which names the process holding it.
Writers hold the file only for one short transaction, so readers never wait long.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from crypto_platform.core.analytics import (
    ANALYTICS_COLUMNS,
    ANALYTICS_TABLE,
    analytics_table_ddl,
    minute_analytics_sql,
)

WRITE_LOCK_TIMEOUT_S = 60.0
READ_LOCK_TIMEOUT_S = 10.0
FIRST_RETRY_S = 0.02
MAX_RETRY_S = 0.5
_PID_RE = re.compile(r"PID (\d+)")


class WarehouseLockedError(RuntimeError):
    """The database file stayed locked by another process for longer than the bound."""


def lock_holder(message: str) -> str:
    """``PID 123 (python -m dagster ...)`` from DuckDB's lock error, as far as it can be told."""
    match = _PID_RE.search(message)
    if not match:
        return "an unknown process"
    pid = match.group(1)
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return f"PID {pid}"
    return f"PID {pid} ({command})" if command else f"PID {pid}"


def _is_lock_error(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


def connect(
    path: Path,
    read_only: bool = False,
    timeout_s: float | None = None,
    config: dict[str, Any] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open ``path``, retrying while another process holds the lock (at most ``timeout_s``)."""
    if timeout_s is None:
        timeout_s = READ_LOCK_TIMEOUT_S if read_only else WRITE_LOCK_TIMEOUT_S
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = FIRST_RETRY_S
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise WarehouseLockedError(
                    f"{path} is still locked by {lock_holder(str(exc))} after {timeout_s:.0f}s; "
                    "stop that process or wait for it to finish"
                ) from exc
        time.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_S)


@contextmanager
def connection(
    path: Path, read_only: bool = False, timeout_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`connect`, closed on exit (so the lock is released as soon as possible)."""
    conn = connect(path, read_only=read_only, timeout_s=timeout_s)
    try:
        yield conn
    finally:
        conn.close()


def ensure_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(analytics_table_ddl())


def minute_analytics(trades: pa.Table) -> pa.Table:
    """The analytics rows of ``trades`` (lake columns), computed by an in-memory DuckDB."""
    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        conn.register("trades", trades)
        return conn.sql(minute_analytics_sql("trades")).to_arrow_table()
    finally:
        conn.close()


def _timestamps(minutes_ms: Iterable[int]) -> pa.Table:
    values = pa.array(sorted(set(minutes_ms)), pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    return pa.table({"window_start": values})


def replace_minutes(
    conn: duckdb.DuckDBPyConnection, rows: pa.Table, minutes_ms: Iterable[int]
) -> int:
    """Delete the rows of ``minutes_ms`` and insert ``rows`` in one transaction; rows deleted."""
    minutes = _timestamps(minutes_ms)
    unexpected = set(rows.column_names) ^ set(ANALYTICS_COLUMNS)
    if unexpected:
        raise ValueError(f"analytics rows have the wrong columns: {sorted(unexpected)}")
    ensure_table(conn)
    conn.register("_new_rows", rows)
    conn.register("_minutes", minutes)
    try:
        conn.execute("BEGIN TRANSACTION")
        deleted = conn.execute(
            f"DELETE FROM {ANALYTICS_TABLE} WHERE window_start IN "
            "(SELECT window_start FROM _minutes)"
        ).fetchone()
        conn.execute(
            f"INSERT INTO {ANALYTICS_TABLE} ({', '.join(ANALYTICS_COLUMNS)}) "
            f"SELECT {', '.join(ANALYTICS_COLUMNS)} FROM _new_rows"
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("_new_rows")
        conn.unregister("_minutes")
    return int(deleted[0]) if deleted else 0


def read_minutes(conn: duckdb.DuckDBPyConnection, start_ms: int, end_ms: int) -> pa.Table:
    """Analytics rows with ``window_start`` in ``[start_ms, end_ms)``, by symbol and minute."""
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    end = datetime.fromtimestamp(end_ms / 1000, tz=UTC)
    return conn.sql(
        f"SELECT * FROM {ANALYTICS_TABLE} WHERE window_start >= $start AND window_start < $end "
        "ORDER BY symbol, window_start",
        params={"start": start, "end": end},
    ).to_arrow_table()
