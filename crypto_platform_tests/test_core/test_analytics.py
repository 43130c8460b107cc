"""The analytics SQL on DuckDB, against hand-checked numbers and Binance's own klines."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from crypto_platform.core.analytics import (
    ANALYTICS_COLUMNS,
    analytics_table_ddl,
    minute_analytics_sql,
)
from crypto_platform.core.archive import read_klines, read_trades
from crypto_platform.core.trades import Trade, ms_to_datetime

MINUTE = 1_754_036_940_000  # 2025-08-01 08:29:00 UTC


def _table(trades: list[Trade]) -> pa.Table:
    dec = pa.decimal128(18, 8)
    return pa.table(
        {
            "symbol": pa.array([t.symbol for t in trades]),
            "trade_id": pa.array([t.trade_id for t in trades], pa.int64()),
            "price": pa.array([t.price for t in trades], dec),
            "qty": pa.array([t.qty for t in trades], dec),
            "trade_time": pa.array(
                [ms_to_datetime(t.trade_time_ms) for t in trades], pa.timestamp("ms", tz="UTC")
            ),
            "buyer_is_maker": pa.array([t.buyer_is_maker for t in trades]),
        }
    )


def _analytics(trades: list[Trade]) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("trades", _table(trades))
    rel = con.execute(minute_analytics_sql("trades"))
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def _trade(trade_id: int, price: str, qty: str = "0.5", offset_ms: int = 0, maker: bool = False):
    return Trade(
        "BTCUSDT",
        trade_id,
        Decimal(price),
        Decimal(qty),
        MINUTE + offset_ms,
        MINUTE + offset_ms,
        maker,
    )


def test_the_seed_example() -> None:
    """Seed README: 114400, 114410, 114395 -> avg 114401.67, change 0.0131% (seed says 0.13%)."""
    rows = _analytics(
        [
            _trade(1, "114400", offset_ms=15_000),
            _trade(2, "114410", offset_ms=30_000),
            _trade(3, "114395", offset_ms=45_000),
        ]
    )
    assert len(rows) == 1
    row = rows[0]
    assert row["avg_price"] == pytest.approx(114401.66666666667, rel=1e-12)
    assert row["price_change_pct"] == pytest.approx(15 / 114395 * 100, rel=1e-12)
    assert row["price_change_pct"] == pytest.approx(0.013112461208968923, rel=1e-12)
    assert row["volatility"] == pytest.approx(7.637626158259733, rel=1e-12)
    assert row["trade_count"] == 3
    assert (row["open"], row["high"], row["low"], row["close"]) == (114400, 114410, 114395, 114395)
    assert row["volume"] == 1.5 and row["vwap"] == pytest.approx(114401.66666666667, rel=1e-12)
    assert row["first_trade_id"] == 1 and row["last_trade_id"] == 3 and row["is_complete"]


def test_one_trade_has_null_volatility_and_gaps_are_flagged() -> None:
    rows = _analytics(
        [
            _trade(10, "5"),
            _trade(12, "7", offset_ms=60_000, maker=True),
            _trade(14, "9", offset_ms=61_000),
        ]
    )
    first, second = rows
    assert first["volatility"] is None and first["trade_count"] == 1 and first["is_complete"]
    assert second["window_start"].timestamp() * 1000 == MINUTE + 60_000
    assert second["taker_buy_volume"] == 0.5 and second["taker_sell_volume"] == 0.5
    assert not second["is_complete"]  # ids 12 and 14: 13 is missing


def test_real_binance_minutes_equal_the_official_klines(shared_binance: Path) -> None:
    folder = shared_binance / "btcusdt_2024-12-31"
    trades = list(read_trades(folder / "BTCUSDT-trades-2024-12-31_00-00_00-01.csv"))
    klines = {k.open_time_ms: k for k in read_klines(folder / "BTCUSDT-1m-2024-12-31.head32.csv")}
    rows = _analytics(trades)
    assert len(rows) == 2
    for row in rows:
        kline = klines[int(row["window_start"].timestamp() * 1000)]
        assert row["open"] == float(kline.open) and row["close"] == float(kline.close)
        assert row["high"] == float(kline.high) and row["low"] == float(kline.low)
        assert row["trade_count"] == kline.trade_count
        assert math.isclose(row["volume"], float(kline.volume), rel_tol=1e-12)
        assert math.isclose(row["quote_volume"], float(kline.quote_volume), rel_tol=1e-12)
        assert math.isclose(row["taker_buy_volume"], float(kline.taker_buy_volume), rel_tol=1e-12)


def test_the_table_ddl_has_every_column() -> None:
    con = duckdb.connect()
    con.execute(analytics_table_ddl())
    columns = [r[0] for r in con.execute("DESCRIBE trade_analytics_1m").fetchall()]
    assert tuple(columns) == ANALYTICS_COLUMNS
