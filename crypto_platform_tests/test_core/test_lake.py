"""The Parquet lake: layout, exact types, deduplication, deterministic atomic writes, reads."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crypto_platform.core import lake
from crypto_platform.core.read_marks import load_end_offsets, record_end_offsets
from crypto_platform.core.trade_batches import LAKE_SCHEMA, TradeBatchError, parse_events
from crypto_platform.core.trades import Trade, trade_to_event

MINUTE = 1_735_603_200_000  # 2024-12-31 00:00:00 UTC


def trade(trade_id: int, price: str, at_ms: int, symbol: str = "BTCUSDT", **kw) -> Trade:
    return Trade(
        symbol,
        trade_id,
        Decimal(price),
        Decimal(kw.get("qty", "0.5")),
        at_ms,
        kw.get("event_ms", at_ms),
        kw.get("maker", False),
    )


def table(trades: list[Trade]) -> pa.Table:
    return parse_events([json.dumps(trade_to_event(t)).encode() for t in trades])


def test_the_layout_is_hive_style_by_symbol_date_hour_minute(tmp_path: Path) -> None:
    path = lake.minute_file(tmp_path, "BTCUSDT", MINUTE + 61 * 60_000)
    assert path == tmp_path / (
        "raw_trades/symbol=BTCUSDT/date=2024-12-31/hour=01/minute=01.parquet"
    )
    assert lake.daily_file(tmp_path, "ETHUSDT", MINUTE) == tmp_path / (
        "raw_trades_daily/symbol=ETHUSDT/date=2024-12-31/trades.parquet"
    )


def test_parsed_events_have_the_lake_types_and_exact_values() -> None:
    parsed = table([trade(7, "114410.12345678", MINUTE + 5, qty="0.00000001", maker=True)])
    assert parsed.schema == LAKE_SCHEMA
    row = parsed.to_pylist()[0]
    assert row["price"] == Decimal("114410.12345678") and row["qty"] == Decimal("0.00000001")
    assert row["trade_time"].timestamp() * 1000 == MINUTE + 5
    assert row["buyer_is_maker"] is True and row["trade_id"] == 7


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b'{"e":"trade","s":"BTCUSDT"', "malformed JSON"),
        (b'{"e":"kline","s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"E":1,"m":true}', "'kline'"),
        (b'{"e":"trade","s":"BTCUSDT","t":1,"p":"1","T":1,"E":1,"m":true}', "'q'"),
        (
            b'{"e":"trade","s":"BTCUSDT","t":1,"p":"1.123456789","q":"1","T":1,"E":1,"m":true}',
            "'p'",
        ),
        (b'{"e":"trade","s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1,"E":1,"m":true}', "'p'"),
    ],
)
def test_a_bad_value_is_named_by_its_position(bad: bytes, reason: str) -> None:
    good = json.dumps(trade_to_event(trade(1, "5", MINUTE))).encode()
    with pytest.raises(TradeBatchError) as info:
        parse_events([good, good, bad, good])
    assert info.value.index == 2
    assert reason in str(info.value)


def test_duplicates_are_dropped_whatever_order_they_arrive_in() -> None:
    trades = [trade(i, str(100 + i), MINUTE + i * 1000) for i in range(1, 30)]
    copies = [*trades[:5], trade(3, "103", MINUTE + 3000, event_ms=MINUTE + 9000)]
    expected = None
    for seed in range(5):
        mixed = trades + copies
        random.Random(seed).shuffle(mixed)
        result = lake.deduplicate(table(mixed))
        assert result.dropped == 6 and result.conflicting == 0
        assert result.table["trade_id"].to_pylist() == list(range(1, 30))
        expected = expected or result.table
        assert result.table.equals(expected)  # the same copy is kept every time


def test_copies_with_different_values_are_counted_as_conflicting() -> None:
    result = lake.deduplicate(table([trade(1, "100", MINUTE), trade(1, "101", MINUTE)]))
    assert (result.dropped, result.conflicting) == (1, 1)
    assert result.table["price"].to_pylist() == [Decimal("100")]


def test_writing_a_minute_twice_gives_identical_bytes_and_sorted_rows(tmp_path: Path) -> None:
    trades = [trade(i, str(50 + i % 7), MINUTE + (i * 997) % 60_000) for i in range(1, 200)]
    random.Random(1).shuffle(trades)
    rows = lake.deduplicate(table(trades)).table
    first = lake.write_minutes(tmp_path, rows, [MINUTE])
    assert [p.name for p in first.files] == ["minute=00.parquet"]
    before = first.files[0].read_bytes()
    shuffled = rows.take(pa.array(random.Random(2).sample(range(rows.num_rows), rows.num_rows)))
    lake.write_minutes(tmp_path, lake.deduplicate(shuffled).table, [MINUTE])
    assert first.files[0].read_bytes() == before
    stored = pq.read_table(first.files[0])
    assert stored.schema.remove_metadata() == LAKE_SCHEMA
    assert stored["trade_id"].to_pylist() == list(range(1, 200))
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp files left


def test_a_minute_without_trades_has_no_file_and_loses_a_stale_one(tmp_path: Path) -> None:
    rows = table([trade(1, "10", MINUTE), trade(2, "11", MINUTE + 60_000, symbol="ETHUSDT")])
    lake.write_minutes(tmp_path, rows, [MINUTE, MINUTE + 60_000])
    report = lake.write_minutes(tmp_path, rows.slice(0, 1), [MINUTE, MINUTE + 60_000])
    assert report.removed == [lake.minute_file(tmp_path, "ETHUSDT", MINUTE + 60_000)]
    assert report.rows_per_symbol == {"BTCUSDT": 1}
    with pytest.raises(ValueError, match="not asked for"):
        lake.write_minutes(tmp_path, rows, [MINUTE])


def test_minute_files_take_precedence_over_a_compacted_day(tmp_path: Path) -> None:
    day = [trade(i, "10", MINUTE + i * 30_000) for i in range(1, 7)]  # minutes 0, 1, 2, 3
    lake.write_parquet_atomic(table(day), lake.daily_file(tmp_path, "BTCUSDT", MINUTE))
    newer = [trade(2, "99", MINUTE + 60_000), trade(3, "99", MINUTE + 90_000)]  # minute 1
    lake.write_minutes(tmp_path, table(newer), [MINUTE + 60_000])
    rows = lake.read_trades(tmp_path, MINUTE, MINUTE + 3 * 60_000)
    assert rows["trade_id"].to_pylist() == [1, 2, 3, 4, 5]
    assert rows["price"].to_pylist() == [Decimal(p) for p in ("10", "99", "99", "10", "10")]
    assert lake.read_trades(tmp_path, MINUTE + 60_000, MINUTE + 120_000).num_rows == 2


def test_misplaced_trades_are_found_with_their_file(tmp_path: Path) -> None:
    lake.write_minutes(tmp_path, table([trade(1, "1", MINUTE)]), [MINUTE])
    wrong = lake.minute_file(tmp_path, "BTCUSDT", MINUTE + 60_000)
    lake.write_parquet_atomic(table([trade(2, "1", MINUTE + 5)]), wrong)
    found = lake.misplaced_trades(tmp_path, MINUTE, MINUTE + 3_600_000)
    assert [(m.path, m.trade_ids) for m in found] == [(wrong, [2])]


def test_read_marks_keep_the_furthest_offset_per_partition(tmp_path: Path) -> None:
    record_end_offsets(tmp_path, MINUTE, "trades", {0: 10, 1: 5})
    record_end_offsets(tmp_path, MINUTE, "trades", {0: 7, 2: 3})
    assert load_end_offsets(tmp_path, MINUTE, "trades") == {0: 10, 1: 5, 2: 3}
    assert load_end_offsets(tmp_path, MINUTE, "other-topic") == {}
    assert load_end_offsets(tmp_path, MINUTE + 3_600_000, "trades") == {}


def test_files_are_right_when_ids_do_not_rise_with_time(tmp_path: Path) -> None:
    rows = table(
        [trade(1, "5", MINUTE + 70_000), trade(2, "6", MINUTE + 10), trade(3, "7", MINUTE)]
    )
    written = lake.write_minutes(tmp_path, lake.deduplicate(rows).table, [MINUTE, MINUTE + 60_000])
    first, second = (pq.read_table(p)["trade_id"].to_pylist() for p in written.files)
    assert (first, second) == ([2, 3], [1])


def test_symbol_by_symbol_writes_the_same_bytes_as_the_whole_table(tmp_path: Path) -> None:
    rng = random.Random(4)
    trades = [
        trade(i, str(100 + i % 7), MINUTE + rng.randrange(180_000), symbol=s)
        for s in ("XRPUSDT", "BTCUSDT", "ETHUSDT")
        for i in range(1, 400)
    ]
    copies = [replace(t, event_time_ms=t.event_time_ms + 5) for t in rng.sample(trades, 60)]
    clash = replace(trades[10], price=Decimal("999"), event_time_ms=trades[10].event_time_ms + 9)
    rows = table(rng.sample(trades + copies + [clash], len(trades) + 61))
    minutes = [MINUTE, MINUTE + 60_000, MINUTE + 120_000, MINUTE + 180_000]
    whole = lake.deduplicate(rows)
    reference = lake.write_minutes(tmp_path / "a", whole.table, minutes)
    lake.write_minutes(tmp_path / "b", table([trade(1, "1", MINUTE + 180_000)]), minutes)
    split = lake.deduplicate_and_write(tmp_path / "b", rows, minutes)
    assert (split.dropped, split.conflicting) == (whole.dropped, whole.conflicting) == (61, 1)
    assert split.rows_per_symbol == reference.rows_per_symbol == {
        "BTCUSDT": 399, "ETHUSDT": 399, "XRPUSDT": 399
    }  # fmt: skip
    assert [p.relative_to(tmp_path / "b") for p in split.files] == [
        p.relative_to(tmp_path / "a") for p in reference.files
    ]
    assert [p.read_bytes() for p in split.files] == [p.read_bytes() for p in reference.files]
    assert split.removed == [tmp_path / "b" / lake.RAW_DIR / (
        "symbol=BTCUSDT/date=2024-12-31/hour=00/minute=03.parquet"
    )]  # fmt: skip
    assert [len(t) for t in lake.by_symbol(rows)] == [
        len([r for r in rows["symbol"].to_pylist() if r == s])
        for s in ("BTCUSDT", "ETHUSDT", "XRPUSDT")
    ]
