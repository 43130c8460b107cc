"""Reading the end of the trades topic: each symbol's latest ids, holes included."""

from __future__ import annotations

import json

import pytest

from crypto_platform.kafka.producer import KafkaProducer
from crypto_platform.kafka.tail import TailError, read_tail

pytestmark = pytest.mark.kafka
T0 = 1_735_603_200_000


def _produce(bootstrap: str, topic: str, rows: list[tuple[str, int]]) -> None:
    producer = KafkaProducer(bootstrap, delivery_timeout_s=30)
    for symbol, trade_id in rows:
        event = {"e": "trade", "s": symbol, "t": trade_id, "T": T0 + trade_id}
        producer.produce(topic, json.dumps(event), key=symbol, timestamp_ms=T0 + trade_id)
    assert producer.flush(30) == 0


def test_the_tail_holds_the_latest_ids_and_a_hole_left_open(bootstrap: str, topic_factory) -> None:
    topic = topic_factory("tail", partitions=3)
    rows = [("BTCUSDT", i) for i in range(1, 101)] + [("BTCUSDT", i) for i in range(150, 201)]
    rows += [("BTCUSDT", i) for i in range(101, 121)]  # a gap fill, cut short by a crash
    rows += [("ETHUSDT", i) for i in range(1, 31)]
    _produce(bootstrap, topic, rows)

    tails = read_tail(bootstrap, topic, ["BTCUSDT", "ETHUSDT", "SOLUSDT"], min_messages=80)
    assert set(tails) == {"BTCUSDT", "ETHUSDT"}  # SOLUSDT was never there
    btc = tails["BTCUSDT"]
    assert btc.last_id == 200 and btc.times_by_id[200] == T0 + 200
    assert 101 in btc.times_by_id and 121 not in btc.times_by_id and 150 in btc.times_by_id
    assert tails["ETHUSDT"].last_id == 30


def test_a_quiet_symbol_is_found_further_back_and_the_search_is_bounded(
    bootstrap: str, topic_factory
) -> None:
    topic = topic_factory("tail", partitions=1)
    _produce(bootstrap, topic, [("XRPUSDT", 7)] + [("BTCUSDT", i) for i in range(1, 3001)])
    found = read_tail(bootstrap, topic, ["XRPUSDT", "BTCUSDT"], min_messages=100)
    assert found["XRPUSDT"].last_id == 7 and found["BTCUSDT"].last_id == 3000
    bounded = read_tail(
        bootstrap, topic, ["XRPUSDT", "BTCUSDT"], min_messages=100, max_messages=1000
    )
    assert "XRPUSDT" not in bounded and bounded["BTCUSDT"].last_id == 3000


def test_an_empty_topic_has_no_tail_and_a_missing_one_is_an_error(
    bootstrap: str, topic_factory
) -> None:
    assert read_tail(bootstrap, topic_factory("tail", partitions=2), ["BTCUSDT"]) == {}
    with pytest.raises(TailError, match="no-such-topic"):
        read_tail(bootstrap, "no-such-topic", ["BTCUSDT"])
