"""Crafted trades whose alerts are known by hand (see ``EXPECTED``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crypto_platform.core.alerts import AlertRule
from crypto_platform.core.trades import Trade, datetime_to_ms

T0 = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
T0_MS = datetime_to_ms(T0)

# Prices per minute after 10:00. BTCUSDT: a 2% minute at 10:01 (volatility sqrt(2)), a fall
# through 100 at 10:03, back above at 10:04, then silent 10:05-10:11. ETHUSDT: calm, every minute.
BTC = {0: ["100", "100.5"], 1: ["100", "102"], 2: ["101", "101"], 3: ["99", "99.5"]}
BTC |= {4: ["100.2", "100.4"], 12: ["100.4"]}
ETH = {m: ["50", "50.05"] for m in range(13)}

RULES = [
    AlertRule("jump", "price_change", above=1.0),
    AlertRule("jump5", "price_change", symbol="btcusdt", above=3.0, minutes=5),
    AlertRule("vol", "volatility", above=1.0),
    AlertRule("quiet", "no_trades", minutes=5),
    AlertRule("cross", "price_cross", symbol="btcusdt", level=100.0),
]
# (rule, symbol, minutes after 10:00 of window start, of window end, value), by hand:
EXPECTED = {
    ("jump", "BTCUSDT", 1, 2, 2.0),  # (102 - 100) / 100
    ("jump5", "BTCUSDT", 0, 5, 300 / 99),  # (102 - 99) / 99 over 10:00-10:05
    ("vol", "BTCUSDT", 1, 2, 2**0.5),  # sample std of 100 and 102
    ("quiet", "BTCUSDT", 5, 10, None),  # value = silent minutes seen, depends on data so far
    ("cross", "BTCUSDT", 3, 4, 99.5),
    ("cross", "BTCUSDT", 4, 5, 100.4),
}


def minute_trades(minute: int) -> list[Trade]:
    """Every crafted trade in the minute ``minute`` after 10:00, both symbols."""
    trades = []
    for symbol, prices, first_id in (("BTCUSDT", BTC, 1000), ("ETHUSDT", ETH, 5000)):
        for i, price in enumerate(prices.get(minute, [])):
            offset = 10_000 * (i + 1)
            time_ms = T0_MS + minute * 60_000 + offset
            trade_id = first_id + minute * 10 + i
            trades.append(
                Trade(
                    symbol, trade_id, Decimal(price), Decimal("0.5"), time_ms, time_ms, i % 2 == 0
                )
            )
    return trades


def all_trades() -> list[Trade]:
    return [t for m in range(13) for t in minute_trades(m)]


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)
