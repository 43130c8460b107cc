"""The local broker is a real Kafka: messages round-trip, start is idempotent, ports are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from crypto_platform.core.topics import DLQ_TOPIC, PROGRESS_TOPIC, TRADES_TOPIC
from crypto_platform.kafka.broker import BrokerError, LocalBroker, free_port, wait_for_free_port

pytestmark = pytest.mark.kafka


def test_platform_topics_exist_with_their_partitions(kafka_broker: LocalBroker) -> None:
    status = kafka_broker.status()
    assert status.running
    assert status.topics[TRADES_TOPIC] == 3
    assert status.topics[DLQ_TOPIC] == 1
    assert status.topics[PROGRESS_TOPIC] == 1


def test_messages_round_trip_with_key_timestamp_and_headers(bootstrap: str, topic_factory) -> None:
    topic = topic_factory("roundtrip", partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent = [(f"SYM{i % 3}", f'{{"t": {i}}}', 1_700_000_000_000 + i) for i in range(50)]
    for key, value, ts in sent:
        producer.produce(topic, key=key, value=value, timestamp=ts, headers={"h": str(ts)})
    assert producer.flush(15) == 0

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    received = []
    for _ in range(200):
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            received.append(msg)
        if len(received) == len(sent):
            break
    consumer.close()

    got = sorted((m.key().decode(), m.value().decode(), m.timestamp()[1]) for m in received)
    assert got == sorted(sent)
    assert all(dict(m.headers())["h"].decode() == str(m.timestamp()[1]) for m in received)
    # The same key always lands in the same partition: per-symbol order is kept.
    by_key: dict[str, set[int]] = {}
    for m in received:
        by_key.setdefault(m.key().decode(), set()).add(m.partition())
    assert all(len(p) == 1 for p in by_key.values())


def test_start_is_idempotent(kafka_broker: LocalBroker) -> None:
    pid = kafka_broker.pid()
    assert kafka_broker.start() is False
    assert kafka_broker.pid() == pid


def test_a_taken_port_is_reported(tmp_path: Path, kafka_broker: LocalBroker) -> None:
    other = LocalBroker(
        tmp_path, kafka_broker.cache_dir, port=kafka_broker.port, controller_port=free_port()
    )
    with pytest.raises(BrokerError, match=f"port {kafka_broker.port} .* already taken"):
        other.start()
    assert other.pid() is None


def test_stop_then_status_says_stopped_and_restart_keeps_data(
    tmp_path: Path, kafka_broker: LocalBroker
) -> None:
    broker = LocalBroker(
        tmp_path,
        kafka_broker.cache_dir,
        port=free_port(),
        controller_port=free_port(),
        heap="256m",
        trades_partitions=2,
    )
    assert broker.start() is True
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce(TRADES_TOPIC, key="BTCUSDT", value="kept")
    assert producer.flush(15) == 0
    del producer  # a live client keeps reconnecting to the stopped port
    assert broker.stop() is True
    assert broker.status().running is False
    assert broker.stop() is False
    assert wait_for_free_port(broker.port, within_s=10.0)  # released once the JVM is gone
    try:
        assert broker.start() is True
        assert broker.status().topics[TRADES_TOPIC] == 2
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "group.id": "g",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([TRADES_TOPIC])
        msg = None
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                break
        consumer.close()
        assert msg is not None and msg.value() == b"kept"
    finally:
        broker.stop()


def test_a_broker_that_cannot_start_shows_its_log(
    tmp_path: Path, kafka_broker: LocalBroker
) -> None:
    broker = LocalBroker(
        tmp_path, kafka_broker.cache_dir, port=free_port(), controller_port=free_port(), heap="1k"
    )  # the JVM refuses this heap
    with pytest.raises(BrokerError, match="exited during start-up") as info:
        broker.start()
    assert "stdout.log" in str(info.value)
