"""Faults on the way in: the ingestion process killed, the WebSocket dropped and stalled.

Each test feeds the same seeded trades through the exchange simulator and the real ingestion
service into Kafka, materialises the minutes with the real Dagster job, and asserts the
identical-results property against the undisturbed reference (see ``conftest``).
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict

import pytest

from crypto_platform.ingest.exchange_sim import ExchangeSimulator, Faults
from crypto_platform.ingest.service import IngestService
from crypto_platform_tests.test_faults.conftest import (
    SYMBOLS,
    assert_identical,
    materialise,
    replay_source,
    simulated_trades,
)
from crypto_platform_tests.test_faults.workers import spawn
from crypto_platform_tests.test_ingest.conftest import (
    Topics,
    delivered_through,
    make_config,
    read_topic,
    running,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow]


def _last_ids(trades) -> dict[str, int]:
    return {t.symbol: t.trade_id for t in trades}


def _topic_holds(bootstrap: str, topic: str, wanted: set) -> bool:
    found = {(m.key().decode(), json.loads(m.value())["t"]) for m in read_topic(bootstrap, topic)}
    return wanted <= found


def test_ingestion_killed_mid_stream_and_restarted_gives_identical_results(
    platform_factory, reference, topic_factory, bootstrap: str, tmp_path
) -> None:
    trades = simulated_trades(3, seed=41)
    expected = reference(trades)
    platform = platform_factory("faulted")
    topics = Topics(platform.trades_topic, topic_factory("dlq", 1), platform.progress_topic)
    log_path = tmp_path / "ingest.log"
    with ExchangeSimulator(replay_source(trades, speed=12.0)) as sim:
        config = asdict(make_config(bootstrap, topics, sim, SYMBOLS))
        process = spawn("ingest", json.dumps(config), log_path=log_path)
        try:
            wait_until(
                lambda: sum(sim.stats.published.values()) > len(trades) // 3, 60, "a third out"
            )
            process.send_signal(signal.SIGKILL)  # mid-stream: no flush, no goodbye
            assert process.wait(10) == -signal.SIGKILL
            killed_at = sum(sim.stats.published.values())
            time.sleep(2.0)  # the exchange goes on meanwhile: these trades need REST
            assert sum(sim.stats.published.values()) > killed_at + 50
            process = spawn("ingest", json.dumps(config), log_path=log_path)
            wait_until(lambda: sim.source.finished, 60, "the whole feed sent")
            wanted = {(t.symbol, t.trade_id) for t in trades}
            wait_until(
                lambda: _topic_holds(bootstrap, topics.trades, wanted), 90, "every trade in Kafka"
            )
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0, log_path.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    log = log_path.read_text()
    assert "resuming after trade id" in log and "over REST" in log  # the gap went to REST
    assert read_topic(bootstrap, topics.dlq) == []
    materialise(platform, expected.minutes)
    assert_identical(platform, expected)


@pytest.mark.parametrize(
    ("faults", "silence_s"),
    [
        (Faults(drop_after_messages=600, max_drops=5), 5.0),
        (Faults(stall_after_messages=500, stall_seconds=3.0, max_drops=3), 1.0),
    ],
    ids=["dropped", "stalled"],
)
def test_a_websocket_dropped_or_stalled_repeatedly_gives_identical_results(
    platform_factory, reference, topic_factory, bootstrap: str, faults: Faults, silence_s: float
) -> None:
    trades = simulated_trades(3, seed=42)
    expected = reference(trades)
    platform = platform_factory("faulted")
    topics = Topics(platform.trades_topic, topic_factory("dlq", 1), platform.progress_topic)
    with ExchangeSimulator(replay_source(trades, speed=12.0), faults, ping_interval_s=0.5) as sim:
        config = make_config(bootstrap, topics, sim, SYMBOLS, silence_s=silence_s)
        service = IngestService(config)
        with running(service):
            wait_until(lambda: sim.source.finished, 90, "the whole feed sent")
            wait_until(lambda: delivered_through(service, _last_ids(trades)), 60, "delivery")
        assert sim.stats.drops + sim.stats.stalls == faults.max_drops
        assert service.stats.disconnects >= faults.max_drops
    assert sum(g["trades"] for g in service.gaps_log) > 0  # REST filled what the faults cut
    materialise(platform, expected.minutes)
    assert_identical(platform, expected)
