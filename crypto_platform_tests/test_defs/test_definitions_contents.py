"""What ``build_definitions`` lists, and how it is wired for `make run` (its DAGSTER_HOME too)."""

from datetime import date

import dagster as dg

from crypto_platform.dagster_home import DAGSTER_YAML, ensure_dagster_home
from crypto_platform.definitions import build_definitions
from crypto_platform.defs.assets.common import WRITER_POOL
from crypto_platform.settings import Settings

CHECKS = {
    "raw_trades": {
        "no_duplicate_trade_ids": True,
        "prices_and_quantities_positive": True,
        "trades_inside_their_window": True,
        "trade_ids_contiguous": False,
    },
    "trade_analytics_1m": {
        "one_row_per_symbol_minute": False,
        "trade_count_matches_raw": False,
        "prices_within_high_low": False,
        "latest_minute_is_fresh": False,
    },
}


def test_every_piece_is_listed_and_wired(settings_factory) -> None:
    settings = settings_factory(partitions_start=date(2025, 6, 1), sensor_interval_seconds=7)
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {
        "raw_trades",
        "trade_analytics_1m",
        "raw_trades_daily",
    }
    blocking = {
        (k.asset_key.to_user_string(), k.name): graph.get_check_spec(k).blocking
        for k in graph.asset_check_keys
        if k.asset_key.to_user_string() in CHECKS
    }
    assert blocking == {(a, c): b for a, checks in CHECKS.items() for c, b in checks.items()}
    sensor = defs.resolve_sensor_def("closed_minutes_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 7
    schedule = defs.resolve_schedule_def("raw_trades_daily_schedule")
    assert schedule.cron_schedule == "30 0 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    hourly = graph.get(dg.AssetKey("raw_trades")).partitions_def
    assert isinstance(hourly, dg.HourlyPartitionsDefinition)
    assert hourly.get_first_partition_key() == "2025-06-01-00:00"
    for key in ("raw_trades", "trade_analytics_1m", "raw_trades_daily"):
        assets_def = defs.resolve_assets_def(key)
        assert assets_def.backfill_policy == dg.BackfillPolicy.single_run()
        assert {n.pool for n in [assets_def.op]} == {WRITER_POOL}
    assert set(defs.resources) >= {"kafka", "lake", "duckdb"}
    assert defs.resources["lake"].root == str((settings.data_dir / "lake").resolve())


def _first_dequeue_pass(instance: dg.DagsterInstance, runs: list) -> list[bool]:
    """Which of ``runs`` (queued together) the run queue holds back in one dequeue pass.

    What the queue daemon does each pass: read the pool keys and limits, then count the queued
    runs' pools against them, launching in order (``GlobalOpConcurrencyLimitsCounter``).
    """
    from dagster._core.op_concurrency_limits_counter import GlobalOpConcurrencyLimitsCounter

    storage = instance.event_log_storage
    counter = GlobalOpConcurrencyLimitsCounter(
        instance,
        runs,
        [],
        concurrency_keys=storage.get_concurrency_keys(),
        pool_limits=storage.get_pool_limits(),
        pool_granularity=instance.get_concurrency_config().pool_config.pool_granularity,
    )
    held = []
    for run in runs:
        held.append(counter.is_blocked(run))
        if not held[-1]:
            counter.update_counters_with_launched_item(run)
    return held


def test_the_dagster_home_lets_one_writer_run_at_a_time(tmp_path) -> None:
    from dagster._core.instance.config import PoolGranularity
    from dagster._core.run_coordinator import QueuedRunCoordinator

    home = ensure_dagster_home(tmp_path / "dagster_home")
    assert home == (tmp_path / "dagster_home").resolve()
    job = build_definitions(Settings(data_dir=tmp_path / "data")).resolve_job_def(
        "trade_minutes_job"
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        config = instance.get_concurrency_config()
        assert config.pool_config.pool_granularity == PoolGranularity.RUN
        assert config.pool_config.default_pool_limit == 1
        assert config.run_queue_config.max_concurrent_runs == 4
        assert config.run_queue_config.should_block_op_concurrency_limited_runs
        assert [
            (p.name, p.limit, p.from_default) for p in instance.event_log_storage.get_pool_limits()
        ] == [(WRITER_POOL, 1, False)]
        assert instance.event_log_storage.get_concurrency_info(WRITER_POOL).slot_count == 1
        runs = [instance.create_run_for_job(job) for _ in range(3)]
        assert runs[0].run_op_concurrency.all_pools == {WRITER_POOL}
        # Already in the first pass on a fresh home: one writer run starts, the others wait.
        assert _first_dequeue_pass(instance, runs) == [False, True, True]


def test_the_dagster_home_keeps_a_pool_limit_set_by_hand(tmp_path) -> None:
    home = ensure_dagster_home(tmp_path / "dagster_home")
    (home / "dagster.yaml").write_text(DAGSTER_YAML + "# edited\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots(WRITER_POOL, 2)
    assert ensure_dagster_home(home) == home
    assert (home / "dagster.yaml").read_text() == DAGSTER_YAML + "# edited\n"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert [(p.name, p.limit) for p in instance.event_log_storage.get_pool_limits()] == [
            (WRITER_POOL, 2)
        ]
