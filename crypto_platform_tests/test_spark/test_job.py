"""The Spark job over a real topic: every (symbol, minute) row equals the Dagster path's.

Trades are replayed into a topic of the session's real Kafka broker, the job runs in local
mode with ``Trigger.AvailableNow`` (what the topic holds, then a last batch with no data that
writes the minutes the watermark has passed) and its rows are compared with the Dagster
assets' computation and an independent pandas/``Decimal`` one over the same trades.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from crypto_platform.core.archive import read_klines, read_trades
from crypto_platform.core.progress import MINUTE_MS
from crypto_platform.core.simulation import MarketSimulation, SymbolProfile
from crypto_platform.core.trades import Trade
from crypto_platform.spark.options import JobOptions
from crypto_platform_tests.test_spark.helpers import (
    KEEP_FOREVER,
    LATENESS_S,
    assert_same_rows,
    closing_trade,
    dagster_path_rows,
    decimal_rows,
    duckdb_table_rows,
    minute_of,
    produce,
    rows_by_key,
    run_to_end,
    with_duplicates,
)

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

SIM_START_MS = 1_764_072_000_000  # 2025-11-25 12:00 UTC
# A thinly traded symbol, so that some minutes hold a single trade (volatility NULL).
THIN = SymbolProfile(
    "THINUSDT", Decimal("1.5"), Decimal("0.0001"), Decimal("1"), Decimal("10"), 0.3, 0.02, 10
)


def _options(tmp_path: Path, bootstrap: str, topic: str, **overrides: Any) -> JobOptions:
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "checkpoint_dir": tmp_path / "checkpoint",
        "lateness_seconds": LATENESS_S,
        "output": tmp_path / "analytics.duckdb",
        "topic": topic,
        "available_now": True,
    }
    return JobOptions(**(values | overrides))


def test_real_btcusdt_minutes_equal_the_dagster_path_and_the_official_klines(
    spark_session, bootstrap: str, topic_factory, shared_binance: Path, tmp_path: Path
) -> None:
    folder = shared_binance / "btcusdt_2024-12-31"
    trades = list(read_trades(folder / "BTCUSDT-trades-2024-12-31_00-00_00-01.csv"))
    sent = with_duplicates(trades, every=97, lag=40)
    topic = topic_factory("spark-real", partitions=3, config=KEEP_FOREVER)
    truncated = b'{"e": "trade", "s": "BTCUSDT"'
    produce(bootstrap, topic, [*sent, truncated, closing_trade(trades[-1], LATENESS_S)])
    options = _options(tmp_path, bootstrap, topic)

    totals = run_to_end(spark_session, options)

    rows = duckdb_table_rows(options.output)
    assert len(rows) == 2  # 00:00 and 00:01; the closing trade's minute stays open
    assert_same_rows(rows, dagster_path_rows(sent), "Spark vs the Dagster path")
    assert_same_rows(rows, decimal_rows(sent), "Spark vs pandas/Decimal")
    klines = {k.open_time_ms: k for k in read_klines(folder / "BTCUSDT-1m-2024-12-31.head32.csv")}
    for (_symbol, minute), row in rows.items():
        kline = klines[minute]
        assert (row["open"], row["high"], row["low"], row["close"]) == (
            float(kline.open),
            float(kline.high),
            float(kline.low),
            float(kline.close),
        )
        assert row["trade_count"] == kline.trade_count
    assert rows[("BTCUSDT", 1_735_603_200_000)]["trade_count"] == 1660  # hand-checked, 00:00
    assert totals == {
        "records": len(sent) + 2,
        "rejected": 1,
        "duplicates": len(sent) - len(trades),
        "late": 0,
    }


def _simulated_trades() -> list[Trade]:
    """Four symbols, five minutes, seeded; one BTCUSDT trade never sent (an id gap)."""
    market = MarketSimulation(
        ["btcusdt", "ethusdt", "solusdt", "thinusdt"],
        seed=11,
        start_ms=SIM_START_MS,
        rate_scale=0.1,
        profiles={"THINUSDT": THIN},
    )
    trades = list(market.trades_between(SIM_START_MS, SIM_START_MS + 5 * MINUTE_MS))
    gap = next(
        t for t in trades if t.symbol == "BTCUSDT" and t.trade_time_ms > SIM_START_MS + 70_000
    )
    return [t for t in trades if t != gap]


def _parquet_rows(folder: Path) -> dict:
    return rows_by_key(pq.read_table(sorted(folder.glob("batch-*.parquet"))))


def test_simulated_market_over_two_runs_drops_a_late_trade(
    spark_session, bootstrap: str, topic_factory, tmp_path: Path
) -> None:
    trades = _simulated_trades()
    split = SIM_START_MS + 3 * MINUTE_MS
    first = with_duplicates([t for t in trades if t.trade_time_ms < split], every=13, lag=7)
    second = with_duplicates([t for t in trades if t.trade_time_ms >= split], every=13, lag=7)
    btc = [t for t in trades if t.symbol == "BTCUSDT"]
    # A new trade of a minute that closed in the first run: late, as for the Dagster path.
    late = replace(btc[5], trade_id=btc[-1].trade_id + 100)
    assert minute_of(late.trade_time_ms) == SIM_START_MS
    topic = topic_factory("spark-sim", partitions=3, config=KEEP_FOREVER)
    options = _options(
        tmp_path, bootstrap, topic, sink="parquet", output=tmp_path / "analytics_parquet"
    )

    produce(bootstrap, topic, first)
    first_totals = run_to_end(spark_session, options)
    written = _parquet_rows(options.output)
    assert {minute for _, minute in written} == {SIM_START_MS, SIM_START_MS + MINUTE_MS}
    closed = [t for t in first if t.trade_time_ms < split - MINUTE_MS]
    assert_same_rows(written, decimal_rows(closed), "run 1")

    produce(bootstrap, topic, [late, *second, closing_trade(trades[-1], LATENESS_S)])
    second_totals = run_to_end(spark_session, options)

    rows = _parquet_rows(options.output)
    expected = decimal_rows(first + second)
    assert_same_rows(rows, expected, "Spark vs pandas/Decimal")
    assert_same_rows(rows, dagster_path_rows(first + second), "Spark vs the Dagster path")
    assert first_totals["late"] == 0 and second_totals["late"] == 1
    assert first_totals["duplicates"] + second_totals["duplicates"] == (
        len(first) + len(second) - len(trades)
    )
    assert not rows[("BTCUSDT", SIM_START_MS + MINUTE_MS)]["is_complete"]  # the id gap
    assert any(r["trade_count"] == 1 and r["volatility"] is None for r in rows.values())
