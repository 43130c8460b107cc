"""The sensor's logic: closed minutes requested once, quiet symbols, catch-up, late trades."""

from __future__ import annotations

import pytest

from crypto_platform.core.minute_plan import PlanState, plan_minutes
from crypto_platform.core.progress import LateNotice, ProgressMark

H = 1_735_603_200_000  # 2024-12-31 00:00 UTC
M = 60_000
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def marks(through: int, emitted: int | None = None) -> list[ProgressMark]:
    return [ProgressMark(s, through, emitted or through + 1000) for s in SYMBOLS]


def plan(state: PlanState, messages, grace_ms: int = 0, earliest: int = 0):
    return plan_minutes(state, messages, {0: 99}, SYMBOLS, grace_ms, earliest)


def started() -> PlanState:
    """Ingestion's first marks, at 00:00:00.5: requests start with minute 00:00."""
    return plan(PlanState(), marks(H + 500)).state


def test_closed_minutes_are_requested_once_and_open_ones_not() -> None:
    first = plan(started(), marks(H + 2 * M + 30_000))  # 00:02 is still open
    assert [b.minutes_ms for b in first.batches] == [(H, H + M)]
    assert first.batches[0].read_until_ms == H + 2 * M + 31_000
    again = plan(first.state, marks(H + 2 * M + 40_000))
    assert again.batches == [] and again.closed_through_ms == H + 2 * M
    third = plan(again.state, marks(H + 3 * M - 1))
    assert [b.minutes_ms for b in third.batches] == [(H + 2 * M,)]


def test_grace_keeps_a_minute_open_until_it_has_passed() -> None:
    # 00:00 closes once every trade up to 00:00:59.999 + 5 s of grace is delivered.
    open_ = plan(started(), marks(H + M + 4_998), grace_ms=5_000)
    assert open_.batches == []
    closed = plan(open_.state, marks(H + M + 4_999), grace_ms=5_000)
    assert [b.minutes_ms for b in closed.batches] == [(H,)]


def test_the_slowest_symbol_decides_and_a_missing_one_is_named() -> None:
    only_btc = plan(PlanState(), [ProgressMark("BTCUSDT", H + 10 * M, H + 10 * M)])
    assert only_btc.batches == [] and only_btc.missing_symbols == ["ETHUSDT"]
    eth_behind = plan(only_btc.state, [ProgressMark("ETHUSDT", H + 3 * M, H + 10 * M)])
    assert eth_behind.batches == [] and eth_behind.closed_through_ms == H + 3 * M
    # A quiet symbol (no trades) still publishes marks: they release the minutes.
    eth_quiet = plan(eth_behind.state, [ProgressMark("ETHUSDT", H + 10 * M, H + 10 * M + 500)])
    assert [b.minutes_ms for b in eth_quiet.batches] == [tuple(H + k * M for k in range(3, 10))]
    assert eth_quiet.batches[0].read_until_ms == H + 10 * M + 500


def test_catch_up_is_one_batch_per_hour() -> None:
    result = plan(started(), marks(H + 150 * M))  # e.g. after Dagster was down
    assert [(b.hour_ms, len(b.minutes_ms)) for b in result.batches] == [
        (H, 60),
        (H + 60 * M, 60),
        (H + 120 * M, 30),
    ]


def test_late_trades_reopen_a_requested_minute_with_a_later_read() -> None:
    first = plan(started(), marks(H + 5 * M))
    notice = LateNotice("BTCUSDT", (H + M, H + 3 * M + 5), (10, 12), H + 9 * M)
    second = plan(first.state, [notice])
    assert [(b.minutes_ms, b.late, b.read_until_ms) for b in second.batches] == [
        ((H + M, H + 3 * M), True, H + 9 * M)
    ]
    future = plan(second.state, [LateNotice("BTCUSDT", (H + 8 * M,), (1, 1), H + 9 * M)])
    assert future.batches == []  # not requested yet: it comes with its minute


def test_the_first_marks_start_the_requests_but_never_before_the_partitions() -> None:
    first = plan(PlanState(), marks(H + 30 * M + 10))
    assert first.batches == [] and first.state.requested_through_ms == H + 30 * M
    assert [b.minutes_ms for b in plan(first.state, marks(H + 32 * M)).batches] == [
        (H + 30 * M, H + 31 * M)
    ]
    early = plan(PlanState(), marks(H + 30 * M + 10), earliest=H + 31 * M)
    late_start = plan(early.state, marks(H + 32 * M), earliest=H + 31 * M)
    assert [b.minutes_ms for b in late_start.batches] == [(H + 31 * M,)]


def test_the_cursor_round_trips_and_a_bad_one_is_refused() -> None:
    state = plan(PlanState(), marks(H + 5 * M)).state
    assert PlanState.from_json(state.to_json()) == state
    with pytest.raises(ValueError, match="cursor"):
        PlanState.from_json('{"v": 99}')
