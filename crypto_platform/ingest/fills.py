"""When to fill trade-id gaps over REST, what came back, and what to report as lost.

After a (re)connect a symbol is *catching up*: the first trade the stream sends pins down what
was missed (the ids between the last one produced and it); a symbol still quiet after
``GAP_GRACE_S`` is checked over REST from its next id to the exchange's latest instead (a symbol
never seen asks only for the latest trade, where its tracking starts). A jump in ids on a live
stream opens a gap that is filled after ``GAP_GRACE_S`` (trades from an overlapping rollover
connection often fill it first). One REST job per symbol at a time, each asking for exactly the
first run of missing ids. Ids the exchange does not have, and gaps still open after
``give_up_s``, are reported (ERROR log, a DLQ record with reason ``unfilled_gap``) and skipped.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crypto_platform.core.trades import Trade, TradeValidationError, parse_trade_event
from crypto_platform.ingest.binance import StreamSlot, backoff_delay
from crypto_platform.ingest.gaps import FillJob, GapFiller
from crypto_platform.ingest.ledger import SymbolLedger
from crypto_platform.ingest.stats import IngestStats

log = logging.getLogger(__name__)

GAP_GRACE_S = 1.0

Accept = Callable[[Trade, bytes, int, bool], bool]  # (trade, value, received_ms, from_rest)
DeadLetter = Callable[[bytes, str, str, int, Any], None]  # (raw, reason, detail, ms, symbol)


@dataclass
class _Fill:
    """A fill job under way, and what it has delivered so far."""

    job: FillJob
    started: float
    expected: int | None
    first: int | None = None
    last: int | None = None
    count: int = 0
    pages: int = 0


def _compact(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


class GapFills:
    """The REST side of continuity, driven by the service's main loop (single-threaded)."""

    def __init__(
        self,
        ledgers: dict[str, SymbolLedger],
        slot_of: dict[str, StreamSlot],
        filler: GapFiller,
        accept: Accept,
        dead_letter: DeadLetter,
        stats: IngestStats,
        backoff_s: tuple[float, float],
        give_up_s: float,
    ) -> None:
        self.ledgers, self.slot_of, self.filler = ledgers, slot_of, filler
        self._accept, self._dead_letter, self.stats = accept, dead_letter, stats
        self.backoff_s, self.give_up_s = backoff_s, give_up_s
        self.log: list[dict[str, Any]] = []  # every gap filled or lost, for the stats
        self.jobs: dict[int, _Fill] = {}
        self.job_of: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._trouble_since: dict[str, float] = {}  # a gap or catch-up open since (monotonic)
        self._catch_up_cause: dict[str, str] = {}  # why the next catch-up happens
        self._catch_up_due: dict[str, float] = {}  # when to stop waiting for the stream
        self._gap_cause: dict[str, str] = {}  # why a symbol's open gap happened
        self._job_ids = 0
        self._rng = random.Random()

    # -- what the connections tell us --------------------------------------------------------

    def set_cause(self, symbols: list[str], cause: str) -> None:
        """Why the next catch-up of these symbols happens (start, restart, reconnect)."""
        self._catch_up_cause.update(dict.fromkeys(symbols, cause))

    def connected(self, symbols: list[str], now: float) -> None:
        for symbol in symbols:
            self.ledgers[symbol].catching_up = True
            self._catch_up_due[symbol] = now + GAP_GRACE_S
            self._trouble_since.setdefault(symbol, now)
            self._retry_at.pop(symbol, None)

    def stream_continues(self, symbol: str, had_gap: bool, trade_id: int) -> None:
        """A new trade from the stream: after a (re)connect it pins down what was missed."""
        ledger = self.ledgers[symbol]
        if ledger.catching_up:  # anything missed while down has an id below this one
            ledger.catching_up = False
            self._gap_cause[symbol] = self._catch_up_cause.get(symbol, "reconnect")
        if not had_gap and ledger.max_ahead is not None:
            first, last = ledger.missing_range() or (0, 0)
            cause = self._gap_cause.setdefault(symbol, "id jump")
            log.warning(
                "%s: ids %d-%d missing (%s; the stream resumed at %d); filling over REST",
                symbol,
                first,
                last,
                cause,
                trade_id,
            )
            self._trouble_since.setdefault(symbol, time.monotonic())

    # -- jobs --------------------------------------------------------------------------------

    def schedule(self, now: float) -> None:
        for symbol, ledger in self.ledgers.items():
            if symbol in self.job_of or now < self._retry_at.get(symbol, 0.0):
                continue
            missing = ledger.missing_range()
            if ledger.catching_up:  # quiet since the (re)connect: ask REST what was missed
                if self.slot_of[symbol].is_live and now >= self._catch_up_due.get(symbol, 0.0):
                    cause = self._catch_up_cause.get(symbol, "reconnect")
                    self._submit(symbol, ledger.next_id, None, cause)
            elif missing and now - self._trouble_since.get(symbol, now) >= GAP_GRACE_S:
                self._submit(symbol, missing[0], missing[1], self._gap_cause.pop(symbol, "id jump"))
            elif not missing:
                self._trouble_since.pop(symbol, None)
                self._gap_cause.pop(symbol, None)

    def _submit(self, symbol: str, from_id: int | None, to_id: int | None, cause: str) -> None:
        self._job_ids += 1
        job = FillJob(self._job_ids, symbol, from_id, to_id, cause, self.slot_of[symbol].index)
        self.jobs[job.job_id] = _Fill(job, time.monotonic(), expected=from_id)
        self.job_of[symbol] = job.job_id
        self.filler.submit(job)

    def _end(self, fill: _Fill) -> None:
        del self.jobs[fill.job.job_id]
        self.job_of.pop(fill.job.symbol, None)

    def on_page(self, job_id: int, events: list[tuple[dict, int]], done: bool) -> None:
        fill = self.jobs.get(job_id)
        if fill is None:
            return
        fill.pages += 1
        if fill.job.from_id is None:
            self._on_latest(fill, events)
            return
        symbol = fill.job.symbol
        for event, received_ms in events:
            try:
                trade = parse_trade_event(event, frozenset([symbol]), now_ms=received_ms)
            except TradeValidationError as exc:
                detail = f"{exc.detail} (REST)"
                self._dead_letter(_compact(event), exc.reason, detail, received_ms, symbol)
                continue
            if fill.expected is not None and trade.trade_id > fill.expected:
                self._lose(
                    symbol, fill.expected, trade.trade_id - 1, "the exchange has no such ids"
                )
            fill.expected = trade.trade_id + 1
            if self._accept(trade, _compact(event), received_ms, True):
                fill.first = trade.trade_id if fill.first is None else fill.first
                fill.last, fill.count = trade.trade_id, fill.count + 1
        if done:
            self._finish(fill)

    def _on_latest(self, fill: _Fill, events: list[tuple[dict, int]]) -> None:
        """A never-seen symbol: where the exchange stands, now that the stream is open."""
        symbol, ledger = fill.job.symbol, self.ledgers[fill.job.symbol]
        latest: Trade | None = None
        for event, received_ms in events[-1:]:
            try:
                latest = parse_trade_event(event, frozenset([symbol]), now_ms=received_ms)
            except TradeValidationError as exc:
                log.warning("%s: the exchange's latest trade is not valid: %s", symbol, exc)
        if latest is not None:
            ledger.hint_start(latest.trade_id, latest.trade_time_ms)
        log.info(
            "%s: the exchange's latest trade is %s; tracking starts with the stream",
            symbol,
            latest.trade_id if latest else "none (no trades yet)",
        )
        ledger.catching_up = False
        self._end(fill)

    def _finish(self, fill: _Fill) -> None:
        job = fill.job
        reached = fill.expected if fill.expected is not None else job.from_id
        if job.to_id is not None and reached is not None and reached <= job.to_id:
            self._lose(job.symbol, reached, job.to_id, "REST ended before these ids")
        if job.to_id is None:
            self.ledgers[job.symbol].catching_up = False
        self._end(fill)
        self._attempts.pop(job.symbol, None)
        elapsed = time.monotonic() - fill.started
        if not fill.count:
            log.info(
                "%s: nothing missed (%s; REST checked in %.2fs)", job.symbol, job.cause, elapsed
            )
            return
        self.stats.symbols[job.symbol].gaps_filled += 1
        self.log.append(
            {
                "symbol": job.symbol,
                "first_id": fill.first,
                "last_id": fill.last,
                "trades": fill.count,
                "cause": job.cause,
            }
        )
        log.info(
            "gap filled: %s ids %d-%d, %d trades over REST (%s; %d request(s), %.2fs)",
            job.symbol,
            fill.first,
            fill.last,
            fill.count,
            job.cause,
            fill.pages,
            elapsed,
        )

    def on_page_error(self, job_id: int, message: str, retry_after_s: float | None) -> None:
        fill = self.jobs.get(job_id)
        if fill is None:
            return
        self._end(fill)
        symbol = fill.job.symbol
        attempt = self._attempts.get(symbol, 0)
        self._attempts[symbol] = attempt + 1
        delay = max(backoff_delay(attempt, *self.backoff_s, self._rng), retry_after_s or 0.0)
        self._retry_at[symbol] = time.monotonic() + delay
        log.warning(
            "%s: REST fill (%s) failed: %s; retrying in %.1fs",
            symbol,
            fill.job.cause,
            message,
            delay,
        )

    # -- what cannot be filled ---------------------------------------------------------------

    def _lose(self, symbol: str, first_id: int, last_id: int, why: str) -> None:
        """Report ids that will never be filled (ERROR log and a DLQ record), then move on."""
        for first, last in self.ledgers[symbol].give_up(first_id, last_id):
            count = last - first + 1
            self.stats.symbols[symbol].ids_lost += count
            self.log.append(
                {
                    "symbol": symbol,
                    "first_id": first,
                    "last_id": last,
                    "trades": 0,
                    "lost": count,
                    "cause": why,
                }
            )
            log.error(
                "gap NOT filled: %s ids %d-%d (%d trades): %s", symbol, first, last, count, why
            )
            record = {"symbol": symbol, "first_id": first, "last_id": last, "detail": why}
            wall_ms = time.time_ns() // 1_000_000
            self._dead_letter(json.dumps(record).encode(), "unfilled_gap", why, wall_ms, symbol)

    def give_up_stale(self, now: float) -> None:
        for symbol, since in list(self._trouble_since.items()):
            if now - since < self.give_up_s:
                continue
            ledger = self.ledgers[symbol]
            why = f"not filled within {self.give_up_s:.0f}s"
            missing = ledger.missing_range()
            if missing:
                self._lose(symbol, missing[0], missing[1], why)
            if ledger.catching_up and symbol not in self.job_of:
                ledger.catching_up = False
                log.error(
                    "%s: could not check for trades missed after id %s: %s",
                    symbol,
                    ledger.next_id,
                    why,
                )
            self._trouble_since.pop(symbol, None)
