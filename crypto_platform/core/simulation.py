"""A deterministic market: seeded trades for several symbols, reproducible by time or by id.

The exchange simulator streams it, the Dagster tests and the benchmarks read it directly, so the
same seed always means the same trades, whichever way they are asked for:

- time is cut into 60-second *blocks* from ``start_ms``; block ``b`` of a symbol is drawn from a
  random generator seeded with ``(seed, symbol, b)``, so a block never depends on who asked first;
- the only state that chains blocks is the block's first trade id and its opening price, kept as
  checkpoints, so "all trades between t0 and t1" and "the trade with id N" are both cheap;
- prices are a random walk in whole ticks (integers: exact), sizes are log-normal in whole lots,
  both rendered as Binance's 8-decimal strings, which fit the lake's DECIMAL(18, 8);
- trade ids are consecutive per symbol and trade times never decrease with the id, as on Binance.

Nothing here imports Kafka, Dagster or a WebSocket library.
"""

from __future__ import annotations

import bisect
import heapq
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

import numpy as np

from crypto_platform.core.trades import Trade

BLOCK_MS = 60_000
_UNITS = 10**8  # prices and sizes are kept as integers of 1e-8 (Binance's 8 decimals)
_MAX_UNITS = 10**18 - 1  # DECIMAL(18, 8) holds < 10^10


@dataclass(frozen=True)
class SymbolProfile:
    """How one symbol trades: price level and grid, typical size, activity and volatility."""

    symbol: str
    start_price: Decimal
    tick_size: Decimal
    lot_size: Decimal
    typical_qty: Decimal
    trades_per_second: float
    volatility_per_hour: float = 0.01  # standard deviation of the log price over an hour
    first_trade_id: int = 1


DEFAULT_PROFILES: dict[str, SymbolProfile] = {
    p.symbol: p
    for p in (
        SymbolProfile(
            "BTCUSDT",
            Decimal("92790.00"),
            Decimal("0.01"),
            Decimal("0.00001"),
            Decimal("0.002"),
            20.0,
            0.008,
            4_400_000_000,
        ),
        SymbolProfile(
            "ETHUSDT",
            Decimal("3350.00"),
            Decimal("0.01"),
            Decimal("0.0001"),
            Decimal("0.05"),
            12.0,
            0.01,
            2_000_000_000,
        ),
        SymbolProfile(
            "BNBUSDT",
            Decimal("700.00"),
            Decimal("0.01"),
            Decimal("0.001"),
            Decimal("0.5"),
            3.0,
            0.01,
            900_000_000,
        ),
        SymbolProfile(
            "SOLUSDT",
            Decimal("190.00"),
            Decimal("0.01"),
            Decimal("0.001"),
            Decimal("1.5"),
            8.0,
            0.015,
            1_000_000_000,
        ),
        SymbolProfile(
            "XRPUSDT",
            Decimal("2.0800"),
            Decimal("0.0001"),
            Decimal("0.1"),
            Decimal("300"),
            6.0,
            0.015,
            800_000_000,
        ),
    )
}


def default_profile(symbol: str) -> SymbolProfile:
    """The built-in profile of a known symbol, else a plausible one derived from its name."""
    symbol = symbol.upper()
    if symbol in DEFAULT_PROFILES:
        return DEFAULT_PROFILES[symbol]
    digest = zlib.crc32(symbol.encode())
    price = Decimal(1 + digest % 500)
    return SymbolProfile(
        symbol,
        price,
        Decimal("0.0001"),
        Decimal("0.01"),
        Decimal("10"),
        2.0,
        0.02,
        1_000_000 + digest % 1_000_000,
    )


def units_to_str(units: int) -> str:
    """Integer count of 1e-8 as Binance writes it: ``9279205000000`` -> ``92792.05000000``."""
    return f"{units // _UNITS}.{units % _UNITS:08d}"


def _to_units(value: Decimal) -> int:
    return int(value * _UNITS)


@dataclass(frozen=True)
class _Block:
    """One symbol's trades in one 60-second block, as integer columns."""

    first_id: int
    times_ms: np.ndarray
    price_units: np.ndarray
    qty_units: np.ndarray
    buyer_is_maker: np.ndarray
    end_ticks: int

    def __len__(self) -> int:
        return len(self.times_ms)

    def trade(self, symbol: str, index: int) -> Trade:
        time_ms = int(self.times_ms[index])
        return Trade(
            symbol=symbol,
            trade_id=self.first_id + index,
            price=Decimal(int(self.price_units[index])).scaleb(-8),
            qty=Decimal(int(self.qty_units[index])).scaleb(-8),
            trade_time_ms=time_ms,
            event_time_ms=time_ms,
            buyer_is_maker=bool(self.buyer_is_maker[index]),
        )


class SymbolSimulation:
    """The trades of one symbol; blocks are drawn on demand and their checkpoints remembered."""

    def __init__(self, profile: SymbolProfile, seed: int, start_ms: int, rate_scale: float):
        self.profile = profile
        self.symbol = profile.symbol
        self.start_ms = start_ms
        self._seed = seed
        self._symbol_key = zlib.crc32(profile.symbol.encode())
        self._tick_units = _to_units(profile.tick_size)
        self._lot_units = _to_units(profile.lot_size)
        self._rate = profile.trades_per_second * rate_scale
        # checkpoints[b] = (first trade id of block b, opening price of block b in ticks)
        self._checkpoints: list[tuple[int, int]] = [
            (profile.first_trade_id, int(profile.start_price / profile.tick_size))
        ]
        self.block = lru_cache(maxsize=64)(self._draw_block)

    def checkpoint(self, index: int) -> tuple[int, int]:
        """(first trade id, opening price in ticks) of block ``index``; draws earlier blocks."""
        while len(self._checkpoints) <= index:
            previous = self.block(len(self._checkpoints) - 1)
            self._checkpoints.append((previous.first_id + len(previous), previous.end_ticks))
        return self._checkpoints[index]

    def _draw_block(self, index: int) -> _Block:
        first_id, open_ticks = self.checkpoint(index)
        rng = np.random.default_rng([self._seed, self._symbol_key, index])
        activity = self._rate * BLOCK_MS / 1000 * float(np.exp(rng.normal(0.0, 0.3)))
        count = int(rng.poisson(activity))
        times = np.sort(rng.integers(0, BLOCK_MS, count)) + self.start_ms + index * BLOCK_MS
        sigma = self.profile.volatility_per_hour / np.sqrt(max(self._rate, 1e-9) * 3600)
        steps = np.rint(rng.normal(0.0, sigma * open_ticks, count)).astype(np.int64)
        ticks = open_ticks + np.cumsum(steps)
        ticks = np.where(ticks < 1, 2 - ticks, ticks)  # reflect at one tick: prices stay > 0
        lots = np.rint(
            float(self.profile.typical_qty / self.profile.lot_size)
            * np.exp(rng.normal(0.0, 1.0, count))
        ).astype(np.int64)
        makers = np.where(steps == 0, rng.random(count) < 0.5, steps < 0)
        return _Block(
            first_id=first_id,
            times_ms=times.astype(np.int64),
            price_units=np.minimum(ticks * self._tick_units, _MAX_UNITS),
            qty_units=np.minimum(np.maximum(lots, 1) * self._lot_units, _MAX_UNITS),
            buyer_is_maker=makers,
            end_ticks=int(ticks[-1]) if count else open_ticks,
        )

    def block_index(self, time_ms: int) -> int:
        return max(0, (time_ms - self.start_ms) // BLOCK_MS)

    def trades_between(self, start_ms: int, end_ms: int) -> Iterator[Trade]:
        """Trades with ``start_ms <= T < end_ms``, by id."""
        if end_ms <= self.start_ms:
            return
        for index in range(self.block_index(start_ms), self.block_index(end_ms - 1) + 1):
            block = self.block(index)
            low = int(np.searchsorted(block.times_ms, start_ms, side="left"))
            high = int(np.searchsorted(block.times_ms, end_ms, side="left"))
            for position in range(low, high):
                yield block.trade(self.symbol, position)

    def _find_block(self, trade_id: int, until_ms: int) -> int | None:
        """Index of the block holding ``trade_id``, if that block starts by ``until_ms``."""
        if trade_id < self.profile.first_trade_id:
            return None
        firsts = [first for first, _ in self._checkpoints]
        index = max(0, bisect.bisect_right(firsts, trade_id) - 1)
        while index <= self.block_index(until_ms):
            first_id, _ = self.checkpoint(index)
            if trade_id < first_id + len(self.block(index)):
                return index
            index += 1
        return None

    def trades_from_id(self, from_id: int, limit: int, until_ms: int) -> list[Trade]:
        """Up to ``limit`` trades with id >= ``from_id`` and trade time <= ``until_ms``, by id."""
        from_id = max(from_id, self.profile.first_trade_id)
        index = self._find_block(from_id, until_ms)
        if index is None:
            return []
        found: list[Trade] = []
        position = from_id - self.block(index).first_id
        while len(found) < limit and index <= self.block_index(until_ms):
            block = self.block(index)
            while position < len(block) and len(found) < limit:
                if block.times_ms[position] > until_ms:
                    return found
                found.append(block.trade(self.symbol, position))
                position += 1
            index, position = index + 1, 0
        return found

    def latest_trades(self, until_ms: int, limit: int) -> list[Trade]:
        """The last ``limit`` trades with trade time <= ``until_ms``, by id."""
        found: list[Trade] = []
        index = self.block_index(until_ms)
        while index >= 0 and len(found) < limit and until_ms >= self.start_ms:
            block = self.block(index)
            high = int(np.searchsorted(block.times_ms, until_ms, side="right"))
            for position in range(high - 1, -1, -1):
                found.append(block.trade(self.symbol, position))
                if len(found) == limit:
                    break
            index -= 1
        return found[::-1]

    def trade_by_id(self, trade_id: int, until_ms: int) -> Trade | None:
        found = self.trades_from_id(trade_id, 1, until_ms)
        return found[0] if found and found[0].trade_id == trade_id else None


class MarketSimulation:
    """Several symbols' trades from one seed, starting at ``start_ms``.

    ``MarketSimulation(["btcusdt", "ethusdt"], seed=7, start_ms=...)`` gives the same trades on
    every machine and every call; ``rate_scale`` multiplies every symbol's trade rate.
    """

    def __init__(
        self,
        symbols: Iterable[str],
        seed: int = 7,
        start_ms: int = 1_764_072_000_000,
        rate_scale: float = 1.0,
        profiles: dict[str, SymbolProfile] | None = None,
    ) -> None:
        if rate_scale <= 0:
            raise ValueError(f"rate_scale must be positive, got {rate_scale}")
        self.symbols = [s.upper() for s in symbols]
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"need distinct symbols, got {self.symbols}")
        self.seed = seed
        self.start_ms = start_ms
        chosen = profiles or {}
        self._symbols = {
            s: SymbolSimulation(chosen.get(s) or default_profile(s), seed, start_ms, rate_scale)
            for s in self.symbols
        }

    def symbol(self, symbol: str) -> SymbolSimulation:
        try:
            return self._symbols[symbol.upper()]
        except KeyError:
            raise KeyError(f"{symbol} is not simulated (symbols: {self.symbols})") from None

    def trades_between(
        self, start_ms: int, end_ms: int, symbols: Iterable[str] | None = None
    ) -> Iterator[Trade]:
        """Every trade with ``start_ms <= T < end_ms``, ordered by (trade time, symbol, id)."""
        chosen = [self.symbol(s) for s in (symbols or self.symbols)]
        streams = [
            (
                (t.trade_time_ms, sim.symbol, t.trade_id, t)
                for t in sim.trades_between(start_ms, end_ms)
            )
            for sim in chosen
        ]
        for *_key, trade in heapq.merge(*streams):
            yield trade

    def trades_from_id(self, symbol: str, from_id: int, limit: int, until_ms: int) -> list[Trade]:
        return self.symbol(symbol).trades_from_id(from_id, limit, until_ms)

    def latest_trades(self, symbol: str, until_ms: int, limit: int) -> list[Trade]:
        return self.symbol(symbol).latest_trades(until_ms, limit)

    def trade_by_id(self, symbol: str, trade_id: int, until_ms: int) -> Trade | None:
        """Regenerate one trade by id (``None`` if it has not happened by ``until_ms``)."""
        return self.symbol(symbol).trade_by_id(trade_id, until_ms)
