"""trend_tails_sensor: after an old hour's analytics change (late trades through Kafka, rebuilt
by the minute job), the sensor's runs bring every trend row back to pandas over the final
minutes, as an uninterrupted pipeline has them, and the hour's and day's roll-ups back to a
direct computation over the raw trades; and what it requests, exactly, and once."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.test_utils import create_run_for_test

from crypto_platform import warehouse
from crypto_platform.core.trades import Trade
from crypto_platform.definitions import build_definitions
from crypto_platform.defs.history import DAILY_ROLLUP_JOB, HISTORY_JOB
from crypto_platform.defs.partitions import hour_partition_key
from crypto_platform.defs.trend_tails import (
    SENSOR_NAME,
    Stretch,
    derived_assets,
    reached_partitions,
    run_request,
    stale_stretches,
)
from crypto_platform.settings import Settings
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_defs.expected import assert_matches, expected_analytics
from crypto_platform_tests.test_trends.test_rollups import assert_rollups, direct, stored_rollups
from crypto_platform_tests.test_trends.test_trends import FLOATS, expected

M = 60_000
H = 60 * M
D = 24 * H
TRENDS, HOURLY, DAILY = "trade_trends_1m", "trade_analytics_1h", "trade_analytics_1d"
START = 1_764_028_800_000  # 2025-11-25 00:00 UTC: far older than trends_sensor's window
HOURS = 12
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _trades(seed: int = 5) -> list[Trade]:
    """Two symbols over 12 hours: 0-4 trades a minute (0 = a gap), a random walk of prices;
    in time order (a topic partition holds both symbols: it must be roughly time-ordered)."""
    rng = np.random.default_rng(seed)
    trades = []
    for symbol, price, first_id in (("BTCUSDT", 93_000.0, 5_000_000), ("ETHUSDT", 3_400.0, 900)):
        next_id = first_id
        for minute in range(START, START + HOURS * H, M):
            for offset in sorted(rng.integers(0, M, rng.choice(5, p=[0.15, 0.3, 0.3, 0.15, 0.1]))):
                price *= math.exp(rng.normal(0, 0.0006))
                time = minute + int(offset)
                trades.append(
                    Trade(
                        symbol,
                        next_id,
                        Decimal(f"{price:.2f}"),
                        Decimal(f"{rng.uniform(0.001, 2):.5f}"),
                        time,
                        time,
                        bool(rng.random() < 0.5),
                    )
                )
                next_id += 1
    return sorted(trades, key=lambda t: (t.trade_time_ms, t.symbol))  # as ingestion sends them


def _late(trades: list[Trade], symbol: str, first_ms: int, end_ms: int) -> list[Trade]:
    """The last trade of each minute in [first_ms, end_ms): held back, they change the closes."""
    last: dict[int, Trade] = {}
    for t in trades:
        if t.symbol == symbol and first_ms <= t.trade_time_ms < end_ms:
            last[t.trade_time_ms - t.trade_time_ms % M] = t
    return list(last.values())


def _analytics(platform: Platform) -> pa.Table:
    with warehouse.connection(platform.database, read_only=True) as conn:
        return warehouse.read_minutes(conn, START, START + HOURS * H)


def _trend_rows(platform: Platform) -> dict[tuple[str, int], dict]:
    with warehouse.connection(platform.database, read_only=True) as conn:
        rows = conn.sql("SELECT * FROM trade_trends_1m").to_arrow_table().to_pylist()
    return {(r["symbol"], int(r["window_start"].timestamp() * 1000)): r for r in rows}


def _differing(got: dict, want: dict, rel: float = 1e-9) -> set[tuple[str, int]]:
    """The (symbol, minute) rows that are missing or differ in a column beyond ``rel``."""
    bad = set(got) ^ set(want)
    for key in set(got) & set(want):
        row, values = got[key], want[key]
        if row["minutes_60m"] != values["minutes_60m"]:
            bad.add(key)
        for column in FLOATS:
            got_value, want_value = row[column], values[column]
            if pd.isna(want_value) or got_value is None:
                if not (pd.isna(want_value) and got_value is None):
                    bad.add(key)
            elif not math.isclose(got_value, want_value, rel_tol=rel, abs_tol=_floor(column, row)):
                bad.add(key)
    return bad


def _floor(column: str, row: dict) -> float:
    """macd subtracts two EMAs of ~1e3-1e5: its last bits are theirs (1e-16 of the price)."""
    return 1e-13 * abs(row["ema_26"]) if column == "macd" else 1e-12


def _evaluate(platform: Platform, cursor: str | None) -> dg.SensorResult:
    sensor = platform.defs.resolve_sensor_def(SENSOR_NAME)
    context = dg.build_sensor_context(
        instance=platform.instance, cursor=cursor, definitions=platform.defs
    )
    return sensor(context)


def _launch(platform: Platform, result: dg.SensorResult) -> None:
    """What the daemon does with the requests: a run of each one's job, over its range."""
    for request in result.run_requests:
        run = platform.defs.resolve_job_def(request.job_name).execute_in_process(
            run_config=QUIET,
            instance=platform.instance,
            tags=request.tags,
            asset_selection=request.asset_selection,
        )
        assert run.success


def _requests(result: dg.SensorResult) -> dict[str, tuple[str, str, str]]:
    """{asset: (first partition, last partition, run key)}: at most one run per asset here."""
    found = {}
    for request in result.run_requests:
        (key,) = request.asset_selection
        assert request.job_name == (DAILY_ROLLUP_JOB if key.path == [DAILY] else HISTORY_JOB)
        tags = request.tags
        found[key.to_user_string()] = (
            tags["dagster/asset_partition_range_start"],
            tags["dagster/asset_partition_range_end"],
            request.run_key,
        )
    assert len(found) == len(result.run_requests)
    return found


def _ranges(result: dg.SensorResult) -> dict[str, tuple[str, str]]:
    return {asset: (first, last) for asset, (first, last, _) in _requests(result).items()}


def _assert_rollups(platform: Platform, trades: list[Trade]) -> None:
    """Every stored hour and day equals a direct computation over ``trades`` (test_rollups)."""
    for unit in ("hour", "day"):
        assert_rollups(stored_rollups(platform.database, unit), direct(trades, unit), unit)


def _trade_counts(platform: Platform, unit: str) -> dict[tuple[str, int], int]:
    return {
        (r["symbol"], int(r["window_start"].timestamp() * 1000)): r["trade_count"]
        for r in stored_rollups(platform.database, unit)
    }


def _rebuild_late(platform: Platform, late: list[Trade]) -> None:
    """Late trades delivered after everything else, their minutes rebuilt as the minutes
    sensor requests it (one hour partition, read past the newest trade)."""
    platform.produce(late)
    minutes = sorted({t.trade_time_ms - t.trade_time_ms % M for t in late})
    assert platform.run_minutes(minutes, read_until_ms=START + HOURS * H + M).success


@pytest.mark.kafka
@pytest.mark.slow
def test_after_late_trades_in_an_old_hour_the_sensor_brings_trends_and_rollups_back(
    platform: Platform, platform_factory, tmp_path
) -> None:
    trades = _trades()
    late_2 = _late(trades, "BTCUSDT", START + 2 * H + 30 * M, START + 3 * H)
    late_10 = _late(trades, "ETHUSDT", START + 10 * H + 40 * M, START + 11 * H)
    on_time = [t for t in trades if t not in late_2 and t not in late_10]
    platform.produce(on_time)
    assert platform.backfill(START, START + (HOURS - 1) * H).success
    keys = [hour_partition_key(START + h * H) for h in range(HOURS)]
    day = "2025-11-25"

    # first tick: twelve hours of analytics, no trends nor roll-ups yet -> a run of each
    first = _evaluate(platform, None)
    everything = (keys[0], keys[-1])
    assert _ranges(first) == {TRENDS: everything, HOURLY: everything, DAILY: (day, day)}
    _launch(platform, first)
    idle = _evaluate(platform, first.cursor)
    assert not idle.run_requests and idle.skip_reason is not None
    assert idle.cursor == first.cursor
    assert _differing(_trend_rows(platform), expected(_analytics(platform))) == set()
    _assert_rollups(platform, on_time)

    # late trades in 02:30-02:59 rebuild hour 02 -> its roll-ups and the trends of 02:00-10:00
    # are stale
    _rebuild_late(platform, late_2)
    btc_02, btc_day = ("BTCUSDT", START + 2 * H), ("BTCUSDT", START)  # still without them
    assert _trade_counts(platform, "hour")[btc_02] == direct(on_time, "hour")[btc_02]["trade_count"]
    assert _trade_counts(platform, "day")[btc_day] == direct(on_time, "day")[btc_day]["trade_count"]
    final_2 = expected(_analytics(platform))
    stale = _differing(_trend_rows(platform), final_2)
    assert stale and {k[0] for k in stale} == {"BTCUSDT"}
    assert min(k[1] for k in stale) >= START + 2 * H + 30 * M
    assert max(k[1] for k in stale) >= START + 3 * H + 20 * M  # the next hour's windows
    late_tick = _evaluate(platform, idle.cursor)
    change = json.loads(late_tick.cursor)["after_storage_id"]
    assert _requests(late_tick) == {
        # the hour and the 8 its look-back spans
        TRENDS: (keys[2], keys[10], f"{TRENDS}:{keys[2]}..{keys[10]}@{change}"),
        HOURLY: (keys[2], keys[2], f"{HOURLY}:{keys[2]}..{keys[2]}@{change}"),
        DAILY: (day, day, f"{DAILY}:{day}..{day}@{change}"),
    }
    assert _requests(_evaluate(platform, idle.cursor)) == _requests(late_tick)  # same keys
    _launch(platform, late_tick)
    assert _differing(_trend_rows(platform), final_2) == set()
    _assert_rollups(platform, [*on_time, *late_2])
    assert not _evaluate(platform, late_tick.cursor).run_requests  # requested once

    # late trades near the end, and the day's roll-up rebuilt since (a backfill of it in the UI):
    # no second run of it; the trends' tail is bounded by the hours that exist (10:00-11:00)
    _rebuild_late(platform, late_10)
    day_run = platform.defs.resolve_job_def(DAILY_ROLLUP_JOB).execute_in_process(
        run_config=QUIET, instance=platform.instance, partition_key=day
    )
    assert day_run.success
    end_tick = _evaluate(platform, late_tick.cursor)
    assert _ranges(end_tick) == {TRENDS: (keys[10], keys[11]), HOURLY: (keys[10], keys[10])}
    _launch(platform, end_tick)
    assert not _evaluate(platform, end_tick.cursor).run_requests
    _assert_rollups(platform, trades)  # every hour and the day, over the final raw trades

    final = _analytics(platform)
    assert_matches(final.to_pylist(), expected_analytics(trades))  # the final minutes
    got = _trend_rows(platform)
    assert len(got) == final.num_rows > 1000
    assert _differing(got, expected(final)) == set()  # pandas on a time index, to 1e-9

    # the uninterrupted pipeline: every trade on time, trends hour by hour
    other = replace(  # its own folder, topics and instance
        platform_factory(data_dir=tmp_path / "uninterrupted"),
        instance=dg.DagsterInstance.ephemeral(),
    )
    other.produce(trades)
    assert other.backfill(START, START + (HOURS - 1) * H).success
    trends_job = other.defs.resolve_job_def(HISTORY_JOB)
    for key in keys:
        run = trends_job.execute_in_process(
            run_config=QUIET,
            instance=other.instance,
            partition_key=key,
            asset_selection=[dg.AssetKey("trade_trends_1m")],
        )
        assert run.success
    assert _analytics(other).to_pylist() == final.to_pylist()
    assert _differing(_trend_rows(other), expected(final)) == set()
    assert {k: r["trend"] for k, r in _trend_rows(other).items()} == {
        k: r["trend"] for k, r in got.items()
    }


NOW = START + 100 * H + 30 * M  # 2025-11-29 04:30, four days after START
# trends_sensor's window (03:00 and 04:00) and daily_rollup_sensor's (11-28 and 11-29)
DERIVED = {
    d.key.to_user_string(): d
    for d in derived_assets(HISTORY_JOB, DAILY_ROLLUP_JOB, timedelta(hours=2), timedelta(days=2))
}


def _hours(*offsets: int) -> list[int]:
    return [START + o * H for o in offsets]


@pytest.mark.parametrize(
    ("asset", "changed", "reached"),
    [
        (TRENDS, {START: 7}, dict.fromkeys(_hours(*range(9)), 7)),  # old: the hour and 8 after
        # 03:00 is in trends_sensor's window: only the 8 hours after it
        (TRENDS, {START + 99 * H: 7}, dict.fromkeys(_hours(*range(100, 108)), 7)),
        (TRENDS, {START + 98 * H: 7}, dict.fromkeys(_hours(*range(98, 107)), 7)),  # 02:00: old
        (TRENDS, {START: 4, START + 3 * H: 9}, {**dict.fromkeys(_hours(0, 1, 2), 4),
                                                **dict.fromkeys(_hours(*range(3, 12)), 9)}),
        # the hourly roll-up: the changed hour itself, unless trends_sensor has it
        (HOURLY, {START: 4, START + 3 * H: 9}, {START: 4, START + 3 * H: 9}),
        (HOURLY, {START + 98 * H: 7, START + 99 * H: 8}, {START + 98 * H: 7}),
        # the daily roll-up: the changed hour's day, unless daily_rollup_sensor has it
        (DAILY, {START + 3 * H: 9, START + 5 * H: 4}, {START: 9}),
        (DAILY, {START + 71 * H: 7, START + 72 * H: 8, START + 99 * H: 9}, {START + 2 * D: 7}),
    ],
)  # fmt: skip
def test_the_partitions_a_change_reaches(asset: str, changed: dict, reached: dict) -> None:
    assert reached_partitions(changed, NOW, DERIVED[asset]) == reached


def test_stale_stretches_skip_fresh_partitions_and_missing_analytics() -> None:
    reached = dict.fromkeys(_hours(*range(9)), 50)
    analytics = dict.fromkeys(_hours(0, 1, 2, 3, 5, 6, 7, 8), 10)  # 04:00 has no analytics
    trends = {START: 60, START + H: 20}  # 00:00 rebuilt after the change, 01:00 before it
    assert stale_stretches(reached, analytics, trends) == [
        Stretch(START + H, START + 3 * H, 50),
        Stretch(START + 5 * H, START + 8 * H, 50),
    ]
    assert stale_stretches(reached, analytics, trends, max_run=2) == [
        Stretch(START + H, START + 2 * H, 50),
        Stretch(START + 3 * H, START + 3 * H, 50),
        Stretch(START + 5 * H, START + 6 * H, 50),
        Stretch(START + 7 * H, START + 8 * H, 50),
    ]
    assert stale_stretches(reached, analytics, dict.fromkeys(analytics, 51)) == []
    # days: 11-26 rebuilt after its change, a week at most per run
    days = {START + d * D: 40 + d for d in range(10)}
    assert stale_stretches(days, days, {START + D: 45}, D, 7) == [
        Stretch(START, START, 40),
        Stretch(START + 2 * D, START + 8 * D, 48),
        Stretch(START + 9 * D, START + 9 * D, 49),
    ]


def test_a_run_request_names_the_asset_the_stretch_and_the_change() -> None:
    changed = {START + 3 * H: 40, START + D + 5 * H: 50, START + 3 * D: 60}
    days = run_request(DERIVED[DAILY], Stretch(START, START + D, 50), changed)
    assert days.run_key == "trade_analytics_1d:2025-11-25..2025-11-26@50"
    assert (days.job_name, days.asset_selection) == (DAILY_ROLLUP_JOB, [dg.AssetKey(DAILY)])
    assert days.tags == {
        "dagster/asset_partition_range_start": "2025-11-25",
        "dagster/asset_partition_range_end": "2025-11-26",
        "crypto_platform/changed_hours": "2025-11-25-03:00..2025-11-26-05:00",
    }
    # the trends of 11-26 08:00-12:00 read the hours back to 00:00
    trends = run_request(DERIVED[TRENDS], Stretch(START + 32 * H, START + 36 * H, 50), changed)
    assert trends.run_key == "trade_trends_1m:2025-11-26-08:00..2025-11-26-12:00@50"
    assert trends.job_name == HISTORY_JOB
    assert trends.tags["crypto_platform/changed_hours"] == "2025-11-26-05:00..2025-11-26-05:00"


def _materialised_by_a_run_still_going(
    instance: dg.DagsterInstance, partition: str
) -> dg.DagsterRun:
    """What a UI backfill of trade_history_job leaves between its analytics and trends steps."""
    run = create_run_for_test(instance, job_name=HISTORY_JOB, status=dg.DagsterRunStatus.STARTED)
    materialisation = dg.AssetMaterialization(asset_key="trade_analytics_1m", partition=partition)
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name=HISTORY_JOB,
        event_specific_data=StepMaterializationData(materialisation),
    )
    instance.report_dagster_event(event, run_id=run.run_id)
    return run


def test_a_run_still_going_is_waited_for(settings_factory) -> None:
    settings: Settings = settings_factory(partitions_start=date(2024, 1, 1))
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    platform = Platform(settings, defs, instance, "", "", "")
    analytics = platform.defs.resolve_job_def(HISTORY_JOB)
    done = analytics.execute_in_process(
        run_config=QUIET,
        instance=instance,
        partition_key="2024-12-31-03:00",
        asset_selection=[dg.AssetKey("trade_analytics_1m")],
    )
    assert done.success
    going = _materialised_by_a_run_still_going(instance, "2024-12-31-05:00")
    first = _evaluate(platform, None)
    hour_03 = ("2024-12-31-03:00", "2024-12-31-03:00")
    assert _ranges(first) == {TRENDS: hour_03, HOURLY: hour_03}  # 05:00 and its day not yet
    (waiting,) = instance.fetch_materializations(dg.AssetKey("trade_analytics_1m"), limit=1).records
    assert json.loads(first.cursor)["after_storage_id"] < waiting.storage_id
    assert not _evaluate(platform, first.cursor).run_requests  # still going
    instance.report_run_failed(going)  # finished (its trends and roll-up steps never ran)
    then = _evaluate(platform, first.cursor)
    hour_05 = ("2024-12-31-05:00", "2024-12-31-05:00")
    day = ("2024-12-31", "2024-12-31")
    assert _ranges(then) == {TRENDS: hour_05, HOURLY: hour_05, DAILY: day}
    assert json.loads(then.cursor)["after_storage_id"] == waiting.storage_id
