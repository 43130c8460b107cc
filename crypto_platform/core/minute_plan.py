"""Which minutes to materialise next, from the progress marks: the sensor's logic, kept pure.

The sensor keeps a small JSON cursor (:class:`PlanState`): how far it has read the progress
topic, the latest mark per symbol, and the end of the minutes it has already requested. Each
tick it feeds the new progress messages to :func:`plan_minutes`, which returns

- the minutes that have closed since (every followed symbol's mark is past the minute's end
  plus the grace), each requested once;
- the minutes named by late-trade notices that were already requested (to run again);

grouped into one batch per hour partition, so catching up after downtime takes one run per
hour, not one per minute. Each batch also says when its minutes were known complete
(``read_until_ms``: the emission time of the mark that closed them or of the late notice), so
the run reads Kafka far enough to see every trade delivered by then.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from crypto_platform.core.progress import (
    MINUTE_MS,
    LateNotice,
    ProgressMark,
    Watermarks,
    minute_floor_ms,
)
from crypto_platform.core.windows import group_by_hour

CURSOR_VERSION = 1


@dataclass
class PlanState:
    next_offsets: dict[int, int] = field(default_factory=dict)
    complete_through_ms: dict[str, int] = field(default_factory=dict)
    requested_through_ms: int | None = None
    """End (exclusive) of the minutes already requested; None before the first mark (until
    every symbol has a mark: the earliest mark's minute, where requests will start)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "offsets": {str(p): o for p, o in sorted(self.next_offsets.items())},
                "marks": dict(sorted(self.complete_through_ms.items())),
                "requested_through_ms": self.requested_through_ms,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, cursor: str | None) -> PlanState:
        """The state in ``cursor``; a fresh state for None. Raises ValueError if unreadable."""
        if not cursor:
            return cls()
        try:
            data = json.loads(cursor)
            if data.get("v") != CURSOR_VERSION:
                raise ValueError(f"cursor version {data.get('v')!r}, expected {CURSOR_VERSION}")
            return cls(
                {int(p): int(o) for p, o in data["offsets"].items()},
                {str(s): int(ms) for s, ms in data["marks"].items()},
                None if data["requested_through_ms"] is None else int(data["requested_through_ms"]),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"unreadable minutes-sensor cursor {cursor[:200]!r}: {exc}") from None


@dataclass(frozen=True)
class MinuteBatch:
    hour_ms: int
    minutes_ms: tuple[int, ...]
    read_until_ms: int | None
    late: bool


@dataclass
class Plan:
    state: PlanState
    batches: list[MinuteBatch]
    closed_through_ms: int | None
    missing_symbols: list[str]


@dataclass
class _Tracker:
    """When (emission time) each minute became known complete, within one tick."""

    known_at: dict[int, int] = field(default_factory=dict)
    late: set[int] = field(default_factory=set)

    def saw(self, minutes: Iterable[int], emitted_at_ms: int) -> None:
        for minute in minutes:
            self.known_at[minute] = max(self.known_at.get(minute, 0), emitted_at_ms)


def plan_minutes(
    state: PlanState,
    messages: Iterable[ProgressMark | LateNotice | None],
    next_offsets: dict[int, int],
    symbols: list[str],
    grace_ms: int,
    earliest_ms: int,
) -> Plan:
    """Apply ``messages`` (in topic order) to ``state``; see the module docstring."""
    marks = Watermarks(complete_through_ms=dict(state.complete_through_ms))
    requested = state.requested_through_ms
    closed = marks.closed_through_ms(symbols, grace_ms)
    tracker = _Tracker()
    for message in messages:
        if message is None:
            continue
        marks.apply(message)
        if isinstance(message, LateNotice):
            minutes = [minute_floor_ms(m) for m in message.minutes_ms]
            tracker.saw(minutes, message.emitted_at_ms)
            tracker.late.update(m for m in minutes if requested is not None and m < requested)
            continue
        if closed is None:
            # Until every symbol has a mark, the earliest mark seen is where requests start.
            first = max(earliest_ms, minute_floor_ms(message.complete_through_ms))
            requested = first if requested is None else min(requested, first)
        now_closed = marks.closed_through_ms(symbols, grace_ms)
        if now_closed is not None and (closed is None or now_closed > closed):
            start = closed if closed is not None else min(requested, now_closed)
            tracker.saw(range(start, now_closed, MINUTE_MS), message.emitted_at_ms)
            closed = now_closed
    new: list[int] = []
    if requested is not None and closed is not None and closed > requested:
        new = list(range(requested, closed, MINUTE_MS))
        requested = closed
    batches = _batches(new, sorted(m for m in tracker.late if m >= earliest_ms), tracker)
    missing = [s for s in symbols if s not in marks.complete_through_ms]
    new_state = PlanState(dict(next_offsets), dict(marks.complete_through_ms), requested)
    return Plan(new_state, batches, closed, missing)


def _batches(new: list[int], late: list[int], tracker: _Tracker) -> list[MinuteBatch]:
    late_set = set(late)
    batches = []
    for hour, minutes in group_by_hour([*new, *late]).items():
        known = [tracker.known_at.get(m, 0) for m in minutes]
        # Unknown (0) means the mark carried no emission time: read to the high watermark.
        read_until = None if min(known) <= 0 else max(known)
        batches.append(
            MinuteBatch(hour, tuple(minutes), read_until, any(m in late_set for m in minutes))
        )
    return batches
