"""Progress-mark arithmetic: clock estimate, in-flight trades, continuity bound, late trades."""

from __future__ import annotations

from crypto_platform.ingest.ledger import BLOCKED, NO_BOUND
from crypto_platform.ingest.marks import ExchangeClock, InFlight, SymbolMarks

S = 1_764_072_000_000  # a minute start


def test_the_clock_offset_is_the_largest_seen_so_it_never_runs_ahead_of_the_exchange() -> None:
    clock = ExchangeClock()
    assert clock.estimate(500) is None
    clock.observe(S + 1000, local_ms=100)  # an event stamped S+1000 arrived at local 100
    clock.observe(S + 1005, local_ms=150)  # arrived 45 ms late: it does not lower the estimate
    assert clock.estimate(600) == S + 1500
    clock.observe(S + 1600, local_ms=620)  # a faster one raises it
    assert clock.estimate(620) == S + 1600


def test_in_flight_oldest_time_follows_acknowledgements() -> None:
    flight = InFlight()
    for trade_id, time_ms in [(1, 50), (2, 40), (3, 60)]:
        flight.add(trade_id, time_ms)
    assert flight.oldest_time_ms() == 40 and len(flight) == 3
    flight.done(2)
    assert flight.oldest_time_ms() == 50
    flight.done(1)
    flight.done(3)
    assert flight.oldest_time_ms() is None and len(flight) == 0


def test_the_mark_is_the_minimum_of_clock_continuity_and_delivery() -> None:
    marks = SymbolMarks()
    assert marks.next_mark(None, NO_BOUND) is None  # no clock yet
    assert marks.next_mark(S + 900, BLOCKED) is None
    assert marks.next_mark(S + 900, NO_BOUND) == S + 900
    assert marks.next_mark(S + 900, S + 700) == S + 700
    marks.in_flight.add(7, S + 500)
    assert marks.next_mark(S + 900, S + 700) == S + 499
    marks.published_ms = S + 499
    assert marks.next_mark(S + 900, NO_BOUND) is None  # never back, never the same again
    marks.acknowledged(7, S + 500)
    assert marks.next_mark(S + 900, NO_BOUND) == S + 900


def test_trades_acknowledged_at_or_below_the_published_mark_are_late() -> None:
    marks = SymbolMarks(published_ms=S + 60_000)
    for trade_id, time_ms in [(10, S + 5), (11, S + 60_000), (12, S + 60_001), (9, S - 1)]:
        marks.in_flight.add(trade_id, time_ms)
        marks.acknowledged(trade_id, time_ms)
    late = marks.take_late()
    assert late is not None
    assert late.minutes_ms == {S - 60_000, S, S + 60_000}
    assert (late.first_id, late.last_id) == (9, 11)
    assert marks.take_late() is None
