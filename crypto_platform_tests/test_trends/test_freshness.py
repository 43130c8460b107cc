"""How the trends and roll-ups stay fresh under `make run`: the automation conditions evaluated
on a real instance against the real definitions, and what build_definitions lists."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg

from crypto_platform.definitions import build_definitions
from crypto_platform.defs.assets.common import WRITER_POOL
from crypto_platform.defs.history import DAILY_ROLLUP_JOB, HISTORY_JOB

TRENDS, HOURLY, DAILY = (
    dg.AssetKey("trade_trends_1m"),
    dg.AssetKey("trade_analytics_1h"),
    dg.AssetKey("trade_analytics_1d"),
)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def at(hour: int, minute: int) -> datetime:
    return datetime(2025, 3, 5, hour, minute, tzinfo=UTC)


def test_recent_partitions_follow_the_analytics_without_a_flood(settings_factory) -> None:
    defs = build_definitions(settings_factory(partitions_start=date(2025, 1, 1)))
    instance = dg.DagsterInstance.ephemeral()
    selection = dg.AssetSelection.assets(TRENDS, HOURLY, DAILY)
    cursor = None

    def requested(when: datetime) -> dict[dg.AssetKey, set[str]]:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            asset_selection=selection,
            evaluation_time=when,
            cursor=cursor,
        )
        cursor = result.cursor
        return {k: result.get_requested_partitions(k) for k in (TRENDS, HOURLY, DAILY)}

    def analytics_of(partition: str) -> None:
        result = defs.resolve_job_def(HISTORY_JOB).execute_in_process(
            run_config=QUIET,
            instance=instance,
            partition_key=partition,
            asset_selection=[dg.AssetKey("trade_analytics_1m")],
        )
        assert result.success

    assert requested(at(10, 15)) == {TRENDS: set(), HOURLY: set(), DAILY: set()}
    analytics_of("2025-03-05-10:00")  # a minute of the current hour closed
    assert requested(at(10, 16)) == {
        TRENDS: {"2025-03-05-10:00"},
        HOURLY: {"2025-03-05-10:00"},
        DAILY: {"2025-03-05"},  # hours of today without analytics do not hold it back
    }
    # handled: nothing new upstream, nothing requested (no run per evaluation)
    assert requested(at(10, 17)) == {TRENDS: set(), HOURLY: set(), DAILY: set()}
    # the previous hour's last minute closes after the hour turned: still followed
    analytics_of("2025-03-05-09:00")
    assert requested(at(10, 18))[TRENDS] == {"2025-03-05-09:00"}
    requested(at(10, 18))  # the tick after a request resets the condition (Dagster's since)
    # an old hour rebuilt (a backfill) starts no hourly runs, only today's daily row
    # (trend_tails_sensor rebuilds its roll-ups and the trends after it: test_tails.py)
    analytics_of("2025-03-05-02:00")
    assert requested(at(10, 19)) == {TRENDS: set(), HOURLY: set(), DAILY: {"2025-03-05"}}


def test_the_definitions_list_the_assets_jobs_and_sensors(settings_factory) -> None:
    defs = build_definitions(settings_factory(partitions_start=date(2025, 1, 1)))
    graph = defs.resolve_asset_graph()
    analytics = dg.AssetKey("trade_analytics_1m")
    for key in (TRENDS, HOURLY, DAILY):
        assert graph.get(key).parent_keys == {analytics}
        assets_def = defs.resolve_assets_def(key)
        assert assets_def.op.pool == WRITER_POOL
        assert assets_def.backfill_policy == dg.BackfillPolicy.single_run()
    daily = graph.get(DAILY).partitions_def
    assert isinstance(daily, dg.DailyPartitionsDefinition)
    assert daily.end_offset == 1  # today is a partition: its row fills in during the day
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["trends_sensor"].minimum_interval_seconds == 20
    assert sensors["daily_rollup_sensor"].minimum_interval_seconds == 300
    assert sensors["trend_tails_sensor"].minimum_interval_seconds == 60
    # the tails and old roll-ups run in the history jobs (the trends and hourly roll-ups, the days)
    assert {job.name for job in sensors["trend_tails_sensor"].jobs} == {
        HISTORY_JOB,
        DAILY_ROLLUP_JOB,
    }
    for name in ("trends_sensor", "daily_rollup_sensor", "trend_tails_sensor"):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_job_def("trade_analytics_1d_job") is not None
