"""Reading the real broker by time: ranges, duplicates kept for later, stops, floors, bad values."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from crypto_platform.core.progress import LateNotice, ProgressMark
from crypto_platform.core.trades import Trade, trade_to_event
from crypto_platform.kafka import admin
from crypto_platform.kafka.reader import (
    KafkaReadError,
    RetentionError,
    read_progress,
    read_trades,
)
from crypto_platform_tests.test_defs.helpers import (
    history_topics,
    produce_raw,
    produce_trades,
    publish_progress,
)

pytestmark = pytest.mark.kafka

H = 1_735_603_200_000  # 2024-12-31 00:00 UTC
M = 60_000
FAR = H + 10 * 24 * 3_600_000


@pytest.fixture
def topic_factory(bootstrap):
    """Topics that keep old trades: the tests' trade times are years in the past."""
    with history_topics(bootstrap) as make:
        yield make


def trade(symbol: str, trade_id: int, at_ms: int, price: str = "10") -> Trade:
    return Trade(symbol, trade_id, Decimal(price), Decimal("1"), at_ms, at_ms, False)


def market(minutes: int) -> list[Trade]:
    """Three symbols (three partitions), a trade every 10 s each, in time order."""
    trades = []
    for k in range(minutes * 6):
        for n, symbol in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
            trades.append(trade(symbol, 1000 * (n + 1) + k, H + k * 10_000 + n))
    return trades


def ids(read) -> list[tuple[str, int]]:
    rows = read.trades.select(["symbol", "trade_id"]).to_pylist()
    return sorted((r["symbol"], r["trade_id"]) for r in rows)


def test_a_range_gets_exactly_its_trades_from_every_partition(bootstrap, topic_factory) -> None:
    topic = topic_factory("trades", partitions=3)
    trades = market(10)
    produce_trades(bootstrap, topic, trades)
    read = read_trades(bootstrap, topic, H + 2 * M, H + 4 * M, stop_after_ms=FAR)
    expected = sorted(
        (t.symbol, t.trade_id) for t in trades if H + 2 * M <= t.trade_time_ms < H + 4 * M
    )
    assert ids(read) == expected and len(expected) == 36
    assert {p.partition for p in read.partitions} == {0, 1, 2}
    assert all(p.end_offset == p.high_watermark for p in read.partitions)  # stop never applied
    assert sum(p.high_watermark for p in read.partitions) == 180


def test_the_stop_rule_ends_a_partition_past_the_range_plus_lateness(
    bootstrap, topic_factory
) -> None:
    topic = topic_factory("trades", partitions=1)
    produce_trades(bootstrap, topic, [trade("BTCUSDT", i, H + i * 10_000) for i in range(60)])
    read = read_trades(bootstrap, topic, H, H + M, stop_after_ms=H + M + 15_000)
    assert [r for _s, r in ids(read)] == list(range(6))
    (part,) = read.partitions
    assert (part.start_offset, part.end_offset, part.high_watermark) == (0, 8, 60)
    assert read.messages == 8  # 6 in range + 2 in the lateness; nothing beyond


def test_a_late_trade_beyond_the_stop_is_found_with_a_floor(bootstrap, topic_factory) -> None:
    topic = topic_factory("trades", partitions=1)
    on_time = [trade("BTCUSDT", i, H + i * 10_000) for i in range(1, 30)]
    late = trade("BTCUSDT", 0, H + 5_000)  # a gap fill, produced after minutes of newer trades
    produce_trades(bootstrap, topic, [*on_time, late])
    short = read_trades(bootstrap, topic, H, H + M, stop_after_ms=H + M + 10_000)
    assert 0 not in [r for _s, r in ids(short)]
    floor = read_trades(bootstrap, topic, H, H + M, H + M + 10_000, min_end_offsets={0: 30})
    assert [r for _s, r in ids(floor)] == [0, 1, 2, 3, 4, 5]
    to_the_end = read_trades(bootstrap, topic, H, H + M, stop_after_ms=FAR)
    assert ids(to_the_end) == ids(floor)


def test_duplicates_are_returned_for_the_lake_to_drop(bootstrap, topic_factory) -> None:
    topic = topic_factory("trades", partitions=2)
    batch = [trade("BTCUSDT", i, H + i * 1000) for i in range(5)]
    produce_trades(bootstrap, topic, batch + batch[1:3])
    read = read_trades(bootstrap, topic, H, H + M, stop_after_ms=FAR)
    assert read.trades.num_rows == 7 and read.messages == 7


def test_a_bad_value_is_an_error_naming_partition_and_offset(bootstrap, topic_factory) -> None:
    topic = topic_factory("trades", partitions=1)
    produce_trades(bootstrap, topic, [trade("BTCUSDT", 1, H + 1000)])
    produce_raw(bootstrap, topic, "BTCUSDT", b'{"e":"trade","s":"BTCUSDT"', H + 2000)
    with pytest.raises(KafkaReadError, match=r"\[0\] offset 1 is not a trade: malformed JSON"):
        read_trades(bootstrap, topic, H, H + M, stop_after_ms=FAR)


def test_an_unknown_topic_is_a_clear_error(bootstrap) -> None:
    with pytest.raises(KafkaReadError, match="no-such-topic"):
        read_trades(bootstrap, "no-such-topic", H, H + M, stop_after_ms=FAR)


@pytest.fixture
def week_topic(bootstrap) -> Iterator[str]:
    """A topic with the platform's 7-day retention (its trades from 2024 are already expired)."""
    name = f"week-{uuid.uuid4().hex[:10]}"
    week = {"retention.ms": str(7 * 24 * 3_600_000)}
    admin.create_topics(bootstrap, [admin.TopicSpec(name, 1, week)])
    yield name
    admin.delete_topics(bootstrap, [name])


def test_a_range_retention_already_deleted_is_refused(bootstrap, week_topic) -> None:
    produce_trades(bootstrap, week_topic, [trade("BTCUSDT", i, H + i * 1000) for i in range(10)])
    client = AdminClient({"bootstrap.servers": bootstrap})
    futures = client.delete_records([TopicPartition(week_topic, 0, 4)])  # as retention does
    for future in futures.values():
        future.result(timeout=30)
    with pytest.raises(RetentionError, match="rebuild trade_analytics_1m from the Parquet lake"):
        read_trades(bootstrap, week_topic, H, H + M, stop_after_ms=FAR)


def test_progress_is_read_from_where_the_cursor_left_off(bootstrap, topic_factory) -> None:
    topic = topic_factory("progress", partitions=1)
    first = [ProgressMark("BTCUSDT", H + i, H + i) for i in range(5)]
    publish_progress(bootstrap, topic, first)
    produce_raw(bootstrap, topic, "BTCUSDT", b"not json", H)
    read = read_progress(bootstrap, topic)
    assert [m for _p, _o, m in read.messages] == [*first, None]
    assert read.next_offsets == {0: 6} and read.caught_up
    notice = LateNotice("BTCUSDT", (H,), (1, 2), H + 99)
    publish_progress(bootstrap, topic, [notice])
    again = read_progress(bootstrap, topic, read.next_offsets)
    assert [m for _p, _o, m in again.messages] == [notice]
    capped = read_progress(bootstrap, topic, None, max_messages=2)
    assert len(capped.messages) == 2 and capped.next_offsets == {0: 2} and not capped.caught_up


def test_the_wire_format_survives_a_round_trip(bootstrap, topic_factory) -> None:
    topic = topic_factory("trades", partitions=1)
    original = Trade(
        "ETHUSDT", 77, Decimal("3350.12345678"), Decimal("0.00010000"), H + 1, H + 9, True
    )
    produce_raw(bootstrap, topic, "ETHUSDT", json.dumps(trade_to_event(original)).encode(), H + 1)
    (row,) = read_trades(bootstrap, topic, H, H + M, stop_after_ms=FAR).trades.to_pylist()
    assert row["price"] == original.price and row["qty"] == original.qty
    assert row["event_time"].timestamp() * 1000 == H + 9 and row["buyer_is_maker"] is True
