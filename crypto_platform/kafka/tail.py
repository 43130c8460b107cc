"""What the ``trades`` topic already holds at its end: the latest trade ids of each symbol.

The ingestion service starts from here, so a crash or restart of the service leaves no hole: it
resumes from the last trade id each symbol has in the topic and fills the rest over REST.

Each partition is read backwards in chunks from its end: at least ``min_messages`` per partition
(a gap fill produces older ids *after* newer ones, so the ids near the end show any hole that
a crash left open), and further back until every wanted symbol has been seen, the partition's
start is reached, or ``max_messages`` were read.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from crypto_platform.kafka.logs import librdkafka_logger

log = logging.getLogger(__name__)

MIN_MESSAGES = 20_000
MAX_MESSAGES = 500_000
TAIL_TIMEOUT_S = 60.0
BATCH = 5_000
RETRY_S = 0.5
NEW_TOPIC_GRACE_S = 5.0  # how long an unknown topic may take to appear after its creation
_NOT_YET = {  # a new topic or a restarting broker answers these for a moment
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


class TailError(RuntimeError):
    """The topic's end could not be read (broker unreachable, topic missing)."""


@dataclass
class SymbolTail:
    """Trade ids (with their trade times, ms) of one symbol found near the topic's end."""

    symbol: str
    times_by_id: dict[int, int] = field(default_factory=dict)

    @property
    def last_id(self) -> int:
        return max(self.times_by_id)


def _consumer(bootstrap_servers: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"crypto-platform-tail-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "socket.timeout.ms": 10_000,
        },
        logger=librdkafka_logger(),
    )


def _read_range(
    consumer: Consumer, topic: str, ranges: dict[int, tuple[int, int]], deadline: float
) -> list:
    """Every message in ``[start, end)`` of each partition in ``ranges``."""
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _end) in ranges.items()])
    remaining = {p for p, (start, end) in ranges.items() if start < end}
    messages = []
    while remaining:
        if time.monotonic() > deadline:
            raise TailError(f"reading the end of {topic!r} took longer than {TAIL_TIMEOUT_S}s")
        batch = consumer.consume(BATCH, timeout=1.0)
        for msg in batch:
            if msg.error() is not None:
                raise TailError(f"reading {topic!r}: {msg.error()}")
            partition, offset = msg.partition(), msg.offset()
            if partition in remaining and offset < ranges[partition][1]:
                messages.append(msg)
            if offset >= ranges[partition][1] - 1:
                remaining.discard(partition)
        if not batch:  # nothing more to read: done where the position reached the end
            positions = consumer.position([TopicPartition(topic, p) for p in remaining])
            remaining -= {tp.partition for tp in positions if tp.offset >= ranges[tp.partition][1]}
    return messages


def _partitions(consumer: Consumer, topic: str, deadline: float) -> list[int]:
    """The topic's partitions; a topic created a moment ago may need a few tries to show up."""
    give_up = min(deadline, time.monotonic() + NEW_TOPIC_GRACE_S)
    while True:
        found = consumer.list_topics(topic, timeout=TAIL_TIMEOUT_S / 4).topics[topic]
        if found.error is None:
            return list(found.partitions)
        if found.error.code() not in _NOT_YET or time.monotonic() > give_up:
            raise TailError(f"topic {topic!r}: {found.error.str()}")
        log.info("reading the end of %s: %s; retrying", topic, found.error.str())
        time.sleep(RETRY_S)


def _watermarks(consumer: Consumer, partition: TopicPartition, deadline: float) -> tuple[int, int]:
    """(low, high) offsets; retried while the broker says "not yet" (e.g. a new topic's leader)."""
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=TAIL_TIMEOUT_S / 4)
        except KafkaException as exc:
            error = exc.args[0]
            transient = error.retriable() or error.code() in _NOT_YET
            if not transient or time.monotonic() > deadline:
                raise
            log.info("reading the end of %s: %s; retrying", partition.topic, error.str())
            time.sleep(RETRY_S)


def _collect(messages: list, tails: dict[str, SymbolTail]) -> None:
    for msg in messages:
        key = msg.key()
        symbol = key.decode(errors="replace") if key else ""
        if symbol not in tails:
            continue
        try:
            trade_id = int(json.loads(msg.value())["t"])
        except (ValueError, KeyError, TypeError):
            continue  # not a trade we wrote; the DLQ is another topic, so this is rare
        tails[symbol].times_by_id[trade_id] = msg.timestamp()[1]


def read_tail(
    bootstrap_servers: str,
    topic: str,
    symbols: list[str],
    min_messages: int = MIN_MESSAGES,
    max_messages: int = MAX_MESSAGES,
) -> dict[str, SymbolTail]:
    """The wanted symbols' trades near the end of ``topic``; symbols never seen are left out."""
    tails = {s: SymbolTail(s) for s in symbols}
    deadline = time.monotonic() + TAIL_TIMEOUT_S
    consumer = _consumer(bootstrap_servers)
    try:
        partitions = _partitions(consumer, topic, deadline)
        ends = {
            partition: _watermarks(consumer, TopicPartition(topic, partition), deadline)
            for partition in partitions
        }
        chunk, read = min_messages, 0
        while ends:
            ranges = {p: (max(low, high - chunk), high) for p, (low, high) in ends.items()}
            _collect(_read_range(consumer, topic, ranges, deadline), tails)
            read += chunk
            ends = {p: (low, ranges[p][0]) for p, (low, _h) in ends.items() if ranges[p][0] > low}
            if all(t.times_by_id for t in tails.values()) or read >= max_messages:
                break
            chunk = min(chunk * 4, max_messages - read)
    except KafkaException as exc:
        raise TailError(f"cannot read the end of {topic!r} at {bootstrap_servers}: {exc}") from None
    finally:
        consumer.close()
    return {s: t for s, t in tails.items() if t.times_by_id}
