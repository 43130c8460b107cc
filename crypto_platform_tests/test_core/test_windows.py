"""Minute and hour arithmetic and the minute labels runs use."""

from __future__ import annotations

import pytest

from crypto_platform.core.windows import (
    WindowError,
    contiguous_through,
    group_by_hour,
    hours_between,
    minute_label,
    minutes_between,
    parse_minute_label,
)

H = 1_735_603_200_000  # 2024-12-31 00:00 UTC
M = 60_000


@pytest.mark.parametrize(
    ("ms", "label"),
    [(H, "2024-12-31T00:00"), (H + 61 * M, "2024-12-31T01:01"), (H + 1439 * M, "2024-12-31T23:59")],
)
def test_labels_round_trip(ms: int, label: str) -> None:
    assert minute_label(ms) == label
    assert parse_minute_label(label) == ms


@pytest.mark.parametrize("bad", ["2024-12-31 00:00", "2024-12-31T00:00:30", "12:00", ""])
def test_a_bad_label_is_refused_with_the_expected_form(bad: str) -> None:
    with pytest.raises(WindowError, match="2024-12-31T00:01"):
        parse_minute_label(bad)


def test_ranges_and_groups() -> None:
    assert minutes_between(H, H + 3 * M) == [H, H + M, H + 2 * M]
    with pytest.raises(WindowError):
        minutes_between(H + 1, H + M)
    assert hours_between(H + 30 * M, H + 61 * M) == [H, H + 60 * M]
    assert group_by_hour([H + 61 * M, H + 5 * M, H + 5 * M + 10, H]) == {
        H: [H, H + 5 * M],
        H + 60 * M: [H + 61 * M],
    }


def test_contiguous_through_stops_at_the_first_missing_minute() -> None:
    assert contiguous_through(H, [H, H + M, H + 3 * M], H + 60 * M) == H + 2 * M
    assert contiguous_through(H + M, [H, H + M], H + 60 * M) == H + 2 * M
    assert contiguous_through(H, [H, H + M], H + M) == H + M
