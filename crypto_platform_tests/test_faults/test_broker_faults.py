"""The Kafka broker killed with SIGKILL and restarted, while trades are ingested and while a
minute materialises; on a broker of this module's own. Both end with identical results."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date
from typing import ClassVar

import dagster as dg
import pytest

from crypto_platform.definitions import build_definitions
from crypto_platform.ingest.exchange_sim import ExchangeSimulator
from crypto_platform.ingest.service import IngestService
from crypto_platform.kafka import admin, reader
from crypto_platform.kafka.broker import LocalBroker, free_port
from crypto_platform_tests.conftest import REPO_ROOT
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_defs.helpers import KEEP_FOREVER
from crypto_platform_tests.test_faults.conftest import (
    START,
    SYMBOLS,
    M,
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


class KillDuringRead:
    """SIGKILLs ``broker`` once a run's Kafka read has fetched its first batch, restarts it
    ``outage_s`` later, and notes what the lake and DuckDB held at the kill and at the start of
    every later read attempt (nothing is to be written before a read completes).

    The hook is :class:`reader._TradeScan`'s ``take`` (the consumer handing over fetched
    messages): its first call waits until the broker is dead, so the kill lands mid-read; the
    consumer's fetches and batches are made small, so most of the range is still on the broker
    then. ``first_deadline_s`` shortens the first read's deadline (600 s in production) so that
    an outage outlasting a read is seen in seconds.
    """

    SMALL_FETCHES: ClassVar[dict[str, int]] = {
        "fetch.max.bytes": 16 * 1024,
        "message.max.bytes": 16 * 1024,
        "max.partition.fetch.bytes": 4 * 1024,
        "queued.max.messages.kbytes": 16,
        "queued.min.messages": 10,
    }

    def __init__(
        self,
        broker: LocalBroker,
        platform: Platform,
        outage_s: float,
        first_deadline_s: float | None,
    ) -> None:
        self.broker, self.platform = broker, platform
        self.outage_s, self.first_deadline_s = outage_s, first_deadline_s
        self.reading, self.killed = threading.Event(), threading.Event()
        self.taken = 0  # messages handed over by the consumer, over all attempts
        self.taken_at_kill: int | None = None
        self.attempts = 0
        self.states: list[tuple[str, dict[str, bytes], list[dict]]] = []
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._kill, name="broker-killer", daemon=True)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in self.SMALL_FETCHES.items():
            monkeypatch.setitem(reader._CONSUMER_CONFIG, name, value)
        monkeypatch.setattr(reader, "CONSUME_BATCH", 50)
        take, read_trades = reader._TradeScan.take, reader.read_trades

        def hooked_take(scan, batch) -> None:
            self.taken += len(batch)
            if not self.reading.is_set():
                self.reading.set()
                assert self.killed.wait(60), "the broker was not killed"
            take(scan, batch)

        def hooked_read_trades(*args, **kwargs):
            self.attempts += 1
            if self.attempts > 1:
                self.states.append(self._state(f"before read attempt {self.attempts}"))
            elif self.first_deadline_s is not None:
                kwargs["timeout_s"] = self.first_deadline_s
            return read_trades(*args, **kwargs)

        monkeypatch.setattr(reader._TradeScan, "take", hooked_take)
        monkeypatch.setattr(reader, "read_trades", hooked_read_trades)
        self._thread.start()

    def _state(self, when: str) -> tuple[str, dict[str, bytes], list[dict]]:
        return when, self.platform.lake_bytes(), self.platform.analytics()

    def _kill(self) -> None:
        try:
            if not self.reading.wait(120):
                return
            self.broker.kill()
            self.taken_at_kill = self.taken
            self.states.append(self._state("at the kill"))
            self.killed.set()
            time.sleep(self.outage_s)
            self.broker.start()
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.errors.append(exc)
            self.killed.set()

    def join(self) -> None:
        self._thread.join(120)
        assert not self._thread.is_alive(), "the broker killer did not finish"
        if self.errors:
            raise self.errors[0]


@pytest.mark.parametrize(
    ("outage_s", "first_deadline_s", "attempts"),
    [(4.0, None, 1), (OUTAGE_S, 3.0, 2)],
    ids=["the-read-waits-it-out", "the-read-gives-up-and-is-retried"],
)
def test_broker_killed_while_a_minute_materialises_the_run_is_retried(
    own_broker: LocalBroker,
    own_platform: Platform,
    reference,
    monkeypatch: pytest.MonkeyPatch,
    outage_s: float,
    first_deadline_s: float | None,
    attempts: int,
) -> None:
    """The broker dies while the run reads the range (a fetched batch in hand, most of the
    range still on the broker) and comes back seconds later. Either the read waits for it, or
    (the outage outlasting the read) the read fails and ``raw_trades``' retry policy runs it
    again. The minutes were materialised before from an incomplete topic: at the kill and
    before every retry the lake and DuckDB hold exactly that (no partial output); the run ends
    with the reference's result."""
    trades = simulated_trades(3, seed=46)
    expected = reference(trades)
    cut = START + 2 * M + 30_000
    own_platform.produce(t for t in trades if t.trade_time_ms < cut)
    materialise(own_platform, expected.minutes)
    before = own_platform.lake_bytes(), own_platform.analytics()
    assert before[0] != expected.files and before[1] != expected.rows
    own_platform.produce(t for t in trades if t.trade_time_ms >= cut)

    fault = KillDuringRead(own_broker, own_platform, outage_s, first_deadline_s)
    fault.install(monkeypatch)
    try:
        result = own_platform.run_minutes(expected.minutes, raise_on_error=False)
    finally:
        fault.join()
    assert own_broker.pid() is not None
    assert fault.taken_at_kill is not None and fault.taken_at_kill <= 50  # one batch in hand
    assert fault.taken - fault.taken_at_kill >= len(trades) - 50  # the rest came after
    assert [when for when, _f, _r in fault.states][:1] == ["at the kill"]
    for when, files, rows in fault.states:
        assert (files, rows) == before, f"partial output {when}"
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert result.success
    assert fault.attempts >= attempts and len(retries) == fault.attempts - 1
    if attempts == 1:
        assert fault.attempts == 1  # librdkafka reconnected; the read went on where it was
    assert_identical(own_platform, expected)
