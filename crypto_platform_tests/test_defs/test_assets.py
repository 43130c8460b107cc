"""The assets through real Kafka, Parquet and DuckDB: exact numbers, idempotence, late trades."""

from __future__ import annotations

import math
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from confluent_kafka import OFFSET_INVALID, Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from crypto_platform.core import lake
from crypto_platform.core.archive import read_klines, read_trades
from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.trades import Trade
from crypto_platform.ingest.exchange_sim import ExchangeSimulator, Faults
from crypto_platform.ingest.replay import load_recordings
from crypto_platform.ingest.service import IngestService
from crypto_platform.ingest.sim_sources import ReplaySource
from crypto_platform.kafka import reader
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_defs.expected import assert_matches, expected_analytics
from crypto_platform_tests.test_defs.helpers import (
    high_watermarks,
    marks_for,
    publish_progress,
    seed_trades,
)
from crypto_platform_tests.test_defs.recordings import (
    BTC_2024_KLINES,
    BTC_2024_TRADES,
    btcusdt_2024,
    btcusdt_2025_head,
    xrpeth,
)
from crypto_platform_tests.test_ingest.conftest import (
    Topics,
    delivered_through,
    make_config,
    read_topic,
    running,
    wait_until,
)

pytestmark = pytest.mark.kafka

M = 60_000
H = 3_600_000
SIM_HOUR = 1_764_072_000_000  # 2025-11-25 12:00 UTC
BTC_DAY = 1_735_603_200_000  # 2024-12-31 00:00 UTC


def simulated(minutes: int, start_ms: int = SIM_HOUR, seed: int = 11) -> list[Trade]:
    market = MarketSimulation(["btcusdt", "ethusdt"], seed=seed, start_ms=start_ms)
    return list(market.trades_between(start_ms, start_ms + minutes * M))


def materialisations(result, key: str) -> list:
    return [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key.path == [key]
    ]


def complete_through(result) -> tuple[str, str]:
    """The "complete through" minute of the run's raw_trades and trade_analytics_1m."""
    (raw,) = materialisations(result, "raw_trades")
    (analytics,) = materialisations(result, "trade_analytics_1m")
    return raw.metadata["complete_through"].value, analytics.metadata["complete_through"].value


def test_the_seed_example(platform: Platform) -> None:
    minute = SIM_HOUR + 30 * M
    platform.produce(seed_trades(minute))
    result = platform.run_minutes([minute])
    assert result.success
    (row,) = platform.analytics()
    assert row["symbol"] == "BTCUSDT" and row["trade_count"] == 3
    assert row["avg_price"] == pytest.approx(114401.66666666667, rel=1e-12)
    assert row["price_change_pct"] == pytest.approx(0.013112461208968923, rel=1e-12)
    assert row["volatility"] == pytest.approx(7.637626158259733, rel=1e-12)
    assert (row["open"], row["high"], row["low"], row["close"]) == (114400, 114410, 114395, 114395)
    assert row["taker_buy_volume"] == 1.0 and row["taker_sell_volume"] == 0.5
    stored = pq.read_table(lake.minute_file(platform.lake, "BTCUSDT", minute))
    assert stored["price"].to_pylist() == [Decimal("114400"), Decimal("114410"), Decimal("114395")]
    (raw,) = materialisations(result, "raw_trades")
    assert raw.metadata["minutes"].value == ["2025-11-25T12:30"]
    assert raw.metadata["rows_per_symbol"].value == {"BTCUSDT": 3}
    highs = high_watermarks(platform.bootstrap, platform.trades_topic)
    assert sorted(highs.values()) == [0, 0, 3]  # the three trades, in BTCUSDT's partition
    assert raw.metadata["kafka_offsets"].value == {str(p): f"0-{h}" for p, h in highs.items()}
    assert raw.metadata["kafka_messages_read"].value == 3
    assert raw.metadata["files_written"].value == 1
    assert raw.metadata["files"].value == [
        "raw_trades/symbol=BTCUSDT/date=2025-11-25/hour=12/minute=30.parquet"
    ]
    # 12:00-12:29 not done
    assert complete_through(result) == ("2025-11-25T12:00", "2025-11-25T12:00")


@pytest.mark.slow
def test_real_recorded_trades_equal_an_independent_computation(
    platform: Platform, shared_binance: Path
) -> None:
    btc, btc_2025, xrp = (f(shared_binance) for f in (btcusdt_2024, btcusdt_2025_head, xrpeth))
    assert (len(btc), len(btc_2025), len(xrp)) == (4212, 32, 12_477)
    # In trade-time order, as ingestion delivers them; 100 trades twice (duplicates to drop).
    platform.produce(sorted(btc + btc_2025 + xrp + btc[:100], key=lambda t: t.trade_time_ms))
    for trades in (btc, btc_2025):
        first, last = trades[0].trade_time_ms, trades[-1].trade_time_ms
        assert platform.backfill(first - first % H, last - last % H).success
    # XRPETH: 60 hours in one run; without the checks, which cost ~0.3 s an hour.
    first, last = xrp[0].trade_time_ms, xrp[-1].trade_time_ms
    assert platform.backfill(first - first % H, last - last % H, checks=False).success
    rows = platform.analytics()
    assert len(rows) == 2 + 1 + 2469  # minutes with trades: PROVENANCE.md counts XRPETH's
    assert_matches(rows, expected_analytics(btc + btc_2025 + xrp))


def test_a_seeded_simulation_equals_an_independent_computation(platform: Platform) -> None:
    trades = simulated(6)
    platform.produce(trades + trades[::50])  # every 50th trade twice
    for minute in range(SIM_HOUR, SIM_HOUR + 6 * M, 2 * M):
        assert platform.run_minutes([minute, minute + M]).success
    rows = platform.analytics()
    assert len(rows) == 12
    assert_matches(rows, expected_analytics(trades))


def assert_equal_klines(rows: list[dict], klines_path: Path) -> None:
    """The rows are BTCUSDT 2024-12-31 00:00 and 00:01 and equal Binance's official klines."""
    klines = {k.open_time_ms: k for k in read_klines(klines_path)}
    minutes = sorted(int(row["window_start"].timestamp() * 1000) for row in rows)
    assert minutes == [BTC_DAY, BTC_DAY + M] and {r["symbol"] for r in rows} == {"BTCUSDT"}
    for row in rows:
        kline = klines[int(row["window_start"].timestamp() * 1000)]
        assert (row["open"], row["high"], row["low"], row["close"]) == tuple(
            float(v) for v in (kline.open, kline.high, kline.low, kline.close)
        )
        assert row["trade_count"] == kline.trade_count
        assert math.isclose(row["volume"], float(kline.volume), rel_tol=1e-12)
        assert math.isclose(row["quote_volume"], float(kline.quote_volume), rel_tol=1e-12)
        assert math.isclose(row["taker_buy_volume"], float(kline.taker_buy_volume), rel_tol=1e-12)
    assert [r["trade_count"] for r in sorted(rows, key=lambda r: r["window_start"])] == [
        1660,
        2552,
    ]  # hand-checked in PROVENANCE.md


def test_the_two_btcusdt_minutes_equal_binance_klines(
    platform: Platform, shared_binance: Path
) -> None:
    platform.produce(read_trades(shared_binance / BTC_2024_TRADES))
    assert platform.run_minutes([BTC_DAY, BTC_DAY + M]).success
    assert_equal_klines(platform.analytics(), shared_binance / BTC_2024_KLINES)


@pytest.mark.slow
def test_the_two_btcusdt_minutes_through_simulator_and_ingestion_equal_binance_klines(
    platform: Platform, topic_factory, shared_binance: Path
) -> None:
    """Binance's trades replayed by the exchange simulator, which drops the connection once
    (the ids missed meanwhile come over REST), taken into Kafka by the real ingestion service,
    then the assets: the official klines."""
    recorded = load_recordings([shared_binance / BTC_2024_TRADES])
    last = {"BTCUSDT": max(r.trade.trade_id for r in recorded)}
    topics = Topics(platform.trades_topic, topic_factory("dlq", 1), platform.progress_topic)
    faults = Faults(drop_after_messages=1500, max_drops=1)
    with ExchangeSimulator(ReplaySource(recorded, speed=None), faults) as sim:
        service = IngestService(make_config(platform.bootstrap, topics, sim, ["btcusdt"]))
        with running(service):
            wait_until(lambda: delivered_through(service, last), 60, "every trade acknowledged")
        assert sim.stats.drops >= 1
    assert len(recorded) == 4212
    assert sum(gap["trades"] for gap in service.gaps_log) > 0  # some came over REST
    assert read_topic(platform.bootstrap, topics.dlq) == []
    assert platform.run_minutes([BTC_DAY, BTC_DAY + M]).success
    assert_equal_klines(platform.analytics(), shared_binance / BTC_2024_KLINES)


def test_every_way_of_materialising_gives_the_same_bytes_and_rows(platform: Platform) -> None:
    trades = simulated(4)
    platform.produce(trades)
    for minute in range(SIM_HOUR, SIM_HOUR + 4 * M, M):  # the sensor's way: minute by minute
        assert platform.run_minutes([minute]).success
    files, rows = platform.lake_bytes(), platform.analytics()
    assert len(files) == 8 and len(rows) == 8
    assert platform.run_minutes([SIM_HOUR + M]).success  # the same minute again
    assert platform.lake_bytes() == files and platform.analytics() == rows
    result = platform.backfill(SIM_HOUR, SIM_HOUR)  # a whole-hour backfill afterwards
    assert result.success
    assert platform.lake_bytes() == files and platform.analytics() == rows
    (raw,) = materialisations(result, "raw_trades")
    assert raw.metadata["minute_count"].value == 60
    assert complete_through(result) == ("2025-11-25T13:00", "2025-11-25T13:00")


def test_complete_through_advances_only_over_contiguous_minutes(platform: Platform) -> None:
    platform.produce(simulated(4))
    first = platform.run_minutes([SIM_HOUR, SIM_HOUR + M])
    assert complete_through(first) == ("2025-11-25T12:02", "2025-11-25T12:02")
    gap = platform.run_minutes([SIM_HOUR + 3 * M])  # 12:02 not done yet
    assert complete_through(gap) == ("2025-11-25T12:02", "2025-11-25T12:02")
    fill = platform.run_minutes([SIM_HOUR + 2 * M])
    assert complete_through(fill) == ("2025-11-25T12:03", "2025-11-25T12:03")
    analytics = materialisations(fill, "trade_analytics_1m")[0].metadata
    assert analytics["complete_through_ms"].value == SIM_HOUR + 3 * M


def test_late_trades_are_included_by_the_rerun_and_by_later_backfills(platform: Platform) -> None:
    trades = simulated(10)
    minute = SIM_HOUR + 2 * M
    late = [t for t in trades if t.symbol == "ETHUSDT" and minute <= t.trade_time_ms < minute + M][
        5:8
    ]
    on_time = [t for t in trades if t not in late]
    platform.produce(on_time)
    assert platform.run_minutes([minute]).success
    before = {(r["symbol"]): r["trade_count"] for r in platform.analytics()}
    platform.produce(late)  # a gap fill: delivered after eight minutes of newer trades
    rerun = platform.run_minutes([minute], read_until_ms=SIM_HOUR + 11 * M)
    assert rerun.success
    after = {(r["symbol"]): r["trade_count"] for r in platform.analytics()}
    assert after["ETHUSDT"] == before["ETHUSDT"] + 3 and after["BTCUSDT"] == before["BTCUSDT"]
    assert_matches(
        platform.analytics(),
        expected_analytics(t for t in trades if minute <= t.trade_time_ms < minute + M),
    )
    files = platform.lake_bytes()
    assert platform.backfill(SIM_HOUR, SIM_HOUR).success  # stops early by time, but not before
    minute_files = {k: v for k, v in platform.lake_bytes().items() if "minute=02" in k}
    assert minute_files == {k: v for k, v in files.items() if "minute=02" in k}


def committed_offsets(
    bootstrap: str, group_id: str, topics: list[str]
) -> dict[tuple[str, int], int]:
    """The offsets the broker holds for ``group_id`` on each partition of ``topics``
    (``OFFSET_INVALID`` where none was committed)."""
    partitions = [TopicPartition(t, p) for t in topics for p in high_watermarks(bootstrap, t)]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group_id, partitions)
    found = admin.list_consumer_group_offsets([request])[group_id].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in found.topic_partitions}


def test_the_sensor_and_the_runs_commit_no_consumer_offsets(platform: Platform) -> None:
    platform.produce(simulated(3))
    symbols = ["btcusdt", "ethusdt"]
    publish_progress(platform.bootstrap, platform.progress_topic, marks_for(symbols, SIM_HOUR))
    cursor = platform.evaluate_minutes_sensor(None).cursor
    closed = marks_for(symbols, SIM_HOUR + 2 * M + 5_001)  # 12:00 and 12:01, plus grace
    publish_progress(platform.bootstrap, platform.progress_topic, closed)
    (request,) = platform.evaluate_minutes_sensor(cursor).run_requests
    assert platform.run_request(request).success
    assert len(platform.analytics()) == 4  # both read Kafka: the sensor marks, the run trades

    topics = [platform.trades_topic, platform.progress_topic]
    reader_group = reader.READER_GROUP_ID
    offsets = committed_offsets(platform.bootstrap, reader_group, topics)
    assert len(offsets) == 4 and set(offsets.values()) == {OFFSET_INVALID}
    # The same question sees a commit where there is one: another group commits offset 2.
    control = f"control-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": platform.bootstrap, "group.id": control})
    try:
        consumer.commit(offsets=[TopicPartition(platform.trades_topic, 0, 2)], asynchronous=False)
    finally:
        consumer.close()
    seen = committed_offsets(platform.bootstrap, control, topics)
    assert seen.pop((platform.trades_topic, 0)) == 2 and set(seen.values()) == {OFFSET_INVALID}
