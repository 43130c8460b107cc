"""Jobs and schedules: the per-minute micro-batch job and the nightly compaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

COMPACTION_HOUR_UTC = 0
COMPACTION_MINUTE = 30  # after midnight UTC, well past the grace of the day's last minute


@dataclass(frozen=True)
class PlatformJobs:
    trade_minutes_job: UnresolvedAssetJobDefinition
    compaction_job: UnresolvedAssetJobDefinition
    compaction_schedule: dg.ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition


def build_jobs(
    raw_trades: dg.AssetsDefinition,
    analytics: dg.AssetsDefinition,
    raw_trades_daily: dg.AssetsDefinition,
) -> PlatformJobs:
    # In-process: one process per run instead of one per step, which keeps a micro-batch run
    # to a few seconds (the steps run one after the other anyway).
    trade_minutes_job = dg.define_asset_job(
        "trade_minutes_job",
        selection=dg.AssetSelection.assets(raw_trades, analytics),
        description="Raw trades and analytics of the minutes in the run config (or whole hours).",
        executor_def=dg.in_process_executor,
    )
    compaction_job = dg.define_asset_job(
        "raw_trades_daily_job",
        selection=dg.AssetSelection.assets(raw_trades_daily),
        executor_def=dg.in_process_executor,
    )
    schedule = dg.build_schedule_from_partitioned_job(
        compaction_job,
        name="raw_trades_daily_schedule",
        hour_of_day=COMPACTION_HOUR_UTC,
        minute_of_hour=COMPACTION_MINUTE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return PlatformJobs(trade_minutes_job, compaction_job, schedule)
