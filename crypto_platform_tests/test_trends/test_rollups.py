"""Hourly and daily roll-ups equal a direct computation over the raw trades of that hour or day
(real recorded trades, a real DuckDB file): counts, OHLC and ids exactly, floats to 1e-9."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from crypto_platform import derived, warehouse
from crypto_platform.core.archive import read_trades
from crypto_platform.core.rollups import ROLLUP_TABLES
from crypto_platform.core.trades import Trade
from crypto_platform_tests.test_defs.expected import CLOSE, EXACT, _minute
from crypto_platform_tests.test_trends.conftest import BTC_CSV, to_table, xrpeth_trades

H = 3_600_000
D = 24 * H
BUCKET = {"hour": H, "day": D}
# Counts, OHLC and ids exactly; the volumes are sums of the minutes' floats, so to 1e-9 as the
# other floats (a minute's volume is exact, 60 of them added up need not be)
ROLLUP_EXACT = tuple(c for c in EXACT if not c.endswith("volume"))
ROLLUP_CLOSE = (*CLOSE, *(c for c in EXACT if c.endswith("volume")))


def direct(trades: list[Trade], unit: str) -> dict[tuple[str, int], dict]:
    """The 1-minute definitions (pandas + Decimal, test_defs.expected) over whole hours/days."""
    size = BUCKET[unit]
    frame = pd.DataFrame(
        {
            "symbol": [t.symbol for t in trades],
            "trade_id": [t.trade_id for t in trades],
            "price": [t.price for t in trades],
            "qty": [t.qty for t in trades],
            "bucket": [t.trade_time_ms - t.trade_time_ms % size for t in trades],
            "maker": [t.buyer_is_maker for t in trades],
        }
    )
    return {
        (symbol, int(bucket)): _minute(group)
        for (symbol, bucket), group in frame.sort_values("trade_id").groupby(["symbol", "bucket"])
    }


def stored_rollups(path: Path, unit: str) -> list[dict]:
    with warehouse.connection(path, read_only=True) as conn:
        return conn.sql(f"SELECT * FROM {ROLLUP_TABLES[unit]}").to_arrow_table().to_pylist()


def assert_rollups(rows: list[dict], want: dict[tuple[str, int], dict], unit: str) -> None:
    got = {(r["symbol"], int(r["window_start"].timestamp() * 1000)): r for r in rows}
    assert sorted(got) == sorted(want)
    for key, values in want.items():
        row = got[key]
        assert int(row["window_end"].timestamp() * 1000) == key[1] + BUCKET[unit]
        for column in ROLLUP_EXACT:
            assert row[column] == values[column], (key, column, row[column], values[column])
        for column in ROLLUP_CLOSE:
            if values[column] is None:
                assert row[column] is None, (key, column)
            else:
                assert math.isclose(row[column], values[column], rel_tol=1e-9), (
                    key, column, row[column], values[column],
                )  # fmt: skip


def test_hours_and_days_of_real_trades_equal_a_direct_computation(
    tmp_path: Path, shared_binance: Path
) -> None:
    xrp = xrpeth_trades(shared_binance)  # 59 hours over three days, 2019-10-11..13
    btc = list(read_trades(shared_binance / BTC_CSV))
    trades = xrp + btc
    minutes = warehouse.minute_analytics(to_table(trades))
    path = tmp_path / "analytics.duckdb"
    starts = [int(t.timestamp() * 1000) for t in minutes["window_start"].to_pylist()]
    with warehouse.connection(path) as conn:
        warehouse.replace_minutes(conn, minutes, starts)
        for first, last in ((xrp[0], xrp[-1]), (btc[0], btc[-1])):
            start = first.trade_time_ms - first.trade_time_ms % D
            end = last.trade_time_ms - last.trade_time_ms % D + D
            for hour in range(start, end, H):  # hour by hour, as the hourly partitions run
                derived.rebuild_rollups(conn, "hour", hour, hour + H)
            derived.rebuild_rollups(conn, "day", start, end)
    hours, days = stored_rollups(path, "hour"), stored_rollups(path, "day")
    assert len(days) == 4 and len(hours) == 60 + 1
    assert_rollups(hours, direct(trades, "hour"), "hour")
    assert_rollups(days, direct(trades, "day"), "day")
    # hand-checked: the two BTCUSDT minutes of 2024-12-31 (official klines: open of 00:00,
    # close of 00:01, high/low of both, 1660 + 2552 trades)
    (btc_day,) = [r for r in days if r["symbol"] == "BTCUSDT"]
    assert (btc_day["open"], btc_day["high"], btc_day["low"], btc_day["close"]) == (
        92792.05, 92832.25, 92748.01, 92765.36,
    )  # fmt: skip
    assert btc_day["trade_count"] == 4212 and btc_day["is_complete"]
    assert math.isclose(btc_day["volume"], 6.45789 + 8.44271, rel_tol=1e-15)


def test_rebuilding_gives_the_same_rows(tmp_path: Path, shared_binance: Path) -> None:
    minutes = warehouse.minute_analytics(to_table(xrpeth_trades(shared_binance)[:3000]))
    path = tmp_path / "analytics.duckdb"
    starts = [int(t.timestamp() * 1000) for t in minutes["window_start"].to_pylist()]
    start = min(starts) - min(starts) % D
    with warehouse.connection(path) as conn:
        warehouse.replace_minutes(conn, minutes, starts)
        first = derived.rebuild_rollups(conn, "day", start, start + D)
        again = derived.rebuild_rollups(conn, "day", start, start + D)
    assert first.equals(again) and first.num_rows == 1
    assert stored_rollups(path, "day") == first.to_pylist()
