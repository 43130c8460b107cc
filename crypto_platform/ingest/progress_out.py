"""Publishing progress marks and late notices to ``trades.progress`` (key = symbol).

How a mark is computed is described in :mod:`crypto_platform.ingest.marks`; this module decides
when to send: every progress interval for each symbol whose mark moved, the unchanged mark again
every ``HEARTBEAT_S`` (so a reader sees the service is alive), and late notices before marks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from crypto_platform.core import progress
from crypto_platform.ingest.binance import StreamSlot
from crypto_platform.ingest.ledger import SymbolLedger
from crypto_platform.ingest.marks import ExchangeClock, SymbolMarks
from crypto_platform.ingest.stats import IngestStats

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _minute(minute_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(minute_ms / 1000))


class ProgressPublisher:
    def __init__(
        self,
        slot_of: dict[str, StreamSlot],
        clocks: dict[int, ExchangeClock],
        ledgers: dict[str, SymbolLedger],
        marks: dict[str, SymbolMarks],
        stats: IngestStats,
        produce: Callable[[str, bytes], None],
        clock_margin_ms: int,
        processed_through_ms: Callable[[], int],
    ) -> None:
        self.slot_of, self.clocks, self.ledgers, self.marks = slot_of, clocks, ledgers, marks
        self.stats, self._produce = stats, produce
        self.clock_margin_ms = clock_margin_ms
        self._processed_through_ms = processed_through_ms
        self._heartbeat = 0.0

    def complete_through(self, symbol: str) -> int | None:
        """The mark to publish now for ``symbol``, or None when it cannot move."""
        slot = self.slot_of[symbol]
        if not slot.is_live:
            return None
        clock = self.clocks[slot.index].estimate(self._processed_through_ms())
        clock = None if clock is None else clock - self.clock_margin_ms
        return self.marks[symbol].next_mark(clock, self.ledgers[symbol].time_bound_ms())

    def publish_marks(self, now: float) -> None:
        heartbeat = now >= self._heartbeat
        if heartbeat:
            self._heartbeat = now + HEARTBEAT_S
        for symbol, marks in self.marks.items():
            mark = self.complete_through(symbol)
            if mark is None:
                if not heartbeat or marks.published_ms is None:
                    continue
                mark = marks.published_ms
            self._produce(
                symbol, progress.encode_progress(progress.ProgressMark(symbol, mark, _wall_ms()))
            )
            marks.published_ms = mark
            self.stats.symbols[symbol].complete_through_ms = mark

    def publish_late(self) -> None:
        for symbol, marks in self.marks.items():
            late = marks.take_late()
            if late is None:
                continue
            assert late.first_id is not None and late.last_id is not None
            minutes = tuple(sorted(late.minutes_ms))
            notice = progress.LateNotice(symbol, minutes, (late.first_id, late.last_id), _wall_ms())
            self._produce(symbol, progress.encode_late(notice))
            self.stats.symbols[symbol].late_notices += 1
            log.info(
                "late trades: %s ids %d-%d reopen %d minute(s) from %s",
                symbol,
                late.first_id,
                late.last_id,
                len(minutes),
                _minute(minutes[0]),
            )
