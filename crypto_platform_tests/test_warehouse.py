"""The DuckDB file: bounded waits on another process's lock, the holder named, atomic replaces."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from crypto_platform import warehouse
from crypto_platform.core.analytics import ANALYTICS_COLUMNS
from crypto_platform_tests.test_core.test_lake import MINUTE, table, trade

HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the database open for writing for ``seconds``."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def rows_for(minutes: list[int], price: str = "10") -> pa.Table:
    trades = [trade(i + 1, price, m + 1000) for i, m in enumerate(minutes)]
    return warehouse.minute_analytics(table(trades))


def test_a_lock_that_does_not_clear_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    holder = hold_lock(path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(warehouse.WarehouseLockedError) as info:
            warehouse.connect(path, read_only=True, timeout_s=1.0)
        assert time.monotonic() - started < 3
        assert f"PID {holder.pid} (" in str(info.value) and "after 1s" in str(info.value)
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_brief_lock_is_waited_out(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    holder = hold_lock(path, 1.5)
    try:
        with warehouse.connection(path, timeout_s=20) as conn:
            assert conn.execute("SELECT 42").fetchone() == (42,)
    finally:
        holder.wait(timeout=20)


def test_replacing_minutes_swaps_exactly_those_rows(tmp_path: Path) -> None:
    minutes = [MINUTE + k * 60_000 for k in range(4)]
    with warehouse.connection(tmp_path / "a.duckdb") as conn:
        assert warehouse.replace_minutes(conn, rows_for(minutes), minutes) == 0
        newer = rows_for(minutes[1:3], price="20")
        assert warehouse.replace_minutes(conn, newer, [minutes[1], minutes[2], minutes[3]]) == 3
        stored = warehouse.read_minutes(conn, MINUTE, MINUTE + 3_600_000)
    assert stored.column_names == list(ANALYTICS_COLUMNS)
    assert [(r["window_start"].minute, r["close"]) for r in stored.to_pylist()] == [
        (0, 10.0),
        (1, 20.0),
        (2, 20.0),
    ]  # minute 3 had no rows in the replacement: its old row is gone too


def test_a_failed_replace_leaves_the_old_rows(tmp_path: Path) -> None:
    minutes = [MINUTE, MINUTE + 60_000]
    with warehouse.connection(tmp_path / "a.duckdb") as conn:
        warehouse.replace_minutes(conn, rows_for(minutes), minutes)
        twice = pa.concat_tables([rows_for(minutes, "30"), rows_for(minutes, "30")])
        with pytest.raises(Exception, match=r"(?i)constraint|duplicate"):
            warehouse.replace_minutes(conn, twice, minutes)
        stored = warehouse.read_minutes(conn, MINUTE, MINUTE + 3_600_000).to_pylist()
    assert [r["close"] for r in stored] == [10.0, 10.0]
    assert stored[0]["window_start"] == datetime.fromtimestamp(MINUTE / 1000, tz=UTC)
