"""What the minute assets share: their run config and which minutes a run covers."""

from __future__ import annotations

import time

import dagster as dg
from pydantic import Field

from crypto_platform.core.progress import MINUTE_MS, minute_floor_ms
from crypto_platform.core.windows import (
    contiguous_through,
    minute_label,
    minutes_between,
    parse_minute_label,
)

WRITER_POOL = "lake_writer"
"""Concurrency pool of everything that writes the lake or the DuckDB file: one run at a time."""

GROUP = "trades"
MAX_LISTED = 60


class MinutesConfig(dg.Config):
    """Which minutes of the partition window to (re)build; none = all of them (a backfill)."""

    minutes: list[str] = Field(
        default_factory=list,
        description="UTC minute starts like 2024-12-31T00:01; empty = the whole partition window.",
    )


def selected_minutes(config: MinutesConfig, window: tuple[int, int]) -> list[int]:
    """The run's minutes (epoch ms): the configured ones, which must lie in ``window``, or all."""
    start, end = window
    if not config.minutes:
        return minutes_between(start, end)
    minutes = sorted({parse_minute_label(label) for label in config.minutes})
    outside = [minute_label(m) for m in minutes if not start <= m < end]
    if outside:
        raise dg.Failure(
            f"minutes {outside} are outside the run's partitions "
            f"[{minute_label(start)}, {minute_label(end)})"
        )
    return minutes


def minutes_metadata(minutes: list[int]) -> dict[str, dg.RawMetadataValue]:
    """First/last minute, how many, and the list itself when it is short."""
    labels = [minute_label(m) for m in minutes]
    metadata: dict[str, dg.RawMetadataValue] = {
        "minute_count": len(minutes),
        "first_minute": labels[0] if labels else "",
        "last_minute": labels[-1] if labels else "",
    }
    if len(labels) <= MAX_LISTED:
        metadata["minutes"] = dg.MetadataValue.json(labels)
    return metadata


def minute_end(minute_ms: int) -> int:
    return minute_ms + MINUTE_MS


COMPLETE_THROUGH_KEY = "complete_through_ms"


def complete_through(context, config, minutes: list[int], window: tuple[int, int]) -> int:
    """End of the minutes, from the window's start, that this or earlier runs of the asset
    materialised (from its latest materialisation's :data:`COMPLETE_THROUGH_KEY`)."""
    start, end = window
    if not config.minutes:
        return min(end, minute_floor_ms(int(time.time() * 1000)))
    previous = start
    if context.has_partition_key:
        wanted = dg.AssetRecordsFilter(
            asset_key=context.asset_key, asset_partitions=[context.partition_key]
        )
        records = context.instance.fetch_materializations(wanted, limit=1).records
        if records and records[0].asset_materialization is not None:
            value = records[0].asset_materialization.metadata.get(COMPLETE_THROUGH_KEY)
            previous = max(start, int(value.value)) if value is not None else start
    return contiguous_through(previous, minutes, end)
