"""Producing trades and progress marks into the real broker, as ingestion does, for the tests.

Messages follow the platform's contract: key = symbol, value = the Binance trade event JSON,
message timestamp = trade time ``T``, header ``received_at_ms``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal

from confluent_kafka import Consumer, Producer, TopicPartition

from crypto_platform.core.progress import (
    LateNotice,
    ProgressMark,
    encode_late,
    encode_progress,
)
from crypto_platform.core.topics import RECEIVED_AT_HEADER
from crypto_platform.core.trades import Trade, trade_to_event
from crypto_platform.kafka import admin

FLUSH_TIMEOUT_S = 60.0
# The tests replay trades from 2019-2025 with their own trade times as message timestamps; under
# the broker's default time retention (7 days) they would be deleted at the next retention check.
KEEP_FOREVER = {"retention.ms": "-1"}


@contextmanager
def history_topics(bootstrap: str) -> Iterator[Callable[..., str]]:
    """A factory of uniquely named topics that keep old messages; deleted afterwards."""
    created: list[str] = []

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin.create_topics(bootstrap, [admin.TopicSpec(name, partitions, KEEP_FOREVER)])
        created.append(name)
        return name

    try:
        yield make
    finally:
        if created:
            admin.delete_topics(bootstrap, created)


def high_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    """{partition: high watermark} of every partition of ``topic`` (no group joined)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-{uuid.uuid4().hex[:8]}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in sorted(partitions)
        }
    finally:
        consumer.close()


def _producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})


def _flush(producer: Producer) -> None:
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    assert remaining == 0, f"{remaining} messages not delivered within {FLUSH_TIMEOUT_S}s"


def produce_trades(bootstrap: str, topic: str, trades: Iterable[Trade]) -> int:
    """Produce ``trades`` as ingestion would; returns how many."""
    producer = _producer(bootstrap)
    count = 0
    for trade in trades:
        produce_value(
            producer,
            topic,
            trade.symbol,
            json.dumps(trade_to_event(trade)).encode(),
            trade.trade_time_ms,
        )
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    _flush(producer)
    return count


def produce_value(
    producer: Producer, topic: str, key: str, value: bytes, timestamp_ms: int
) -> None:
    while True:
        try:
            producer.produce(
                topic,
                key=key.encode(),
                value=value,
                timestamp=timestamp_ms,
                headers=[(RECEIVED_AT_HEADER, str(timestamp_ms + 50).encode())],
            )
            return
        except BufferError:
            producer.poll(0.1)


def produce_raw(bootstrap: str, topic: str, key: str, value: bytes, timestamp_ms: int) -> None:
    producer = _producer(bootstrap)
    produce_value(producer, topic, key, value, timestamp_ms)
    _flush(producer)


def publish_progress(bootstrap: str, topic: str, messages: Iterable[ProgressMark | LateNotice]):
    producer = _producer(bootstrap)
    for message in messages:
        value = (
            encode_progress(message) if isinstance(message, ProgressMark) else encode_late(message)
        )
        producer.produce(topic, key=message.symbol.encode(), value=value)
    _flush(producer)


def marks_for(symbols: Iterable[str], through_ms: int, emitted_at_ms: int | None = None):
    """One progress mark per symbol: every trade up to ``through_ms`` is in the topic."""
    emitted = emitted_at_ms if emitted_at_ms is not None else through_ms + 1000
    return [ProgressMark(s.upper(), through_ms, emitted) for s in symbols]


def seed_trades(minute_ms: int) -> list[Trade]:
    """The seed README's example: 114400, 114410, 114395 within one minute."""
    prices = ["114400", "114410", "114395"]
    return [
        Trade(
            "BTCUSDT",
            5_000 + i,
            Decimal(p),
            Decimal("0.5"),
            minute_ms + 15_000 * (i + 1),
            minute_ms + 15_000 * (i + 1),
            i == 1,
        )
        for i, p in enumerate(prices)
    ]
