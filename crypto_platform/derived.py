"""The DuckDB tables derived from ``trade_analytics_1m``: trends and the hourly/daily roll-ups.

Each is rebuilt for a time range ``[start, end)`` from the minute rows already in the database
(formulas in :mod:`crypto_platform.core.trends` and :mod:`crypto_platform.core.rollups`) and
replaced in one transaction, so a reader sees the old rows or the new ones, never a mix, and a
rebuild of the same minutes gives the same rows.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crypto_platform import warehouse
from crypto_platform.core import rollups, trends
from crypto_platform.core.analytics import ANALYTICS_TABLE


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _range(start_ms: int, end_ms: int) -> dict[str, datetime]:
    return {"start": _utc(start_ms), "end": _utc(end_ms)}


def prepare(conn: duckdb.DuckDBPyConnection) -> None:
    """UTC session (the SQL truncates to hours and days) and every table in place."""
    conn.execute("SET TimeZone = 'UTC'")
    warehouse.ensure_table(conn)
    conn.execute(trends.trends_table_ddl())
    for unit in rollups.ROLLUP_TABLES:
        conn.execute(rollups.rollup_table_ddl(unit))


def trend_rows(conn: duckdb.DuckDBPyConnection, start_ms: int, end_ms: int) -> pa.Table:
    """The trends of the minutes in ``[start_ms, end_ms)``, reading the look-back before it."""
    source = (
        f"(SELECT * FROM {ANALYTICS_TABLE} WHERE window_start >= $lookback AND window_start < $end)"
    )
    params = {"lookback": _utc(start_ms - trends.LOOKBACK_MS), "end": _utc(end_ms)}
    table = conn.sql(trends.window_sql(source), params=params).to_arrow_table()
    table = _with_emas(table)
    keep = pc.greater_equal(table["window_start"], pa.scalar(_utc(start_ms)))
    return table.filter(keep)


def _with_emas(table: pa.Table) -> pa.Table:
    """Fill the EMA and MACD columns, symbol by symbol (rows come sorted by symbol, minute)."""
    if table.num_rows == 0:
        return table
    minutes = table["window_start"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    minutes = minutes.to_numpy()
    closes = table["close"].to_numpy()
    symbols = table["symbol"].to_numpy(zero_copy_only=False)
    bounds = np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1], True])
    emas = {span: np.empty(len(closes)) for span in trends.EMA_SPANS}
    for first, last in itertools.pairwise(bounds):
        for span in trends.EMA_SPANS:
            emas[span][first:last] = trends.ema(minutes[first:last], closes[first:last], span)
    for span in trends.EMA_SPANS:
        table = table.set_column(
            table.schema.get_field_index(f"ema_{span}"), f"ema_{span}", pa.array(emas[span])
        )
    fast, slow = (emas[span] for span in trends.EMA_SPANS)
    return table.set_column(table.schema.get_field_index("macd"), "macd", pa.array(fast - slow))


def rollup_rows(
    conn: duckdb.DuckDBPyConnection, unit: rollups.Unit, start_ms: int, end_ms: int
) -> pa.Table:
    """The ``unit`` roll-ups of the minutes in ``[start_ms, end_ms)`` (whole units)."""
    return conn.sql(rollups.rollup_sql(unit), params=_range(start_ms, end_ms)).to_arrow_table()


def replace_range(
    conn: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, start_ms: int, end_ms: int
) -> int:
    """Delete ``table``'s rows with ``window_start`` in the range, insert ``rows``; one
    transaction. Returns how many rows were deleted."""
    columns = ", ".join(rows.column_names)
    conn.register("_derived_rows", rows)
    try:
        conn.execute("BEGIN TRANSACTION")
        deleted = conn.execute(
            f"DELETE FROM {table} WHERE window_start >= $start AND window_start < $end",
            _range(start_ms, end_ms),
        ).fetchone()
        conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _derived_rows")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("_derived_rows")
    return int(deleted[0]) if deleted else 0


def rebuild_trends(conn: duckdb.DuckDBPyConnection, start_ms: int, end_ms: int) -> pa.Table:
    """Recompute and replace the trends of ``[start_ms, end_ms)``; returns the new rows."""
    prepare(conn)
    rows = trend_rows(conn, start_ms, end_ms)
    replace_range(conn, trends.TRENDS_TABLE, rows, start_ms, end_ms)
    return rows


def rebuild_rollups(
    conn: duckdb.DuckDBPyConnection, unit: rollups.Unit, start_ms: int, end_ms: int
) -> pa.Table:
    """Recompute and replace the ``unit`` roll-ups of ``[start_ms, end_ms)``; the new rows."""
    prepare(conn)
    rows = rollup_rows(conn, unit, start_ms, end_ms)
    replace_range(conn, rollups.ROLLUP_TABLES[unit], rows, start_ms, end_ms)
    return rows
