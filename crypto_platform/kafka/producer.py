"""The platform's Kafka producer: idempotent, acks=all, batched, with honest delivery accounting.

librdkafka buffers every message until the broker acknowledges it, retrying on its own while the
broker is away, for at most ``delivery_timeout_s``. This wrapper adds what the platform needs on
top: an error callback that logs by severity (transient broker trouble is a warning, a fatal
error is critical and kept), per-topic counts of produced, delivered and failed messages,
waiting (never dropping) when the local buffer is full, and a flush with a bound.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from crypto_platform.kafka.logs import ERROR_LOG_INTERVAL_S, librdkafka_logger

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[str | None], None]
"""Called once per message: None when Kafka acknowledged it, else why it failed."""

# Wait this long to fill a batch. 5 ms keeps batches of hundreds of messages at full rate and
# most of a 50 ms delivery budget at a steady few thousand messages/s (docs/benchmarks.md).
LINGER_MS = 5
BATCH_BYTES = 1_000_000
BUFFER_MESSAGES = 2_000_000  # room to ride out a broker outage at full rate
BUFFER_KBYTES = 1_048_576  # 1 GiB
RECONNECT_BACKOFF_MAX_MS = 1_000  # find a restarted broker within a second
FULL_BUFFER_WAIT_S = 0.05
FULL_BUFFER_SLACK_S = 10.0
_TRANSIENT = {
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TRANSPORT,
    KafkaError._RESOLVE,
    KafkaError._TIMED_OUT,
    KafkaError._MSG_TIMED_OUT,
}


class DeliveryError(RuntimeError):
    """Messages could not be delivered within the bound, or the producer hit a fatal error."""


@dataclass
class DeliveryStats:
    produced: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # error callbacks by error name
    buffer_full_waits: int = 0


def producer_config(bootstrap_servers: str, delivery_timeout_s: float, **extra: Any) -> dict:
    """librdkafka settings: no duplicates from retries, every replica acknowledges, big batches."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": LINGER_MS,
        "batch.size": BATCH_BYTES,
        "compression.type": "lz4",
        "delivery.timeout.ms": int(delivery_timeout_s * 1000),
        "queue.buffering.max.messages": BUFFER_MESSAGES,
        "queue.buffering.max.kbytes": BUFFER_KBYTES,
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        "client.id": "crypto-platform",
    }
    config.update(extra)
    return config


class KafkaProducer:
    """A confluent-kafka ``Producer`` with the platform's settings and accounting."""

    def __init__(self, bootstrap_servers: str, delivery_timeout_s: float, **extra: Any) -> None:
        self.delivery_timeout_s = delivery_timeout_s
        self.stats = DeliveryStats()
        self.fatal_error: str | None = None
        self._last_logged: dict[int, float] = {}
        self._last_failure_log: dict[str, float] = {}
        config = producer_config(bootstrap_servers, delivery_timeout_s, **extra)
        config["error_cb"] = self._on_error
        self._producer = Producer(config, logger=librdkafka_logger())

    def produce(
        self,
        topic: str,
        value: bytes | str,
        key: str | bytes | None = None,
        timestamp_ms: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue one message; waits (serving callbacks) while librdkafka's buffer is full."""
        deadline = None
        # A partial, not a lambda: one Python frame less per delivery report.
        report = partial(self._on_delivery, on_delivery)
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    timestamp=timestamp_ms,
                    headers=headers,
                    on_delivery=report,
                )
                self.stats.produced[topic] += 1
                return
            except BufferError:
                # Room frees up when messages are acknowledged or time out, so the wait is
                # bounded by the delivery timeout plus slack, never forever.
                bound = 2 * self.delivery_timeout_s + FULL_BUFFER_SLACK_S
                deadline = deadline or time.monotonic() + bound
                if time.monotonic() > deadline:
                    raise DeliveryError(
                        f"the producer's buffer stayed full for {bound:.0f}s: "
                        "the broker is not taking messages"
                    ) from None
                self.stats.buffer_full_waits += 1
                self._producer.poll(FULL_BUFFER_WAIT_S)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery and error callbacks; returns how many were served."""
        return self._producer.poll(timeout_s)

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every buffered message; returns how many are left."""
        return self._producer.flush(timeout_s)

    def __len__(self) -> int:
        """Messages buffered or in flight (not yet acknowledged or failed)."""
        return len(self._producer)

    def _on_delivery(
        self, callback: DeliveryCallback | None, err: KafkaError | None, msg: Message
    ) -> None:
        topic = msg.topic() or "?"
        if err is None:
            self.stats.delivered[topic] += 1
        else:
            self.stats.failed[topic] += 1
            now = time.monotonic()
            if (
                now - self._last_failure_log.get(topic, -ERROR_LOG_INTERVAL_S)
                >= ERROR_LOG_INTERVAL_S
            ):
                self._last_failure_log[topic] = now
                log.error(
                    "delivery to %s failed: %s (%d failed so far)",
                    topic,
                    err.str(),
                    self.stats.failed[topic],
                )
        if callback is not None:
            callback(None if err is None else f"{err.name()}: {err.str()}")

    def _on_error(self, err: KafkaError) -> None:
        self.stats.errors[err.name()] += 1
        if err.fatal():
            self.fatal_error = f"{err.name()}: {err.str()}"
            log.critical("Kafka producer: fatal error %s: %s", err.name(), err.str())
            return
        now = time.monotonic()
        if now - self._last_logged.get(err.code(), 0.0) < ERROR_LOG_INTERVAL_S:
            return
        self._last_logged[err.code()] = now
        if err.code() in _TRANSIENT or err.retriable():
            log.warning(
                "Kafka producer: %s (%s); messages stay buffered and are retried for up to %.0fs",
                err.str(),
                err.name(),
                self.delivery_timeout_s,
            )
        else:
            log.error("Kafka producer: %s (%s)", err.str(), err.name())
