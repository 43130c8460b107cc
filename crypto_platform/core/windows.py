"""Minute and hour arithmetic on epoch milliseconds (UTC), and the labels runs use for minutes.

Every window in the platform is a UTC minute ``[start, start + 60 s)`` by trade time. Runs name
their minutes with :func:`minute_label` (``2024-12-31T00:01``) so run config stays readable in
the Dagster UI; :func:`parse_minute_label` refuses anything that is not a minute start.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from crypto_platform.core.progress import MINUTE_MS, minute_floor_ms

HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
_MINUTE_FORMAT = "%Y-%m-%dT%H:%M"


class WindowError(ValueError):
    """A minute label or a range is malformed; the message shows the expected form."""


def hour_floor_ms(ms: int) -> int:
    """Start of the UTC hour holding ``ms``."""
    return ms - ms % HOUR_MS


def day_floor_ms(ms: int) -> int:
    """Start of the UTC day holding ``ms``."""
    return ms - ms % DAY_MS


def minute_label(minute_ms: int) -> str:
    """``1735603260000`` -> ``2024-12-31T00:01``."""
    return datetime.fromtimestamp(minute_ms / 1000, tz=UTC).strftime(_MINUTE_FORMAT)


def parse_minute_label(label: str) -> int:
    """``2024-12-31T00:01`` -> epoch ms of that minute's start (UTC)."""
    try:
        parsed = datetime.strptime(label, _MINUTE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise WindowError(f"{label!r} is not a UTC minute like 2024-12-31T00:01") from None
    return int(parsed.timestamp()) * 1000


def minutes_between(start_ms: int, end_ms: int) -> list[int]:
    """Starts of the minutes in ``[start_ms, end_ms)``; both ends must be minute starts."""
    if start_ms % MINUTE_MS or end_ms % MINUTE_MS:
        raise WindowError(f"[{start_ms}, {end_ms}) does not start and end on whole minutes")
    return list(range(start_ms, end_ms, MINUTE_MS))


def hours_between(start_ms: int, end_ms: int) -> list[int]:
    """Starts of the UTC hours that ``[start_ms, end_ms)`` touches."""
    if end_ms <= start_ms:
        return []
    return list(range(hour_floor_ms(start_ms), end_ms, HOUR_MS))


def group_by_hour(minutes_ms: Iterable[int]) -> dict[int, list[int]]:
    """Minute starts grouped by their hour, each group sorted and free of repeats."""
    groups: dict[int, set[int]] = {}
    for minute in minutes_ms:
        groups.setdefault(hour_floor_ms(minute), set()).add(minute_floor_ms(minute))
    return {hour: sorted(groups[hour]) for hour in sorted(groups)}


def contiguous_through(start_ms: int, done_ms: Iterable[int], limit_ms: int) -> int:
    """End of the run of whole minutes from ``start_ms`` that are all in ``done_ms`` (<= limit)."""
    done = set(done_ms)
    end = start_ms
    while end < limit_ms and end in done:
        end += MINUTE_MS
    return end
