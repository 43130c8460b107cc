"""The seeded market: same seed, same trades; Binance's invariants; by time and by id alike."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal

import pytest

from crypto_platform.core.simulation import (
    BLOCK_MS,
    DEFAULT_PROFILES,
    MarketSimulation,
    SymbolProfile,
    units_to_str,
)
from crypto_platform.core.trades import parse_trade_event, trade_to_event

START = 1_764_072_000_000  # 2025-11-25 12:00:00 UTC
HOUR = 3_600_000


@pytest.fixture(scope="module")
def hour() -> list:
    sim = MarketSimulation(["btcusdt", "ethusdt", "xrpusdt"], seed=11, start_ms=START)
    return list(sim.trades_between(START, START + HOUR))


def _by_symbol(trades: list) -> dict[str, list]:
    grouped: dict[str, list] = defaultdict(list)
    for trade in trades:
        grouped[trade.symbol].append(trade)
    return grouped


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (9279205000000, "92792.05000000"),
        (129000, "0.00129000"),
        (1, "0.00000001"),
        (0, "0.00000000"),
    ],
)
def test_units_render_as_binance_decimals(units: int, text: str) -> None:
    assert units_to_str(units) == text


def test_the_same_seed_gives_the_same_trades_and_another_seed_does_not(hour: list) -> None:
    again = MarketSimulation(["btcusdt", "ethusdt", "xrpusdt"], seed=11, start_ms=START)
    other = MarketSimulation(["btcusdt", "ethusdt", "xrpusdt"], seed=12, start_ms=START)
    assert list(again.trades_between(START, START + HOUR)) == hour
    assert list(other.trades_between(START, START + 60_000)) != hour[: len(hour) // 60]


def test_trades_keep_binance_invariants(hour: list) -> None:
    grouped = _by_symbol(hour)
    assert set(grouped) == {"BTCUSDT", "ETHUSDT", "XRPUSDT"}
    times = [t.trade_time_ms for t in hour]
    assert times == sorted(times) and times[0] >= START and times[-1] < START + HOUR
    for symbol, trades in grouped.items():
        ids = [t.trade_id for t in trades]
        assert ids == list(range(DEFAULT_PROFILES[symbol].first_trade_id, ids[0] + len(ids)))
        assert [t.trade_time_ms for t in trades] == sorted(t.trade_time_ms for t in trades)
        for trade in trades[::5]:  # a fifth is plenty, and keeps the test quick
            event = trade_to_event(trade)
            assert parse_trade_event(event, now_ms=trade.trade_time_ms) == trade
            assert len(event["p"].split(".")[1]) == 8 and len(event["q"].split(".")[1]) == 8
            assert Decimal(0) < trade.price < Decimal(10) ** 10
            assert Decimal(0) < trade.qty < Decimal(10) ** 10


def test_rates_prices_and_sizes_are_realistic(hour: list) -> None:
    grouped = _by_symbol(hour)
    for symbol, trades in grouped.items():
        profile = DEFAULT_PROFILES[symbol]
        rate = len(trades) / 3600
        assert 0.7 * profile.trades_per_second < rate < 1.3 * profile.trades_per_second
        prices = [t.price for t in trades]
        assert all(p % profile.tick_size == 0 for p in prices)
        assert all(t.qty % profile.lot_size == 0 for t in trades)
        drift = abs(prices[-1] / profile.start_price - 1)
        assert drift < 10 * profile.volatility_per_hour  # a random walk, not an explosion
        assert len(set(prices)) > 10
        makers = sum(t.buyer_is_maker for t in trades) / len(trades)
        assert 0.35 < makers < 0.65


def test_time_ranges_compose_exactly(hour: list) -> None:
    sim = MarketSimulation(["btcusdt", "ethusdt", "xrpusdt"], seed=11, start_ms=START)
    cuts = [START, START + 1, START + 59_999, START + BLOCK_MS, START + 1_234_567, START + HOUR]
    pieces = [t for a, b in itertools.pairwise(cuts) for t in sim.trades_between(a, b)]
    assert pieces == hour
    assert list(sim.trades_between(START - HOUR, START)) == []


def test_any_trade_can_be_regenerated_by_id_in_a_fresh_simulation(hour: list) -> None:
    trades = _by_symbol(hour)["ETHUSDT"]
    for wanted in (trades[0], trades[777], trades[-1]):
        fresh = MarketSimulation(["btcusdt", "ethusdt", "xrpusdt"], seed=11, start_ms=START)
        assert fresh.trade_by_id("ETHUSDT", wanted.trade_id, START + HOUR) == wanted
    fresh = MarketSimulation(["ethusdt", "xrpusdt", "btcusdt"], seed=11, start_ms=START)
    assert (
        fresh.trades_from_id("ETHUSDT", trades[100].trade_id, 1000, START + HOUR)
        == (trades[100:1100])
    )
    # not yet happened at until_ms: not served
    cut = trades[500].trade_time_ms
    served = fresh.trades_from_id("ETHUSDT", trades[400].trade_id, 1000, cut)
    assert served[-1].trade_time_ms <= cut and served == trades[400 : 400 + len(served)]
    assert fresh.trade_by_id("ETHUSDT", trades[0].trade_id - 1, START + HOUR) is None
    assert fresh.latest_trades("ETHUSDT", START + HOUR, 3) == trades[-3:]


def test_unknown_symbols_get_a_plausible_profile() -> None:
    sim = MarketSimulation(["abcusdt"], seed=1, start_ms=START, rate_scale=2.0)
    trades = list(sim.trades_between(START, START + 600_000))
    assert 0.7 * 2400 < len(trades) < 1.3 * 2400  # 2 trades/s by default, doubled, 600 s
    custom = SymbolProfile(
        "ZZZUSDT", Decimal("10"), Decimal("0.1"), Decimal("1"), Decimal("5"), 1.0
    )
    sim = MarketSimulation(["zzzusdt"], seed=1, start_ms=START, profiles={"ZZZUSDT": custom})
    assert all(t.price % Decimal("0.1") == 0 for t in sim.trades_between(START, START + 60_000))
    with pytest.raises(ValueError, match="distinct"):
        MarketSimulation(["btcusdt", "BTCUSDT"])


def test_the_core_module_loads_no_kafka_dagster_or_websocket() -> None:
    code = (
        "import sys, crypto_platform.core.simulation; "
        "print(sorted(m for m in ('confluent_kafka', 'dagster', 'websocket', 'websockets') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
