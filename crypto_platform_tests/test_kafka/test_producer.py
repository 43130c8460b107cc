"""The producer wrapper against a real broker: delivery accounting, errors by severity, no drops."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Consumer

from crypto_platform.kafka.broker import free_port
from crypto_platform.kafka.producer import KafkaProducer, producer_config

pytestmark = pytest.mark.kafka


def _consume_all(bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    messages: list = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < count and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(500, 0.5) if m.error() is None]
    consumer.close()
    return messages


def test_the_config_asks_for_no_duplicates_and_every_replica() -> None:
    config = producer_config("127.0.0.1:9092", delivery_timeout_s=42)
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert config["delivery.timeout.ms"] == 42_000 and config["linger.ms"] > 0


def test_messages_arrive_with_key_timestamp_headers_and_are_counted(
    bootstrap: str, topic_factory
) -> None:
    topic = topic_factory("producer", partitions=3)
    producer = KafkaProducer(bootstrap, delivery_timeout_s=30)
    results: list[str | None] = []
    for i in range(300):
        producer.produce(
            topic,
            value=f'{{"t": {i}}}',
            key=f"SYM{i % 3}",
            timestamp_ms=1_735_603_200_000 + i,
            headers=[("received_at_ms", str(i).encode())],
            on_delivery=results.append,
        )
    assert producer.flush(30) == 0 and len(producer) == 0
    assert results == [None] * 300
    assert producer.stats.produced[topic] == producer.stats.delivered[topic] == 300
    assert producer.stats.failed[topic] == 0

    messages = _consume_all(bootstrap, topic, 300)
    got = sorted((m.key(), m.timestamp()[1], dict(m.headers())["received_at_ms"]) for m in messages)
    assert got == sorted(
        (f"SYM{i % 3}".encode(), 1_735_603_200_000 + i, str(i).encode()) for i in range(300)
    )
    per_key: dict[bytes, list[int]] = {}
    for m in messages:  # one partition per key, in produce order
        per_key.setdefault(m.key(), []).append(m.timestamp()[1])
    assert all(times == sorted(times) for times in per_key.values())


def test_an_unreachable_broker_is_logged_as_a_warning_and_failures_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = KafkaProducer(f"127.0.0.1:{free_port()}", delivery_timeout_s=3)
    results: list[str | None] = []
    with caplog.at_level(logging.WARNING, logger="crypto_platform.kafka.producer"):
        producer.produce("trades", value=b"x", key="BTCUSDT", on_delivery=results.append)
        deadline = time.monotonic() + 20
        while not results and time.monotonic() < deadline:
            producer.poll(0.2)
    assert results and results[0] is not None and "_MSG_TIMED_OUT" in results[0]
    assert producer.stats.failed["trades"] == 1 and producer.stats.delivered["trades"] == 0
    assert producer.stats.errors  # the error callback saw the broker being down
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("retried for up to 3s" in r.getMessage() for r in warnings)
    assert producer.fatal_error is None


def test_a_full_buffer_waits_instead_of_dropping(caplog: pytest.LogCaptureFixture) -> None:
    """With room for 5 messages and no broker, the 6th waits until the first ones fail."""
    producer = KafkaProducer(
        f"127.0.0.1:{free_port()}", delivery_timeout_s=2, **{"queue.buffering.max.messages": 5}
    )
    results: list[str | None] = []
    started = time.monotonic()
    for i in range(6):
        producer.produce("trades", value=str(i), on_delivery=results.append)
    assert time.monotonic() - started >= 1.5  # the 6th waited for room, then got it
    assert producer.stats.buffer_full_waits > 0
    deadline = time.monotonic() + 20
    while len(results) < 6 and time.monotonic() < deadline:
        producer.poll(0.2)
    assert len(results) == 6 and all(r is not None for r in results)  # each one reported
    assert producer.stats.failed["trades"] == 6
