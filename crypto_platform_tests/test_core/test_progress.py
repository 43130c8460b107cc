import pytest

from crypto_platform.core.progress import (
    LateNotice,
    ProgressMark,
    Watermarks,
    decode,
    encode_late,
    encode_progress,
)

S = 1_764_072_000_000  # 2025-11-25 12:00:00 UTC, a minute start


def test_messages_round_trip() -> None:
    mark = ProgressMark("BTCUSDT", S + 1234, S + 5000)
    late = LateNotice("ETHUSDT", (S, S + 60_000), (10, 12), S + 9000)
    assert decode(encode_progress(mark)) == mark
    assert decode(encode_late(late)) == late
    assert decode(b"garbage") is None
    assert decode(b'{"type": "progress"}') is None


@pytest.mark.parametrize(
    ("through", "grace_ms", "closed_end"),
    [
        (S + 59_999, 0, S + 60_000),  # every trade of minute S delivered: S is closed
        (S + 59_998, 0, S),  # one millisecond short: still open
        (S + 64_999, 5_000, S + 60_000),  # grace of 5 s
        (S + 64_998, 5_000, S),
        (S + 3 * 60_000 + 10, 0, S + 3 * 60_000),
    ],
)
def test_a_minute_closes_when_every_symbol_is_past_its_end_plus_grace(
    through: int, grace_ms: int, closed_end: int
) -> None:
    marks = Watermarks()
    marks.apply(ProgressMark("BTCUSDT", through, 0))
    marks.apply(ProgressMark("ETHUSDT", through + 120_000, 0))
    assert marks.closed_through_ms(["BTCUSDT", "ETHUSDT"], grace_ms) == closed_end


def test_the_slowest_symbol_holds_minutes_open_and_marks_never_go_back() -> None:
    marks = Watermarks()
    marks.apply(ProgressMark("BTCUSDT", S + 300_000, 0))
    assert marks.closed_through_ms(["BTCUSDT", "ETHUSDT"], 0) is None  # no mark for ETH yet
    marks.apply(ProgressMark("ETHUSDT", S + 60_000, 0))
    marks.apply(ProgressMark("ETHUSDT", S + 10, 0))  # an older mark arriving late is ignored
    assert marks.closed_through_ms(["BTCUSDT", "ETHUSDT"], 0) == S + 60_000
    marks.apply(LateNotice("BTCUSDT", (S,), (1, 2), 0))
    assert marks.late_minutes_ms == {S}
