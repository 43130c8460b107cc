"""Replay trades into a real topic; compute the minutes the Spark job must write, two ways.

- :func:`dagster_path_rows`: the Dagster assets' computation on the same Kafka values (the
  lake's batch parser, its de-duplication, then ``warehouse.minute_analytics``: the shared SQL
  on DuckDB);
- :func:`decimal_rows`: an independent one, pandas for the grouping and ``Decimal`` for sums.

Rows are compared per (symbol, minute): counts, ids, flags and OHLC exactly, the other floats
to 1e-9 relative.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
from confluent_kafka import Producer

from crypto_platform import warehouse
from crypto_platform.core.analytics import ANALYTICS_COLUMNS, ANALYTICS_TABLE
from crypto_platform.core.lake import deduplicate
from crypto_platform.core.progress import MINUTE_MS
from crypto_platform.core.trade_batches import parse_events
from crypto_platform.core.trades import Trade, trade_to_event
from crypto_platform.spark.options import JobOptions

Key = tuple[str, int]  # (symbol, window start in epoch ms)
Row = dict[str, Any]

EXACT_COLUMNS = (
    "trade_count", "first_trade_id", "last_trade_id", "is_complete",
    "open", "high", "low", "close", "window_end",
)  # fmt: skip
FLOAT_COLUMNS = tuple(c for c in ANALYTICS_COLUMNS[3:] if c not in EXACT_COLUMNS)
REL_TOL = 1e-9
# Message timestamps are trade times: replayed trades older than the retention (7 days by
# default) would be deleted by the broker's first retention check, 30 s after it starts.
KEEP_FOREVER = {"retention.ms": "-1"}
LATENESS_S = 5.0
JOB_TIMEOUT_S = 240.0


def trade_value(trade: Trade) -> bytes:
    """The Kafka value the ingestion service writes for a trade (Binance's wire JSON)."""
    return json.dumps(trade_to_event(trade), separators=(",", ":")).encode()


def produce(bootstrap: str, topic: str, records: Iterable[Trade | bytes]) -> int:
    """Send trades (key = symbol, timestamp = trade time) or raw values, in this order."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    count = 0
    for record in records:
        if isinstance(record, Trade):
            producer.produce(
                topic, trade_value(record), key=record.symbol, timestamp=record.trade_time_ms
            )
        else:
            producer.produce(topic, record, key=b"BTCUSDT")
        count += 1
        producer.poll(0)
    assert producer.flush(30) == 0, "the broker did not acknowledge every record"
    return count


def run_to_end(spark: Any, options: JobOptions) -> dict[str, int]:
    """Run the job's query until AvailableNow ends it; totals of its progress metrics."""
    from crypto_platform.spark.job import start
    from crypto_platform.spark.runner import await_query, make_sink

    query = start(spark, options, make_sink(options))
    await_query(query, timeout_s=JOB_TIMEOUT_S)
    totals = {"records": 0, "rejected": 0, "duplicates": 0, "late": 0}
    for progress in query.recentProgress:
        totals["records"] += progress.numInputRows
        totals["rejected"] += progress.observedMetrics["input"]["rejected"]
        for operator in progress.stateOperators:
            totals["duplicates"] += operator.customMetrics.get("numDroppedDuplicateRows", 0)
            totals["late"] += operator.numRowsDroppedByWatermark
    return totals


def minute_of(ms: int) -> int:
    return ms - ms % MINUTE_MS


def closing_trade(last: Trade, lateness_s: float) -> Trade:
    """A trade exactly ``lateness`` past the end of ``last``'s minute, next id of its symbol.

    A replay ends, the market does not: this trade lifts the watermark (newest trade time minus
    the lateness) to the end of ``last``'s minute, so every minute up to it is written. Its own
    minute stays open, so it is in no row the tests compare.
    """
    closes_at = minute_of(last.trade_time_ms) + MINUTE_MS + round(lateness_s * 1000)
    return replace(
        last, trade_id=last.trade_id + 1, trade_time_ms=closes_at, event_time_ms=closes_at
    )


def with_duplicates(trades: list[Trade], every: int, lag: int) -> list[Trade]:
    """``trades`` with every ``every``-th trade sent again ``lag`` records later (a resend)."""
    out = list(trades)
    for index in range(len(trades) - 1, -1, -every):
        out.insert(min(index + lag, len(out)), trades[index])
    return out


def dagster_path_rows(trades: Iterable[Trade]) -> dict[Key, Row]:
    """The Dagster assets' computation over the Kafka values of ``trades``."""
    lake = deduplicate(parse_events([trade_value(t) for t in trades])).table
    return rows_by_key(warehouse.minute_analytics(lake))


def _minute_row(group: pd.DataFrame) -> Row:
    prices: list[Decimal] = list(group["price"])
    qtys: list[Decimal] = list(group["qty"])
    count = len(prices)
    volume = sum(qtys, Decimal(0))
    notional = sum((p * q for p, q in zip(prices, qtys, strict=True)), Decimal(0))
    by_id = group.sort_values("trade_id")
    taker_buy = sum((q for q, m in zip(qtys, group["maker"], strict=True) if not m), Decimal(0))
    return {
        "avg_price": float(sum(prices, Decimal(0)) / count),
        "price_change_pct": float((max(prices) - min(prices)) / min(prices) * 100),
        "volatility": statistics.stdev(float(p) for p in prices) if count > 1 else None,
        "trade_count": count,
        "open": float(by_id["price"].iloc[0]),
        "high": float(max(prices)),
        "low": float(min(prices)),
        "close": float(by_id["price"].iloc[-1]),
        "volume": float(volume),
        "quote_volume": float(notional),
        "vwap": float(notional / volume),
        "taker_buy_volume": float(taker_buy),
        "taker_sell_volume": float(volume - taker_buy),
        "first_trade_id": int(by_id["trade_id"].iloc[0]),
        "last_trade_id": int(by_id["trade_id"].iloc[-1]),
        "is_complete": int(by_id["trade_id"].iloc[-1]) - int(by_id["trade_id"].iloc[0]) + 1
        == count,
    }


def decimal_rows(trades: Iterable[Trade]) -> dict[Key, Row]:
    """Independent check: first copy of each (symbol, id), grouped by pandas, summed exactly."""
    unique: dict[tuple[str, int], Trade] = {}
    for trade in trades:
        unique.setdefault((trade.symbol, trade.trade_id), trade)
    frame = pd.DataFrame(
        {
            "symbol": [t.symbol for t in unique.values()],
            "minute": [minute_of(t.trade_time_ms) for t in unique.values()],
            "trade_id": [t.trade_id for t in unique.values()],
            "price": pd.Series([t.price for t in unique.values()], dtype=object),
            "qty": pd.Series([t.qty for t in unique.values()], dtype=object),
            "maker": [t.buyer_is_maker for t in unique.values()],
        }
    )
    rows = {}
    for (symbol, minute), group in frame.groupby(["symbol", "minute"]):
        row = _minute_row(group)
        row["window_end"] = int(minute) + MINUTE_MS
        rows[(str(symbol), int(minute))] = row
    return rows


def _ms(value: Any) -> int:
    return round(value.timestamp() * 1000)


def rows_by_key(table: pa.Table) -> dict[Key, Row]:
    """Analytics rows keyed by (symbol, window start ms); window_end as ms too."""
    rows = {}
    for row in table.to_pylist():
        row["window_end"] = _ms(row["window_end"])
        rows[(row.pop("symbol"), _ms(row.pop("window_start")))] = row
    return rows


def duckdb_table_rows(path: Path) -> dict[Key, Row]:
    """What the Spark job wrote to the analytics table."""
    with duckdb.connect(str(path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return rows_by_key(conn.sql(f"SELECT * FROM {ANALYTICS_TABLE}").to_arrow_table())


def assert_same_rows(
    actual: dict[Key, Row],
    expected: dict[Key, Row],
    what: str,
    skip: frozenset[tuple[Key, str]] = frozenset(),
) -> None:
    """Same (symbol, minute) keys; exact counts, ids, flags and OHLC; floats to 1e-9 (but for
    the (key, column) cells in ``skip``, which the caller compares itself)."""
    assert sorted(actual) == sorted(expected), f"{what}: different (symbol, minute) rows"
    for key, want in expected.items():
        got = actual[key]
        for column in EXACT_COLUMNS:
            assert got[column] == want[column], _differs(what, key, column, got, want)
        for column in FLOAT_COLUMNS:
            if (key, column) in skip:
                continue
            if want[column] is None:
                assert got[column] is None, _differs(what, key, column, got, want)
            else:
                assert math.isclose(got[column], want[column], rel_tol=REL_TOL), _differs(
                    what, key, column, got, want
                )


def _differs(what: str, key: Key, column: str, got: Row, want: Row) -> str:
    return f"{what}: {key} {column} is {got[column]!r}, expected {want[column]!r}"


def differences(
    actual: dict[Key, Row], expected: dict[Key, Row], rel_tol: dict[str, float] | None = None
) -> list[str]:
    """Every (symbol, minute, column) whose values differ (beyond ``rel_tol[column]``)."""
    tolerances = rel_tol or {}
    lines = [f"{key}: only in one table" for key in sorted(set(actual) ^ set(expected))]
    for key in sorted(set(actual) & set(expected)):
        for column, want in expected[key].items():
            got = actual[key][column]
            if got == want or (
                column in tolerances
                and None not in (got, want)
                and math.isclose(got, want, rel_tol=tolerances[column])
            ):
                continue
            lines.append(f"{key} {column}: {got!r} != {want!r}")
    return lines
