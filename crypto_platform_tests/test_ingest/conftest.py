"""Helpers for the ingestion tests: fresh topics, a service in a thread, reading topics back."""

from __future__ import annotations

import faulthandler
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from crypto_platform.core.trades import Trade
from crypto_platform.ingest.exchange_sim import ExchangeSimulator
from crypto_platform.ingest.service import IngestConfig, IngestService


@dataclass(frozen=True)
class Topics:
    trades: str
    dlq: str
    progress: str


@pytest.fixture
def topics(topic_factory: Callable[..., str]) -> Topics:
    """Fresh `trades`, `trades.dlq` and `trades.progress` stand-ins for one test."""
    return Topics(topic_factory("trades", 3), topic_factory("dlq", 1), topic_factory("progress", 1))


def make_config(
    bootstrap: str, topics: Topics, sim: ExchangeSimulator, symbols: list[str], **overrides: Any
) -> IngestConfig:
    """A config pointed at the simulator, with the short timings tests want."""
    values: dict[str, Any] = {
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "silence_s": 5.0,
        "stats_interval_s": 1.0,
        "progress_interval_s": 0.25,
        "delivery_timeout_s": 60.0,
        "trades_topic": topics.trades,
        "dlq_topic": topics.dlq,
        "progress_topic": topics.progress,
    }
    values.update(overrides)
    return IngestConfig(bootstrap, [s.upper() for s in symbols], sim.ws_url, sim.base_url, **values)


@contextmanager
def running(service: IngestService, stop_timeout_s: float = 30.0) -> Iterator[IngestService]:
    """Run the service in a thread; stop it on exit and re-raise what it raised."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name="ingest-under-test", daemon=True)
    thread.start()
    try:
        yield service
    except BaseException as failure:
        if errors:  # the service's own error usually explains the test's failure
            failure.add_note(f"the service raised: {errors[0]!r}")
        raise
    finally:
        service.request_stop()
        thread.join(stop_timeout_s)
    assert not thread.is_alive(), "the service did not stop"
    if errors:
        raise errors[0]


def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    faulthandler.dump_traceback(all_threads=True)  # where everything was stuck, on stderr
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def delivered_through(service: IngestService, last_ids: dict[str, int]) -> bool:
    """Every id up to ``last_ids`` produced contiguously and acknowledged by Kafka."""
    for symbol, last in last_ids.items():
        if (service.ledgers[symbol].next_id or 0) <= last:
            return False
        try:
            lowest_pending = service.marks[symbol].in_flight.lowest_id()
        except RuntimeError:  # the service thread changed it meanwhile: ask again later
            return False
        if lowest_pending is not None and lowest_pending <= last:
            return False
    return True


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list:
    """Every message now in ``topic`` (all partitions, up to their high watermarks)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:8]}"}
    )
    try:
        ends = _high_watermarks(consumer, topic)
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        messages: list = []
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                assert msg.error() is None, msg.error()
                messages.append(msg)
                if msg.offset() >= ends.get(msg.partition(), 0) - 1:
                    ends.pop(msg.partition(), None)
        assert not ends, f"could not read all of {topic}"
        return messages
    finally:
        consumer.close()


def _high_watermarks(consumer: Consumer, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """{partition: high watermark} of the non-empty partitions; retried while the broker is
    still settling (a new topic's metadata, a leader moving), never silently empty."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None or not metadata.partitions:
                raise KafkaException(metadata.error)
            ends = {}
            for p in metadata.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    ends[p] = high
            return ends
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def trades_by_id(messages: list) -> dict[tuple[str, int], list]:
    """(symbol, trade id) -> every message carrying it (duplicates are allowed, must agree)."""
    found: dict[tuple[str, int], list] = {}
    for msg in messages:
        event = json.loads(msg.value())
        found.setdefault((event["s"], event["t"]), []).append(msg)
    return found


def rest_event_text(trade: Trade) -> str:
    """What a REST-filled trade looks like in Kafka: the stream's event with ``E`` = ``T``."""
    event = {
        "e": "trade",
        "E": trade.trade_time_ms,
        "s": trade.symbol,
        "t": trade.trade_id,
        "p": format(trade.price, "f"),
        "q": format(trade.qty, "f"),
        "T": trade.trade_time_ms,
        "m": trade.buyer_is_maker,
        "M": True,
    }
    return json.dumps(event, separators=(",", ":"))


def assert_every_trade_exactly_as_sent(
    messages: list, expected: list[Trade], sim: ExchangeSimulator
) -> dict[str, int]:
    """Each expected trade is in the topic with key = symbol, timestamp = T, and the value the
    simulator published (stream) or its REST form (gap fill); nothing else is there.
    Returns how many came from each source."""
    found = trades_by_id(messages)
    assert set(found) == {(t.symbol, t.trade_id) for t in expected}
    sources = {"stream": 0, "rest": 0}
    for trade in expected:
        for msg in found[(trade.symbol, trade.trade_id)]:
            headers = dict(msg.headers())
            assert msg.key() == trade.symbol.encode()
            assert msg.timestamp() == (1, trade.trade_time_ms)  # CreateTime = T
            assert headers["received_at_ms"].isdigit()
            if headers.get("source") == b"rest":
                assert msg.value().decode() == rest_event_text(trade)
                sources["rest"] += 1
            else:
                assert msg.value().decode() == sim.published_events[trade.symbol][trade.trade_id]
                sources["stream"] += 1
    return sources
