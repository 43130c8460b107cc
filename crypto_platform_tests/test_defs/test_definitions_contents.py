"""What ``build_definitions`` lists, and how it is wired for `make run`."""

from datetime import date

import dagster as dg

from crypto_platform.definitions import build_definitions
from crypto_platform.defs.assets.common import WRITER_POOL

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
