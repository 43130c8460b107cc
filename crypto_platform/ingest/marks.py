"""How far each symbol is complete in Kafka: the numbers behind the progress marks.

``complete_through_ms`` for a symbol (published to ``trades.progress``, see
:mod:`crypto_platform.core.progress`) is the minimum of:

1. the **exchange clock** estimated for the symbol's connection, minus a safety margin. The
   clock is ``max(E - local receive time)`` over the events seen on that connection (and
   ``serverTime`` from REST), plus local monotonic time: an underestimate, since ``E`` was stamped
   before the frame travelled. It is applied at the local time up to which every received frame
   has been processed, so trades waiting in the service's own queue are never claimed;
2. the **id continuity** bound: while ids are missing (a gap, or a reconnect whose REST catch-up
   has not finished), one ms before the trade time of the last contiguous id;
3. the **delivery** bound: one ms before the oldest trade Kafka has not acknowledged yet.

It does not move while the connection is down, and never goes backwards. When Kafka acknowledges
a trade at or below the mark already published (a gap filled late), its minute is reported in a
``late`` notice instead.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

from crypto_platform.core.progress import minute_floor_ms
from crypto_platform.ingest.ledger import BLOCKED, NO_BOUND


@dataclass
class ExchangeClock:
    """The exchange's clock, estimated from event times against local monotonic milliseconds."""

    offset_ms: int | None = None

    def observe(self, exchange_ms: int, local_ms: int) -> None:
        offset = exchange_ms - local_ms
        if self.offset_ms is None or offset > self.offset_ms:
            self.offset_ms = offset

    def estimate(self, local_ms: int) -> int | None:
        return None if self.offset_ms is None else self.offset_ms + local_ms


@dataclass
class InFlight:
    """Trades of one symbol handed to the producer and not yet acknowledged."""

    _heap: list[tuple[int, int]] = field(default_factory=list)  # (trade time, trade id)
    _pending: Counter[int] = field(default_factory=Counter)

    def add(self, trade_id: int, time_ms: int) -> None:
        self._pending[trade_id] += 1
        heapq.heappush(self._heap, (time_ms, trade_id))

    def done(self, trade_id: int) -> None:
        self._pending[trade_id] -= 1
        if self._pending[trade_id] <= 0:
            del self._pending[trade_id]

    def oldest_time_ms(self) -> int | None:
        while self._heap and self._heap[0][1] not in self._pending:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def lowest_id(self) -> int | None:
        return min(self._pending, default=None)

    def __len__(self) -> int:
        return sum(self._pending.values())


@dataclass
class LateTrades:
    """Minutes that acknowledged trades reopened, and the ids that did it."""

    minutes_ms: set[int] = field(default_factory=set)
    first_id: int | None = None
    last_id: int | None = None

    def add(self, trade_id: int, time_ms: int) -> None:
        self.minutes_ms.add(minute_floor_ms(time_ms))
        self.first_id = trade_id if self.first_id is None else min(self.first_id, trade_id)
        self.last_id = trade_id if self.last_id is None else max(self.last_id, trade_id)


@dataclass
class SymbolMarks:
    """Progress bookkeeping of one symbol."""

    in_flight: InFlight = field(default_factory=InFlight)
    published_ms: int | None = None
    late: LateTrades = field(default_factory=LateTrades)

    def acknowledged(self, trade_id: int, time_ms: int) -> None:
        self.in_flight.done(trade_id)
        if self.published_ms is not None and time_ms <= self.published_ms:
            self.late.add(trade_id, time_ms)

    def take_late(self) -> LateTrades | None:
        if not self.late.minutes_ms:
            return None
        late, self.late = self.late, LateTrades()
        return late

    def next_mark(self, clock_ms: int | None, continuity_bound_ms: int) -> int | None:
        """The mark to publish now, or None when it cannot move (or never could yet)."""
        if clock_ms is None or continuity_bound_ms == BLOCKED:
            return None
        bound = min(clock_ms, continuity_bound_ms if continuity_bound_ms != NO_BOUND else clock_ms)
        oldest = self.in_flight.oldest_time_ms()
        if oldest is not None:
            bound = min(bound, oldest - 1)
        if self.published_ms is not None and bound <= self.published_ms:
            return None
        return bound
