"""Trade-id continuity: what to produce, what is missing, and how far trade time is complete."""

from __future__ import annotations

import pytest

from crypto_platform.ingest.ledger import BLOCKED, NO_BOUND, SymbolLedger, Verdict

N, D, B = Verdict.NEW, Verdict.DUPLICATE, Verdict.BEFORE_START


def _feed(ledger: SymbolLedger, ids: list[int]) -> list[Verdict]:
    return [ledger.accept(i, 1000 + i) for i in ids]


@pytest.mark.parametrize(
    ("ids", "verdicts", "next_id", "missing"),
    [
        ([5, 6, 7], [N, N, N], 8, None),
        ([5, 6, 6, 5], [N, N, D, D], 7, None),
        ([5, 9, 10], [N, N, N], 6, (6, 8)),
        ([5, 9, 12], [N, N, N], 6, (6, 8)),  # the first run of missing ids: 6-8, then 10-11
        ([5, 9, 7, 6], [N, N, N, N], 8, (8, 8)),
        ([5, 9, 7, 6, 8], [N, N, N, N, N], 10, None),
        ([5, 9, 9, 4], [N, N, D, B], 6, (6, 8)),
    ],
)
def test_ids_are_produced_once_and_holes_are_named(
    ids: list[int], verdicts: list[Verdict], next_id: int, missing: tuple[int, int] | None
) -> None:
    ledger = SymbolLedger("BTCUSDT")
    assert _feed(ledger, ids) == verdicts
    assert ledger.next_id == next_id
    assert ledger.missing_range() == missing


def test_time_bound_is_the_last_contiguous_trade_while_ids_are_missing() -> None:
    ledger = SymbolLedger("BTCUSDT")
    assert ledger.time_bound_ms() == NO_BOUND
    ledger.catching_up = True
    assert ledger.time_bound_ms() == BLOCKED  # nothing known yet
    _feed(ledger, [5, 6])
    assert ledger.time_bound_ms() == 1005  # trade 6 at 1006: trades before 1006 are all here
    ledger.catching_up = False
    assert ledger.time_bound_ms() == NO_BOUND
    _feed(ledger, [9])
    assert ledger.time_bound_ms() == 1005
    _feed(ledger, [7, 8])
    assert ledger.time_bound_ms() == NO_BOUND and ledger.last_time_ms == 1009


def test_resuming_from_the_tail_keeps_its_holes_missing() -> None:
    ledger = SymbolLedger.from_tail("BTCUSDT", {10: 1, 11: 2, 14: 5, 15: 6})
    assert ledger.next_id == 12 and ledger.missing_range() == (12, 13)
    assert ledger.accept(11, 2) is D and ledger.accept(9, 0) is B
    assert ledger.accept(12, 3) is N and ledger.accept(13, 4) is N
    assert ledger.next_id == 16 and ledger.missing_range() is None


def test_giving_up_skips_only_what_is_missing_and_reports_it() -> None:
    ledger = SymbolLedger("BTCUSDT")
    _feed(ledger, [1, 5, 8, 12])
    assert ledger.missing_runs(1, 20) == [(2, 4), (6, 7), (9, 11), (13, 20)]
    assert ledger.give_up(2, 7) == [(2, 4), (6, 7)]
    assert ledger.next_id == 9 and ledger.missing_range() == (9, 11)
    assert ledger.last_time_ms == 1008
    # a hole above next_id given up: remembered, so the ledger can pass it later
    assert ledger.give_up(10, 10) == [(10, 10)]
    assert ledger.accept(9, 1009) is N and ledger.accept(11, 1011) is N
    assert ledger.next_id == 13 and ledger.missing_range() is None
    assert ledger.give_up(1, 12) == []


@pytest.mark.parametrize(
    ("latest", "first_stream_id", "next_id", "missing"),
    [
        (100, 90, 91, None),  # the stream started before the REST call: start with the stream
        (100, 101, 102, None),  # right after the latest: contiguous
        (100, 105, 101, (101, 104)),  # the stream lost 101..104: a gap to fill
    ],
)
def test_a_never_seen_symbol_starts_at_the_stream_or_right_after_the_latest_trade(
    latest: int, first_stream_id: int, next_id: int, missing: tuple[int, int] | None
) -> None:
    ledger = SymbolLedger("BTCUSDT")
    ledger.hint_start(latest, 5000)
    assert ledger.accept(first_stream_id, 6000) is N
    assert ledger.next_id == next_id and ledger.missing_range() == missing
