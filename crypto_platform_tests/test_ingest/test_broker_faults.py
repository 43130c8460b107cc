"""Kafka going away under the ingestion service: a 30 s outage loses nothing; a longer one than
the delivery bound stops the service with a clear error. Both on a broker of their own."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.ingest.exchange_sim import ExchangeSimulator
from crypto_platform.ingest.service import IngestError, IngestService
from crypto_platform.ingest.sim_sources import SimulatedSource, wall_ms
from crypto_platform.kafka import admin
from crypto_platform.kafka.broker import LocalBroker, free_port
from crypto_platform_tests.conftest import REPO_ROOT
from crypto_platform_tests.test_ingest.conftest import (
    Topics,
    assert_every_trade_exactly_as_sent,
    delivered_through,
    make_config,
    read_topic,
    running,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow]
OUTAGE_S = 30.0


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(
        home=tmp_path_factory.mktemp("own-kafka"),
        cache_dir=REPO_ROOT / ".cache",
        port=free_port(),
        controller_port=free_port(),
        heap="256m",
        trades_partitions=3,
    )
    broker.start()
    yield broker
    broker.stop()


def _topics(bootstrap: str) -> Topics:
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(f"trades-{suffix}", f"dlq-{suffix}", f"progress-{suffix}")
    specs = [admin.TopicSpec(topics.trades, 3, {}), admin.TopicSpec(topics.dlq, 1, {})]
    admin.create_topics(bootstrap, [*specs, admin.TopicSpec(topics.progress, 1, {})])
    return topics


def _last_ids(trades: list) -> dict[str, int]:
    return {t.symbol: t.trade_id for t in trades}  # trades are in time order: the last wins


def _delivered(service: IngestService) -> int:
    return sum(s.delivered for s in service.stats.symbols.values())


def test_a_broker_stopped_for_30s_while_trades_flow_loses_nothing(own_broker: LocalBroker) -> None:
    bootstrap = own_broker.bootstrap_servers
    topics = _topics(bootstrap)
    start = wall_ms()
    simulation = MarketSimulation(["btcusdt", "ethusdt"], seed=31, start_ms=start, rate_scale=2)
    with ExchangeSimulator(SimulatedSource(simulation), record=True) as sim:
        config = make_config(bootstrap, topics, sim, simulation.symbols, delivery_timeout_s=180)
        service = IngestService(config)
        with running(service):
            wait_until(lambda: _delivered(service) > 200, 30, "trades flowing")
            own_broker.stop()
            stopped_at = time.monotonic()
            delivered_before = _delivered(service)
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
            assert len(service.producer) > 100  # buffered, not dropped
            assert _delivered(service) <= delivered_before + 5  # nothing acknowledged meanwhile
            own_broker.start()
            expected = list(simulation.trades_between(start, wall_ms() - 1_000))
            wait_until(lambda: delivered_through(service, _last_ids(expected)), 90, "catch-up")
        errors = service.producer.stats.errors
    assert errors["_TRANSPORT"] + errors["_ALL_BROKERS_DOWN"] > 0
    assert service.producer.stats.failed[topics.trades] == 0
    wanted = {(t.symbol, t.trade_id) for t in expected}
    messages = [
        m
        for m in read_topic(bootstrap, topics.trades)
        if (m.key().decode(), json.loads(m.value())["t"]) in wanted
    ]  # later trades are there too; the check covers those up to the catch-up point
    sources = assert_every_trade_exactly_as_sent(messages, expected, sim)
    assert sources["stream"] == len(expected)  # librdkafka kept them all: no REST needed


def test_a_broker_gone_longer_than_the_delivery_bound_stops_the_service_clearly(
    own_broker: LocalBroker,
) -> None:
    bootstrap = own_broker.bootstrap_servers
    if own_broker.pid() is None:
        own_broker.start()
    topics = _topics(bootstrap)
    simulation = MarketSimulation(["btcusdt"], seed=32, start_ms=wall_ms(), rate_scale=2)
    with ExchangeSimulator(SimulatedSource(simulation)) as sim:
        config = make_config(bootstrap, topics, sim, simulation.symbols, delivery_timeout_s=5)
        service = IngestService(config)
        with (
            pytest.raises(
                IngestError, match=r"Kafka did not acknowledge trade BTCUSDT \d+ within 5s"
            ),
            running(service),
        ):
            wait_until(lambda: _delivered(service) > 50, 30, "trades flowing")
            own_broker.kill()
            killed_at = time.monotonic()
            wait_until(lambda: service._failure is not None, 60, "the delivery bound")
            assert time.monotonic() - killed_at < 5 + 15
    assert service.producer.stats.failed[topics.trades] > 0
