"""An independent computation of the 1-minute analytics with pandas and Decimal, for comparison.

Written from the issue's definitions, not from the SQL: pandas groups the trades, every value
is then computed with exact Decimals (sums, mean, sample variance) and rounded once to float.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal

import pandas as pd

from crypto_platform.core.trades import Trade

EXACT = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "trade_count",
    "first_trade_id",
    "last_trade_id",
    "is_complete",
    "taker_buy_volume",
    "taker_sell_volume",
)
CLOSE = ("avg_price", "price_change_pct", "volatility", "quote_volume", "vwap")


def expected_analytics(trades: Iterable[Trade]) -> dict[tuple[str, int], dict]:
    """(symbol, window start ms) -> the analytics of that minute, duplicates (by id) dropped."""
    unique = {(t.symbol, t.trade_id): t for t in trades}
    frame = pd.DataFrame(
        {
            "symbol": [t.symbol for t in unique.values()],
            "trade_id": [t.trade_id for t in unique.values()],
            "price": [t.price for t in unique.values()],
            "qty": [t.qty for t in unique.values()],
            "minute": [t.trade_time_ms - t.trade_time_ms % 60_000 for t in unique.values()],
            "maker": [t.buyer_is_maker for t in unique.values()],
        }
    )
    result = {}
    for (symbol, minute), group in frame.sort_values("trade_id").groupby(["symbol", "minute"]):
        result[(symbol, int(minute))] = _minute(group)
    return result


def _minute(group: pd.DataFrame) -> dict:
    prices: list[Decimal] = list(group["price"])
    qtys: list[Decimal] = list(group["qty"])
    volume = sum(qtys, Decimal(0))
    quote = sum((p * q for p, q in zip(prices, qtys, strict=True)), Decimal(0))
    taker_buy = sum((q for q, m in zip(qtys, group["maker"], strict=True) if not m), Decimal(0))
    low, high = min(prices), max(prices)
    ids = list(group["trade_id"])
    return {
        "avg_price": float(sum(prices, Decimal(0)) / len(prices)),
        "price_change_pct": float((high - low) / low * 100),
        "volatility": _sample_std(prices),
        "trade_count": len(prices),
        "open": float(prices[0]),
        "high": float(high),
        "low": float(low),
        "close": float(prices[-1]),
        "volume": float(volume),
        "quote_volume": float(quote),
        "vwap": float(quote / volume),
        "taker_buy_volume": float(taker_buy),
        "taker_sell_volume": float(volume - taker_buy),
        "first_trade_id": ids[0],
        "last_trade_id": ids[-1],
        "is_complete": ids[-1] - ids[0] + 1 == len(ids),
    }


def _sample_std(prices: list[Decimal]) -> float | None:
    """Exact sample standard deviation (Decimal), so equal prices give exactly 0."""
    if len(prices) < 2:
        return None
    mean = sum(prices, Decimal(0)) / len(prices)
    variance = sum(((p - mean) ** 2 for p in prices), Decimal(0)) / (len(prices) - 1)
    return float(variance.sqrt())


def assert_matches(rows: list[dict], expected: dict[tuple[str, int], dict]) -> None:
    """Every row equals its expected minute: exact columns exactly, floats to 1e-9 relative."""
    got = {(r["symbol"], int(r["window_start"].timestamp() * 1000)): r for r in rows}
    assert sorted(got) == sorted(expected), "the (symbol, minute) rows differ"
    for key, want in expected.items():
        row = got[key]
        assert int(row["window_end"].timestamp() * 1000) == key[1] + 60_000
        for column in EXACT:
            assert row[column] == want[column], (key, column, row[column], want[column])
        for column in CLOSE:
            if want[column] is None:
                assert row[column] is None, (key, column)
            else:
                assert math.isclose(row[column], want[column], rel_tol=1e-9), (key, column)
