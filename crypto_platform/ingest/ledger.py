"""Per-symbol trade-id continuity: which ids are produced, which are missing, how far time is safe.

Binance numbers each symbol's trades 1, 2, 3, ... and trade times never decrease with the id.
So one number, ``next_id``, says "every id below this has been produced", and the trade time of
``next_id - 1`` bounds the times that are complete: any missing trade has an id >= ``next_id``,
hence a trade time >= that one. Trades that arrive beyond a hole are produced at once and kept
in ``ahead`` until the hole is filled, when ``next_id`` jumps over them.

Pure logic, no I/O: the service feeds it ids, asks what is missing, and tells it what is lost.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NO_BOUND = 2**62  # "nothing here limits the progress mark"
BLOCKED = -1  # "the progress mark must not move"


class Verdict(enum.Enum):
    NEW = "new"  # produce it
    DUPLICATE = "duplicate"  # already produced by this process: skip
    BEFORE_START = "before_start"  # older than where tracking began: produce, not tracked


@dataclass
class SymbolLedger:
    symbol: str
    next_id: int | None = None  # every id in [start_id, next_id) has been produced
    start_id: int | None = None
    last_time_ms: int | None = None  # trade time of id next_id - 1
    ahead: dict[int, int | None] = field(default_factory=dict)  # ids > next_id -> trade time
    max_ahead: int | None = None
    catching_up: bool = False  # after a (re)connect, until REST confirms nothing was missed
    start_hint: tuple[int, int] | None = None  # (id, time) of the exchange's latest at start

    @classmethod
    def from_tail(cls, symbol: str, times_by_id: dict[int, int]) -> SymbolLedger:
        """Resume from the ids found at the end of the topic; holes among them stay missing."""
        ledger = cls(symbol)
        for trade_id in sorted(times_by_id):
            ledger.accept(trade_id, times_by_id[trade_id])
        return ledger

    def hint_start(self, latest_id: int, latest_time_ms: int) -> None:
        """A never-seen symbol: the exchange's latest trade when the stream was already open.

        Tracking then starts at the first stream trade, or right after ``latest_id`` if the
        stream's first trade comes later than that (the ids between are then a gap).
        """
        if self.next_id is None:
            self.start_hint = (latest_id, latest_time_ms)

    def accept(self, trade_id: int, time_ms: int) -> Verdict:
        """Record that ``trade_id`` arrived; the verdict says whether to produce it."""
        if self.next_id is None or self.start_id is None:
            if self.start_hint is not None and self.start_hint[0] + 1 < trade_id:
                latest_id, latest_time = self.start_hint
                self.start_id, self.next_id, self.last_time_ms = (
                    latest_id + 1,
                    latest_id + 1,
                    latest_time,
                )
                return self.accept(trade_id, time_ms)
            self.start_id, self.next_id, self.last_time_ms = trade_id, trade_id + 1, time_ms
            return Verdict.NEW
        if trade_id < self.start_id:
            return Verdict.BEFORE_START
        if trade_id < self.next_id or trade_id in self.ahead:
            return Verdict.DUPLICATE
        if trade_id == self.next_id:
            self.next_id, self.last_time_ms = trade_id + 1, time_ms
            if self.ahead:
                self._absorb()
            return Verdict.NEW
        self.ahead[trade_id] = time_ms
        self.max_ahead = trade_id if self.max_ahead is None else max(self.max_ahead, trade_id)
        return Verdict.NEW

    def _absorb(self) -> None:
        assert self.next_id is not None
        while self.next_id in self.ahead:
            time_ms = self.ahead.pop(self.next_id)
            self.last_time_ms = self.last_time_ms if time_ms is None else time_ms
            self.next_id += 1
        if not self.ahead:
            self.max_ahead = None

    def is_produced(self, trade_id: int) -> bool:
        if self.next_id is None or self.start_id is None:
            return False
        return self.start_id <= trade_id < self.next_id or trade_id in self.ahead

    def missing_range(self) -> tuple[int, int] | None:
        """The first run of missing ids, (first, last): what to fetch next."""
        if self.next_id is None or not self.ahead:
            return None
        return (self.next_id, min(self.ahead) - 1)

    def missing_runs(self, first_id: int, last_id: int) -> list[tuple[int, int]]:
        """The ranges of ids in [first, last] not produced yet."""
        if self.next_id is None:
            return []
        runs, cursor = [], max(first_id, self.next_id)
        for trade_id in sorted(i for i in self.ahead if cursor <= i <= last_id):
            if trade_id > cursor:
                runs.append((cursor, trade_id - 1))
            cursor = trade_id + 1
        if cursor <= last_id:
            runs.append((cursor, last_id))
        return runs

    def give_up(self, first_id: int, last_id: int) -> list[tuple[int, int]]:
        """Declare the missing ids in [first, last] lost; return the ranges that were missing."""
        lost = self.missing_runs(first_id, last_id)
        if not lost or self.next_id is None:
            return lost
        if lost[0][0] == self.next_id:  # the usual case: the hole starts right at next_id
            self.next_id = lost[0][1] + 1
            lost_rest = lost[1:]
        else:
            lost_rest = lost
        for start, end in lost_rest:  # rare: holes further up are remembered as "not coming"
            self.ahead.update(dict.fromkeys(range(start, end + 1)))
            self.max_ahead = max(self.max_ahead or end, end)
        self._absorb()
        return lost

    def time_bound_ms(self) -> int:
        """Latest trade time whose trades are all produced, as far as ids can tell."""
        if not self.catching_up and not self.ahead:
            return NO_BOUND
        return BLOCKED if self.last_time_ms is None else self.last_time_ms - 1
