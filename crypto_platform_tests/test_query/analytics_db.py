"""Analytics DuckDB files for the query, dashboard and alert tests, filled from real trades.

:func:`fill_analytics` is the one place that turns trades into ``trade_analytics_1m`` rows: the
warehouse's own analytics over the trades, written with the pipeline's ``replace_minutes``.
Tests that must see the whole Dagster pipeline fill the file by materialising its assets.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from crypto_platform import warehouse
from crypto_platform.core.trades import Trade, ms_to_datetime


def trades_table(trades: Iterable[Trade]) -> pa.Table:
    """Trades in the lake's column types (exact DECIMAL(18, 8) prices and quantities)."""
    trades = list(trades)
    dec = pa.decimal128(18, 8)
    return pa.table(
        {
            "symbol": pa.array([t.symbol for t in trades], pa.string()),
            "trade_id": pa.array([t.trade_id for t in trades], pa.int64()),
            "price": pa.array([t.price for t in trades], dec),
            "qty": pa.array([t.qty for t in trades], dec),
            "trade_time": pa.array(
                [ms_to_datetime(t.trade_time_ms) for t in trades], pa.timestamp("ms", tz="UTC")
            ),
            "buyer_is_maker": pa.array([t.buyer_is_maker for t in trades], pa.bool_()),
        }
    )


def fill_analytics(path: Path, trades: Iterable[Trade]) -> int:
    """Compute the minutes of ``trades`` and write them to ``path``; returns the rows written.

    Written the pipeline's way (:func:`crypto_platform.warehouse.replace_minutes`): every row of
    those minutes is replaced in one transaction, so pass all symbols' trades of a minute.
    """
    rows = warehouse.minute_analytics(trades_table(trades))
    minutes_ms = {int(ts.timestamp() * 1000) for ts in rows.column("window_start").to_pylist()}
    with warehouse.connection(path) as con:
        warehouse.replace_minutes(con, rows, minutes_ms)
    return rows.num_rows
