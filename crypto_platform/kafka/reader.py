"""Read Kafka by time: the trades of a range of minutes, and the progress marks.

Nothing here joins a consumer group or commits offsets: the platform reads by trade time, so a
run that fails loses nothing and is simply run again.

Trades (:func:`read_trades`): for each partition of the topic, start at ``offsets_for_times``
of the range's start (the earliest offset whose timestamp, the trade time ``T``, is at or after
it: no trade of the range sits before it) and read until the partition's high watermark as it
was when the read began, or until a message whose trade time is past ``stop_after_ms`` (the
range's end plus the tolerated lateness) and whose offset is at or beyond the partition's
``min_end_offsets`` entry (how far earlier reads of the range went). Values are parsed in
batches by :mod:`crypto_platform.core.trade_batches`; a bad value raises
:class:`KafkaReadError` naming its partition and offset.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from crypto_platform.core.progress import LateNotice, ProgressMark, decode
from crypto_platform.core.trade_batches import TradeBatchError, empty_trades, parse_events
from crypto_platform.kafka.logs import librdkafka_logger

METADATA_TIMEOUT_S = 10.0
CONSUME_BATCH = 10_000
CONSUME_WAIT_S = 0.5
PARSE_CHUNK = 100_000
READ_TIMEOUT_S = 600.0
PROGRESS_MAX_MESSAGES = 200_000
READER_GROUP_ID = "crypto-platform-reader"  # required by librdkafka; never joined or committed
_CONSUMER_CONFIG = {
    "group.id": READER_GROUP_ID,
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "enable.partition.eof": True,
    # Small fetches, refilled quickly: librdkafka keeps each fetch response alive while any of
    # its messages waits in the queue, so big fetches cost memory (8 MB per partition held
    # ~400 MB); and a full queue postpones the next fetch by fetch.queue.backoff.ms (1 s by
    # default), which halved the read rate. 2 MB fetches with a 10 ms backoff read the bench
    # hour at ~800k messages/s in ~200 MB (bench/windows.py, docs/benchmarks.md).
    "fetch.max.bytes": 8 * 1024 * 1024,
    "max.partition.fetch.bytes": 2 * 1024 * 1024,
    "queued.max.messages.kbytes": 4 * 1024,
    "queued.min.messages": 20_000,
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 10,
}


class KafkaReadError(RuntimeError):
    """A read could not finish or met a value that is not a trade; the message says where."""


class RetentionError(KafkaReadError):
    """Kafka no longer holds (all of) the range: rebuild from the Parquet lake instead."""


@dataclass(frozen=True)
class PartitionRead:
    partition: int
    start_offset: int
    end_offset: int  # exclusive: the first offset not read
    high_watermark: int


@dataclass
class TradeRead:
    """Trades with trade time in the range (duplicates not yet dropped) and what was read."""

    trades: pa.Table
    partitions: list[PartitionRead] = field(default_factory=list)
    messages: int = 0

    @property
    def end_offsets(self) -> dict[int, int]:
        return {p.partition: p.end_offset for p in self.partitions}


def _consumer(bootstrap_servers: str) -> Consumer:
    return Consumer(
        {"bootstrap.servers": bootstrap_servers, **_CONSUMER_CONFIG}, logger=librdkafka_logger()
    )


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        reason = info.error if info is not None else "unknown topic"
        raise KafkaReadError(f"topic {topic!r} is not available: {reason}")
    return sorted(info.partitions)


def _watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    low, high = consumer.get_watermark_offsets(
        TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S, cached=False
    )
    return low, high


def _start_offsets(consumer: Consumer, topic: str, partitions: list[int], start_ms: int):
    wanted = [TopicPartition(topic, p, start_ms) for p in partitions]
    found = consumer.offsets_for_times(wanted, timeout=METADATA_TIMEOUT_S)
    for tp in found:
        if tp.error is not None:
            raise KafkaReadError(f"offsets_for_times failed on {topic}[{tp.partition}]: {tp.error}")
    return {tp.partition: tp.offset for tp in found}


def _retention_ms(bootstrap_servers: str, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers}, logger=librdkafka_logger())
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=METADATA_TIMEOUT_S)
    return int(configs["retention.ms"].value)


def _check_retention(
    bootstrap_servers: str, topic: str, start_ms: int, truncated: list[int]
) -> None:
    """Refuse a range whose start retention may already have deleted (see RetentionError)."""
    if not truncated:
        return
    retention = _retention_ms(bootstrap_servers, topic)
    horizon = int(time.time() * 1000) - retention
    if retention >= 0 and start_ms < horizon:
        raise RetentionError(
            f"{topic} partitions {truncated} no longer hold trades from before {horizon} ms "
            f"(retention.ms={retention}) and the range starts at {start_ms}: re-materialising "
            "from Kafka would lose trades; rebuild trade_analytics_1m from the Parquet lake"
        )


def read_trades(
    bootstrap_servers: str,
    topic: str,
    start_ms: int,
    end_ms: int,
    stop_after_ms: int,
    min_end_offsets: dict[int, int] | None = None,
    timeout_s: float = READ_TIMEOUT_S,
) -> TradeRead:
    """Every trade of ``topic`` with trade time in ``[start_ms, end_ms)`` (see module doc)."""
    floors = min_end_offsets or {}
    consumer = _consumer(bootstrap_servers)
    try:
        partitions = _partitions(consumer, topic)
        starts = _start_offsets(consumer, topic, partitions, start_ms)
        plan: dict[int, tuple[int, int]] = {}
        truncated = []
        for p in partitions:
            low, high = _watermarks(consumer, topic, p)
            start = high if starts[p] < 0 else starts[p]
            if low > 0 and start == low:
                truncated.append(p)
            plan[p] = (start, high)
        _check_retention(bootstrap_servers, topic, start_ms, truncated)
        scan = _TradeScan(start_ms, end_ms, stop_after_ms, floors, plan)
        try:
            for batch in _drain(consumer, topic, plan, scan.ends, timeout_s, scan.done):
                scan.take(batch)
            return scan.result(plan)
        finally:
            scan.close()
    finally:
        consumer.close()


class _TradeScan:
    """Collects values per chunk, parses them, keeps the rows of the range, applies the stop.

    Per message, only attribute reads happen in Python (list comprehensions); the stop rule is
    evaluated with numpy over each batch and the JSON is parsed by Arrow, a chunk at a time.
    """

    def __init__(self, start_ms, end_ms, stop_after_ms, floors, plan) -> None:
        self.start_ms, self.end_ms, self.stop_after_ms = start_ms, end_ms, stop_after_ms
        self.floors = floors
        self.ends = {p: start for p, (start, _high) in plan.items()}
        self.stopped: set[int] = set()
        self.values: list[bytes] = []
        self.positions: list[np.ndarray] = []  # (partition, offset) of each pending value
        self.tables: list[pa.Table] = [empty_trades()]
        self.messages = 0
        # Arrow parses without the GIL: one thread parses a chunk while the next is consumed.
        self.parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse-trades")
        self.parsing: list[Future[pa.Table]] = []

    def close(self) -> None:
        self.parser.shutdown(wait=True, cancel_futures=True)

    def take(self, batch: list[Message]) -> None:
        partitions = np.fromiter((m.partition() for m in batch), np.int64, len(batch))
        offsets = np.fromiter((m.offset() for m in batch), np.int64, len(batch))
        times = np.fromiter((m.timestamp()[1] for m in batch), np.int64, len(batch))
        keep = np.ones(len(batch), dtype=bool)
        for partition in np.unique(partitions).tolist():
            mine = partitions == partition
            if partition in self.stopped:
                keep &= ~mine
                continue
            past = mine & (times > self.stop_after_ms) & (offsets >= self.floors.get(partition, 0))
            if past.any():  # the first message past the horizon ends this partition's read
                keep &= ~(mine & (np.arange(len(batch)) >= np.argmax(past)))
                self.stopped.add(partition)
            kept = offsets[mine & keep]
            if len(kept):
                self.ends[partition] = int(kept.max()) + 1
        chosen = np.flatnonzero(keep)
        self.values += [batch[i].value() or b"" for i in chosen.tolist()]
        self.positions.append(np.stack([partitions[chosen], offsets[chosen]], axis=1))
        if len(self.values) >= PARSE_CHUNK:
            self.flush()

    def done(self, partition: int) -> bool:
        return partition in self.stopped

    def flush(self) -> None:
        """Hand the pending values to the parser thread (at most two chunks in flight)."""
        if not self.values:
            return
        values, self.values = self.values, []
        positions, self.positions = np.concatenate(self.positions), []
        self.messages += len(values)
        self.parsing.append(self.parser.submit(self._parse, values, positions))
        while len(self.parsing) > 2:
            self.tables.append(self.parsing.pop(0).result())

    def _parse(self, values: list[bytes], positions: np.ndarray) -> pa.Table:
        try:
            table = parse_events(values)
        except TradeBatchError as exc:
            partition, offset = positions[exc.index].tolist()
            raise KafkaReadError(
                f"[{partition}] offset {offset} is not a trade: {exc.reason}"
            ) from None
        ms = table["trade_time"].cast(pa.int64())
        inside = pc.and_(pc.greater_equal(ms, self.start_ms), pc.less(ms, self.end_ms))
        return table if pc.all(inside).as_py() else table.filter(inside)

    def result(self, plan: dict[int, tuple[int, int]]) -> TradeRead:
        self.flush()
        self.tables += [future.result() for future in self.parsing]
        self.parsing = []
        parts = [
            PartitionRead(p, start, self.ends[p], high) for p, (start, high) in sorted(plan.items())
        ]
        return TradeRead(pa.concat_tables(self.tables), parts, self.messages)


def _drain(
    consumer: Consumer,
    topic: str,
    plan: dict[int, tuple[int, int]],
    ends: dict[int, int],
    timeout_s: float,
    finished: Callable[[int], bool],
) -> Iterator[list[Message]]:
    """Yield batches until every partition reached its planned high watermark or is finished.

    A partition is also done at end-of-partition (which covers offsets taken by transaction
    markers, where no message ever arrives for the last offsets).
    """
    open_parts = {p for p, (start, high) in plan.items() if start < high}
    if not open_parts:
        return
    consumer.assign([TopicPartition(topic, p, plan[p][0]) for p in sorted(open_parts)])
    deadline = time.monotonic() + timeout_s
    while open_parts:
        if time.monotonic() > deadline:
            where = ", ".join(f"[{p}] at {ends[p]} of {plan[p][1]}" for p in sorted(open_parts))
            raise KafkaReadError(f"reading {topic} did not finish within {timeout_s:.0f}s: {where}")
        batch = consumer.consume(num_messages=CONSUME_BATCH, timeout=CONSUME_WAIT_S)
        messages = [m for m in batch if m.error() is None]
        if len(messages) < len(batch):
            open_parts -= {m.partition() for m in batch if _at_end(m)}
        if messages:
            yield messages
        done = {p for p in open_parts if ends[p] >= plan[p][1] or finished(p)}
        if done:
            consumer.pause([TopicPartition(topic, p) for p in sorted(done)])
            open_parts -= done


def _at_end(message: Message) -> bool:
    """True for an end-of-partition event; raises on any other Kafka error."""
    error = message.error()
    if error is None:
        return False
    if error.code() == KafkaError._PARTITION_EOF:
        return True
    raise KafkaReadError(f"Kafka error on {message.topic()}[{message.partition()}]: {error}")


@dataclass
class ProgressRead:
    """Decoded ``trades.progress`` messages (None for unrecognised ones) and where to go on."""

    messages: list[tuple[int, int, ProgressMark | LateNotice | None]]
    next_offsets: dict[int, int]
    caught_up: bool


def read_progress(
    bootstrap_servers: str,
    topic: str,
    next_offsets: dict[int, int] | None = None,
    max_messages: int = PROGRESS_MAX_MESSAGES,
    timeout_s: float = 30.0,
) -> ProgressRead:
    """Progress marks and late notices after ``next_offsets`` (from the oldest kept if None)."""
    consumer = _consumer(bootstrap_servers)
    try:
        plan = {}
        for p in _partitions(consumer, topic):
            low, high = _watermarks(consumer, topic, p)
            plan[p] = (max(low, (next_offsets or {}).get(p, low)), high)
        ends = {p: start for p, (start, _high) in plan.items()}
        decoded: list[tuple[int, int, ProgressMark | LateNotice | None]] = []
        for batch in _drain(
            consumer, topic, plan, ends, timeout_s, lambda _p: len(decoded) >= max_messages
        ):
            for message in batch:
                p, offset = message.partition(), message.offset()
                if offset >= ends[p] and offset < plan[p][1] and len(decoded) < max_messages:
                    decoded.append((p, offset, decode(message.value() or b"")))
                    ends[p] = offset + 1
    finally:
        consumer.close()
    caught_up = all(ends[p] >= high for p, (_start, high) in plan.items())
    return ProgressRead(decoded, ends, caught_up)
