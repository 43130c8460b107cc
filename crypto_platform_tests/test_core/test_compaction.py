"""Daily compaction: one checked file per symbol and day; minute files go only after that."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crypto_platform.core import compaction, lake
from crypto_platform.core.compaction import CompactionError, compact_day
from crypto_platform_tests.test_core.test_lake import MINUTE, table, trade

DAY = 24 * 3_600_000


def _fill(root: Path) -> None:
    """BTCUSDT every 7 minutes over ~29 hours (206 trades on day one), ETHUSDT every 11."""
    trades = [trade(100 + i, str(10 + i % 5), MINUTE + i * 7 * 60_000) for i in range(250)]
    trades += [trade(5 + i, "3.5", MINUTE + i * 11 * 60_000, symbol="ETHUSDT") for i in range(50)]
    rows = lake.deduplicate(table(trades)).table
    lake.write_minutes(root, rows, set(lake.minute_starts(rows["trade_time"]).to_pylist()))


def test_a_day_becomes_one_file_per_symbol_with_the_same_rows(tmp_path: Path) -> None:
    _fill(tmp_path)
    before = lake.read_trades(tmp_path, MINUTE, MINUTE + DAY)
    results = compact_day(tmp_path, MINUTE)
    assert {r.symbol: r.rows for r in results} == {"BTCUSDT": 206, "ETHUSDT": 50}
    assert sum(len(r.merged) for r in results) == 256 and not any(r.kept for r in results)
    assert not lake.minute_files(tmp_path, MINUTE, MINUTE + DAY)
    daily = pq.read_table(lake.daily_file(tmp_path, "BTCUSDT", MINUTE))
    assert daily["trade_id"].to_pylist() == list(range(100, 306))
    assert lake.read_trades(tmp_path, MINUTE, MINUTE + DAY).equals(before)
    assert len(lake.minute_files(tmp_path, MINUTE + DAY, MINUTE + 2 * DAY)) == 44  # untouched


def test_a_minute_rewritten_meanwhile_is_kept_and_later_merged(tmp_path: Path, monkeypatch) -> None:
    _fill(tmp_path)
    racer = lake.minute_file(tmp_path, "BTCUSDT", MINUTE)
    real_read = compaction.read_trades

    def read_while_a_run_rewrites_minute_zero(*args, **kwargs):
        rows = real_read(*args, **kwargs)
        if racer.exists():
            lake.write_minutes(tmp_path, table([trade(100, "77", MINUTE)]), [MINUTE])
        return rows

    monkeypatch.setattr(compaction, "read_trades", read_while_a_run_rewrites_minute_zero)
    results = compact_day(tmp_path, MINUTE)
    assert results[0].kept == [racer] and racer.exists()
    monkeypatch.undo()
    assert lake.read_trades(tmp_path, MINUTE, MINUTE + 60_000)["price"].to_pylist() == [77]
    again = compact_day(tmp_path, MINUTE)
    assert [(r.symbol, r.merged) for r in again] == [("BTCUSDT", [racer])]
    assert lake.read_trades(tmp_path, MINUTE, MINUTE + 60_000)["price"].to_pylist() == [77]


def test_ids_out_of_order_across_hours_stop_the_merge_and_keep_the_files(tmp_path: Path) -> None:
    rows = table([trade(50, "1", MINUTE), trade(10, "1", MINUTE + 3_600_000)])
    lake.write_minutes(tmp_path, rows, [MINUTE, MINUTE + 3_600_000])
    with pytest.raises(CompactionError, match="not above"):
        compact_day(tmp_path, MINUTE)
    assert len(lake.minute_files(tmp_path, MINUTE, MINUTE + DAY)) == 2
    assert not lake.daily_file(tmp_path, "BTCUSDT", MINUTE).exists()
