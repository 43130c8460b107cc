"""Hourly partitions (UTC) for the trades and analytics, daily ones for compaction.

One-minute partitions would pass Dagster's guidance of at most 100,000 partitions per asset in
69 days; hourly ones stay under it for over 11 years from ``partitions_start``. Symbols stay a
column, not a partition dimension. The current hour is a partition too (``end_offset=1``): the
sensor adds each minute to it as the minute closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from crypto_platform.core.trades import datetime_to_ms
from crypto_platform.settings import Settings

HOUR_FORMAT = "%Y-%m-%d-%H:%M"


@dataclass(frozen=True)
class PlatformPartitions:
    hourly: dg.HourlyPartitionsDefinition
    daily: dg.DailyPartitionsDefinition
    start_ms: int


def build_partitions(settings: Settings) -> PlatformPartitions:
    start = datetime(
        settings.partitions_start.year,
        settings.partitions_start.month,
        settings.partitions_start.day,
        tzinfo=UTC,
    )
    return PlatformPartitions(
        hourly=dg.HourlyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1),
        daily=dg.DailyPartitionsDefinition(start_date=start, timezone="UTC"),
        start_ms=datetime_to_ms(start),
    )


def hour_partition_key(hour_ms: int) -> str:
    """Epoch ms of an hour start -> Dagster's hourly key, e.g. ``2024-12-31-00:00``."""
    return datetime.fromtimestamp(hour_ms / 1000, tz=UTC).strftime(HOUR_FORMAT)


def window_ms(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[int, int]:
    """The run's partition window (one partition or a backfill range) in epoch ms."""
    window = context.partition_time_window
    return datetime_to_ms(window.start), datetime_to_ms(window.end)
