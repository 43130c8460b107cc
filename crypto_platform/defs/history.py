"""Jobs that rebuild history: the analytics, trends and roll-ups over a range of partitions.

``crypto-platform import-archive`` runs them after writing an archive's raw trades, and they
are the natural selection for a backfill in the UI. Dagster jobs need one partitions
definition, hence two: the hourly assets, and the daily roll-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from crypto_platform.defs.assets.freshness import build_derived_sensors
from crypto_platform.defs.assets.rollups import build_trade_analytics_1d, build_trade_analytics_1h
from crypto_platform.defs.assets.trends import build_trade_trends
from crypto_platform.defs.partitions import PlatformPartitions

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

HISTORY_JOB = "trade_history_job"
DAILY_ROLLUP_JOB = "trade_analytics_1d_job"


@dataclass(frozen=True)
class HistoryJobs:
    hourly: UnresolvedAssetJobDefinition
    daily: UnresolvedAssetJobDefinition


def build_history_jobs(
    analytics: dg.AssetsDefinition,
    trends: dg.AssetsDefinition,
    analytics_1h: dg.AssetsDefinition,
    analytics_1d: dg.AssetsDefinition,
) -> HistoryJobs:
    hourly = dg.define_asset_job(
        HISTORY_JOB,
        selection=dg.AssetSelection.assets(analytics, trends, analytics_1h),
        description="trade_analytics_1m from the raw Parquet, then its trends and hourly "
        "roll-ups, over a range of hours (no Kafka needed).",
        executor_def=dg.in_process_executor,
    )
    daily = dg.define_asset_job(
        DAILY_ROLLUP_JOB,
        selection=dg.AssetSelection.assets(analytics_1d),
        description="The daily roll-up over a range of days.",
        executor_def=dg.in_process_executor,
    )
    return HistoryJobs(hourly, daily)


@dataclass(frozen=True)
class TrendDefinitions:
    """Everything issue 9 adds to the code location, for ``build_definitions`` to list."""

    assets: list[dg.AssetsDefinition]
    jobs: list[UnresolvedAssetJobDefinition]
    sensors: list[dg.SensorDefinition]


def build_trend_definitions(
    partitions: PlatformPartitions, analytics: dg.AssetsDefinition
) -> TrendDefinitions:
    trends = build_trade_trends(partitions, analytics)
    hourly = build_trade_analytics_1h(partitions, analytics)
    daily = build_trade_analytics_1d(partitions, analytics)
    jobs = build_history_jobs(analytics, trends, hourly, daily)
    return TrendDefinitions(
        assets=[trends, hourly, daily],
        jobs=[jobs.hourly, jobs.daily],
        sensors=build_derived_sensors([trends, hourly], [daily], jobs.hourly, jobs.daily),
    )
