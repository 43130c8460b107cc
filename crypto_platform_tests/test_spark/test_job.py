"""The Spark job over a real topic: every (symbol, minute) row equals the Dagster path's.

Trades are replayed into a topic of the session's real Kafka broker, the job runs in local
mode with ``Trigger.AvailableNow`` (what the topic holds, then a last batch with no data that
writes the minutes the watermark has passed) and its rows are compared with the Dagster
assets' computation and an independent pandas/``Decimal`` one over the same trades.
"""

from __future__ import annotations

import math
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
from crypto_platform_tests.test_defs.expected import expected_analytics
from crypto_platform_tests.test_defs.recordings import btcusdt_2024, btcusdt_2025_head, xrpeth
from crypto_platform_tests.test_spark.helpers import (
    KEEP_FOREVER,
    LATENESS_S,
    REL_TOL,
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
HOUR_MS = 3_600_000
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


def test_spark_rows_equal_the_dagster_assets_rows_on_the_same_topic(
    spark_session,
    bootstrap: str,
    topic_factory,
    settings_factory,
    shared_binance: Path,
    tmp_path: Path,
) -> None:
    """The same topic (every real recording: XRPETH 2019, the BTCUSDT minutes of 2024-12-31
    and the head of 2025-01-02; then a seeded four-symbol market; with resends) through both
    engines: Spark's table equals what the real Dagster assets materialise."""
    import dagster as dg

    from crypto_platform.definitions import build_definitions
    from crypto_platform_tests.test_defs.conftest import Platform

    xrp, real = xrpeth(shared_binance), btcusdt_2024(shared_binance)
    head = btcusdt_2025_head(shared_binance)  # microsecond times in the dump
    simulated = _simulated_trades()
    last_closing = closing_trade(simulated[-1], LATENESS_S)
    topic = topic_factory("spark-vs-dagster", partitions=3, config=KEEP_FOREVER)
    real_sent = [*with_duplicates(real, every=101, lag=30), closing_trade(real[-1], LATENESS_S)]
    # Oldest first, as a market sends them: the watermark only goes forward.
    produce(bootstrap, topic, with_duplicates(xrp, every=97, lag=20))
    produce(bootstrap, topic, real_sent)
    produce(bootstrap, topic, with_duplicates(head, every=5, lag=2))
    produce(bootstrap, topic, [*with_duplicates(simulated, every=17, lag=5), last_closing])

    options = _options(tmp_path / "spark", bootstrap, topic)
    run_to_end(spark_session, options)
    spark_rows = duckdb_table_rows(options.output)

    progress = topic_factory("progress", partitions=1)
    symbols = ["btcusdt", "ethusdt", "solusdt", "thinusdt"]
    settings = settings_factory(
        data_dir=tmp_path / "dagster", partitions_start="2019-01-01", symbols=symbols
    )
    defs = build_definitions(settings, trades_topic=topic, progress_topic=progress)
    with dg.instance_for_test() as instance:
        platform = Platform(settings, defs, instance, bootstrap, topic, progress)
        for trades in (xrp, real, head, simulated):  # one run per range, as the UI launches
            first, last = (f(t.trade_time_ms for t in trades) for f in (min, max))
            hours = first // HOUR_MS * HOUR_MS, last // HOUR_MS * HOUR_MS
            assert platform.backfill(*hours, checks=trades is not xrp).success  # 60 h: no checks
        dagster_rows = {
            (row["symbol"], round(row["window_start"].timestamp() * 1000)): row
            for row in platform.analytics()
        }
    # Spark writes a minute once the watermark passes it: all but the last closing trade's.
    assert set(dagster_rows) - set(spark_rows) == {
        (last_closing.symbol, minute_of(last_closing.trade_time_ms))
    }
    recorded = {(t.symbol, minute_of(t.trade_time_ms)) for t in (*xrp, *real, *head)}
    assert len(recorded) == 2469 + 2 + 1 and recorded <= set(spark_rows)
    assert len(spark_rows) >= len(recorded) + 1 + len({t.symbol for t in simulated})
    expected = {key: row for key, row in dagster_rows.items() if key in spark_rows}
    # Spark's volatility is off in a few real minutes (see below): compared apart.
    off = {
        key
        for key, row in expected.items()
        if not _close(spark_rows[key]["volatility"], row["volatility"])
    }
    skip = frozenset((key, "volatility") for key in off)
    assert_same_rows(spark_rows, _comparable(expected), "Spark vs the Dagster assets", skip)
    everything = (*xrp, *real, *head, *simulated)
    exact = expected_analytics(
        t for t in everything if (t.symbol, minute_of(t.trade_time_ms)) in off
    )
    _known_spark_volatility_errors({key: spark_rows[key] for key in off}, expected, exact)


def _close(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is want
    return got == want or math.isclose(got, want, rel_tol=REL_TOL)


def _known_spark_volatility_errors(spark: dict, dagster: dict, exact: dict) -> None:
    """Spark's volatility where prices barely differ, or not at all, within float error.

    Both engines run the shared SQL's ``STDDEV_SAMP(CAST(price AS DOUBLE))``. A floating-point
    standard deviation errs by a few ulps of the *prices*, not of their spread: in BTCUSDT
    2025-01-02 00:00 (32 trades at two prices a cent apart, std 0.00507) Spark's value is 2.1e-9
    relative off the exact (Decimal) one, and XRPETH minutes with one price throughout give
    ~1e-19 instead of 0. So in those few minutes Spark must be within 1e-12 of the average price
    (absolute), the Dagster assets' value within 1e-9 of the exact one, and they must be few."""
    assert len(spark) <= 10, f"Spark's volatility is off in {len(spark)} minutes: {sorted(spark)}"
    for key, row in spark.items():
        want = exact[key]
        assert _close(dagster[key]["volatility"], want["volatility"]), (key, dagster[key], want)
        bound = 1e-12 * want["avg_price"]
        assert abs(row["volatility"] - want["volatility"]) <= bound, (key, row, want)


def _comparable(rows: dict) -> dict:
    """Dagster's DuckDB rows in the form the Spark helpers compare (times as epoch ms)."""
    out = {}
    for key, row in rows.items():
        row = dict(row)
        row["window_end"] = round(row["window_end"].timestamp() * 1000)
        out[key] = row
    return out
