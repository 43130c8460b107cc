"""How ``make run`` keeps the trends and roll-ups fresh: automation conditions and their sensors.

Dagster's ``eager()`` waits until no dependency partition is missing; a daily roll-up depends
on 24 hourly partitions and the trends on hours the platform may not have recorded, so that
clause would hold them back for good. These conditions drop it: a recent partition is requested
once its analytics were updated since it was last handled, unless something upstream (or it)
is still running. Each sensor evaluates at its own pace, so a busy minute pipeline gives at
most one trends/hourly run per interval and one daily run every few minutes, not a flood.
Older hours whose analytics change (a backfill, late trades) leave their roll-ups and the trends
after them stale: ``trend_tails_sensor`` (:mod:`crypto_platform.defs.trend_tails`) follows those.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import dagster as dg

from crypto_platform.defs.trend_tails import build_trend_tails_sensor

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

TRENDS_SENSOR_INTERVAL_S = 20
DAILY_SENSOR_INTERVAL_S = 300


def after_analytics(recent: timedelta) -> dg.AutomationCondition:
    """Request a partition in the latest ``recent`` window whose dependencies were updated."""
    return (
        dg.AutomationCondition.in_latest_time_window(recent)
        & dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"after analytics updates (latest {recent})")


# The last minute of an hour (or day) closes when the next partition is already the latest.
HOURLY_WINDOW = timedelta(hours=2)
HOURLY_CONDITION = after_analytics(HOURLY_WINDOW)
DAILY_WINDOW = timedelta(days=2)
DAILY_CONDITION = after_analytics(DAILY_WINDOW)


def build_derived_sensors(
    hourly: Sequence[dg.AssetsDefinition],
    daily: Sequence[dg.AssetsDefinition],
    hourly_job: UnresolvedAssetJobDefinition,
    daily_job: UnresolvedAssetJobDefinition,
) -> list[dg.SensorDefinition]:
    """One sensor for the hourly derived assets (they run together), one for the daily ones,
    and ``trend_tails_sensor`` for the roll-ups of an older hour whose analytics changed and
    the trends after it, run in ``hourly_job`` and ``daily_job``."""
    return [
        dg.AutomationConditionSensorDefinition(
            "trends_sensor",
            target=list(hourly),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=TRENDS_SENSOR_INTERVAL_S,
            description="Rebuilds the recent hours' trends and hourly roll-ups as minutes close.",
        ),
        build_trend_tails_sensor(hourly_job, daily_job, HOURLY_WINDOW, DAILY_WINDOW),
        dg.AutomationConditionSensorDefinition(
            "daily_rollup_sensor",
            target=list(daily),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=DAILY_SENSOR_INTERVAL_S,
            description="Rebuilds today's (and yesterday's) daily roll-up every few minutes.",
        ),
    ]
