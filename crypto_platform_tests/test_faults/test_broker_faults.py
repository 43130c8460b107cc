"""The Kafka broker killed with SIGKILL and restarted, while trades are ingested and while a
minute materialises; on a broker of this module's own. Both end with identical results."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date

import dagster as dg
import pytest

from crypto_platform.definitions import build_definitions
from crypto_platform.ingest.exchange_sim import ExchangeSimulator
from crypto_platform.ingest.service import IngestService
from crypto_platform.kafka import admin
from crypto_platform.kafka.broker import LocalBroker, free_port
from crypto_platform_tests.conftest import REPO_ROOT
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_defs.helpers import KEEP_FOREVER
from crypto_platform_tests.test_faults.conftest import (
    SYMBOLS,
    assert_identical,
    materialise,
    replay_source,
    simulated_trades,
)
from crypto_platform_tests.test_ingest.conftest import (
    Topics,
    delivered_through,
    make_config,
    running,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow]
OUTAGE_S = 15.0  # longer than the reader's metadata timeout: the first attempt fails


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(
        home=tmp_path_factory.mktemp("fault-kafka"),
        cache_dir=REPO_ROOT / ".cache",
        port=free_port(),
        controller_port=free_port(),
        heap="256m",
        trades_partitions=3,
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_platform(own_broker: LocalBroker, settings_factory, tmp_path) -> Iterator[Platform]:
    """A platform of the real definitions whose Kafka is ``own_broker``."""
    if own_broker.pid() is None:
        own_broker.start()
    bootstrap = own_broker.bootstrap_servers
    suffix = uuid.uuid4().hex[:8]
    names = [f"trades-{suffix}", f"progress-{suffix}", f"dlq-{suffix}"]
    specs = [admin.TopicSpec(n, 3 if i == 0 else 1, KEEP_FOREVER) for i, n in enumerate(names)]
    admin.create_topics(bootstrap, specs)
    settings = settings_factory(
        kafka_bootstrap_servers=bootstrap,
        data_dir=tmp_path / "own",
        partitions_start=date(2019, 1, 1),
        symbols=SYMBOLS,
    )
    defs = build_definitions(settings, trades_topic=names[0], progress_topic=names[1])
    with ExitStack() as stack:
        instance = stack.enter_context(dg.instance_for_test())
        yield Platform(settings, defs, instance, bootstrap, names[0], names[1])


def test_broker_killed_while_ingesting_gives_identical_results(
    own_broker: LocalBroker, own_platform: Platform, reference
) -> None:
    trades = simulated_trades(3, seed=45)
    expected = reference(trades)
    dlq = own_platform.trades_topic.replace("trades-", "dlq-")  # made by ``own_platform``
    topics = Topics(own_platform.trades_topic, dlq, own_platform.progress_topic)
    with ExchangeSimulator(replay_source(trades, speed=12.0)) as sim:
        config = make_config(own_platform.bootstrap, topics, sim, SYMBOLS, delivery_timeout_s=120.0)
        service = IngestService(config)
        with running(service):
            wait_until(
                lambda: sum(sim.stats.published.values()) > len(trades) // 3, 60, "a third out"
            )
            own_broker.kill()
            time.sleep(5.0)
            assert len(service.producer) > 0  # buffered while the broker is gone
            own_broker.start()
            wait_until(lambda: sim.source.finished, 60, "the whole feed sent")
            last = {t.symbol: t.trade_id for t in trades}
            wait_until(lambda: delivered_through(service, last), 90, "delivery")
    materialise(own_platform, expected.minutes)
    assert_identical(own_platform, expected)


def test_broker_killed_while_a_minute_materialises_the_run_is_retried(
    own_broker: LocalBroker, own_platform: Platform, reference
) -> None:
    trades = simulated_trades(3, seed=46)
    expected = reference(trades)
    own_platform.produce(trades)
    restart = threading.Timer(OUTAGE_S, own_broker.start)
    own_broker.kill()
    restart.start()
    try:
        result = own_platform.run_minutes(expected.minutes, raise_on_error=False)
    finally:
        restart.join(60)
    assert own_broker.pid() is not None
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert result.success and retried, "the step should have failed once, then succeeded"
    assert_identical(own_platform, expected)
