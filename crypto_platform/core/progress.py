"""Progress marks: how ingestion tells Dagster which minutes are complete in the topic.

Trade time is the platform's clock, but a quiet symbol or a quiet Kafka partition carries no
trades to advance it. The ingestion service knows how far it has delivered, so it publishes, to
``trades.progress`` (key = symbol), small JSON messages of two kinds:

``{"type": "progress", "symbol": "BTCUSDT", "complete_through_ms": T, "emitted_at_ms": W}``
    Every trade of ``symbol`` with trade time ``<= T`` has been *delivered* to ``trades``
    (acknowledged by the broker). Published about once a second per symbol, also when no trades
    flow, and never past an unfilled gap in the trade ids.

``{"type": "late", "symbol": "BTCUSDT", "minutes_ms": [M, ...], "trade_ids": [first, last],
   "emitted_at_ms": W}``
    Trades of those minutes (window starts, epoch ms) were delivered after the progress mark had
    already passed them (e.g. by a gap fill over REST); a minute already materialised must be
    materialised again.

A minute ``[S, S+60s)`` is closed when, for every symbol the platform follows, the latest
``complete_through_ms >= S + 60s - 1 + grace``. The functions here are pure, so the sensor,
the ingestion service and the tests share one definition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MINUTE_MS = 60_000


@dataclass(frozen=True)
class ProgressMark:
    symbol: str
    complete_through_ms: int
    emitted_at_ms: int


@dataclass(frozen=True)
class LateNotice:
    symbol: str
    minutes_ms: tuple[int, ...]
    trade_ids: tuple[int, int]
    emitted_at_ms: int


@dataclass
class Watermarks:
    """The latest progress per symbol and the minutes that late trades reopened."""

    complete_through_ms: dict[str, int] = field(default_factory=dict)
    late_minutes_ms: set[int] = field(default_factory=set)

    def apply(self, message: ProgressMark | LateNotice) -> None:
        if isinstance(message, ProgressMark):
            previous = self.complete_through_ms.get(message.symbol, -1)
            self.complete_through_ms[message.symbol] = max(previous, message.complete_through_ms)
        else:
            self.late_minutes_ms.update(message.minutes_ms)

    def closed_through_ms(self, symbols: list[str], grace_ms: int) -> int | None:
        """End (exclusive) of the last closed minute, or None while any symbol has no mark."""
        if not symbols or any(s not in self.complete_through_ms for s in symbols):
            return None
        low = min(self.complete_through_ms[s] for s in symbols) - grace_ms
        return minute_floor_ms(low + 1)


def minute_floor_ms(ms: int) -> int:
    """Start of the UTC minute holding ``ms``."""
    return ms - ms % MINUTE_MS


def encode_progress(mark: ProgressMark) -> bytes:
    return json.dumps(
        {
            "type": "progress",
            "symbol": mark.symbol,
            "complete_through_ms": mark.complete_through_ms,
            "emitted_at_ms": mark.emitted_at_ms,
        }
    ).encode()


def encode_late(notice: LateNotice) -> bytes:
    return json.dumps(
        {
            "type": "late",
            "symbol": notice.symbol,
            "minutes_ms": list(notice.minutes_ms),
            "trade_ids": list(notice.trade_ids),
            "emitted_at_ms": notice.emitted_at_ms,
        }
    ).encode()


def decode(value: bytes | str) -> ProgressMark | LateNotice | None:
    """Decode a ``trades.progress`` message; None for anything unrecognised (never raises)."""
    try:
        data: Any = json.loads(value)
        if data.get("type") == "progress":
            return ProgressMark(
                str(data["symbol"]),
                int(data["complete_through_ms"]),
                int(data.get("emitted_at_ms", 0)),
            )
        if data.get("type") == "late":
            first, last = data["trade_ids"]
            return LateNotice(
                str(data["symbol"]),
                tuple(int(m) for m in data["minutes_ms"]),
                (int(first), int(last)),
                int(data.get("emitted_at_ms", 0)),
            )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return None
