"""import-archive with several days in one call: the real 2024-12-31 trades (ms), a day written
here in Binance's 2025 format (µs, zipped, with its .CHECKSUM) and the real 2025-01-02 head (µs).
Every raw row, minute, hour, day and trend equals a direct computation from the files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from crypto_platform import warehouse
from crypto_platform.core import lake
from crypto_platform.core.rollups import ROLLUP_TABLES
from crypto_platform.core.trades import Trade
from crypto_platform.core.trends import TRENDS_TABLE
from crypto_platform.definitions import build_definitions
from crypto_platform.defs.history import DAILY_ROLLUP_JOB, HISTORY_JOB
from crypto_platform.defs.partitions import build_partitions
from crypto_platform.defs.trend_tails import SENSOR_NAME
from crypto_platform.ingest_archive.importer import import_archives
from crypto_platform_tests.test_defs.expected import assert_matches, expected_analytics
from crypto_platform_tests.test_trends.conftest import (
    BTC_CSV,
    MICROS_CSV,
    read_binance_dump,
    write_binance_day,
)
from crypto_platform_tests.test_trends.test_rollups import assert_rollups, direct
from crypto_platform_tests.test_trends.test_trends import assert_equal_pandas, expected

H = 3_600_000
NEW_YEAR = 1_735_689_600_000  # 2025-01-01 00:00 UTC
# minutes of 2025-01-01 with trades: the first hour's start, a gap, a stretch at 07:15, the last
MINUTES = [0, 1, 2, 3, 5, 6, 7 * 60 + 15, 7 * 60 + 16, 7 * 60 + 17, 23 * 60 + 58, 23 * 60 + 59]


def _rows(database: Path, table: str) -> list[dict]:
    with warehouse.connection(database, read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.sql(f"SELECT * FROM {table} ORDER BY ALL").to_arrow_table().to_pylist()


def _lake_trades(root: Path, trades: list[Trade]) -> dict[Path, list[tuple]]:
    """What each minute file holds, as (id, price, qty, trade ms, event ms, maker)."""
    minutes = {(t.symbol, t.trade_time_ms - t.trade_time_ms % 60_000) for t in trades}
    found = {}
    for symbol, minute in sorted(minutes):
        path = lake.minute_file(root, symbol, minute)
        found[path] = [
            (
                r["trade_id"],
                r["price"],
                r["qty"],
                round(r["trade_time"].timestamp() * 1000),
                round(r["event_time"].timestamp() * 1000),
                r["buyer_is_maker"],
            )
            for r in pq.read_table(path).to_pylist()
        ]
    return found


def test_several_days_in_one_call_equal_a_direct_computation(
    settings_factory, tmp_path: Path, shared_binance: Path
) -> None:
    settings = settings_factory(data_dir=tmp_path / "data", partitions_start=date(2019, 1, 1))
    generated = write_binance_day(tmp_path, NEW_YEAR, 4_359_935_386, MINUTES)
    paths = [shared_binance / BTC_CSV, generated, shared_binance / MICROS_CSV]
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    root = settings.resolved_lake_dir.resolve()
    report = import_archives(paths, root, defs, instance, build_partitions(settings).start_ms)

    trades = [t for p in paths for t in read_binance_dump(p)]  # by hand, not the platform's
    assert len(trades) == report.rows > 4212 + 32 + len(MINUTES)
    assert report.hours == [NEW_YEAR - 24 * H, *range(NEW_YEAR, NEW_YEAR + 25 * H, H)]
    runs = instance.get_run_records(dg.RunsFilter(run_ids=report.run_ids))
    assert all(r.dagster_run.is_success for r in runs)
    # a run a day, the trends of the 8 hours after 2024-12-31 00:00 and 2025-01-02 00:00, the days
    assert sorted(r.dagster_run.job_name for r in runs) == [DAILY_ROLLUP_JOB] + [HISTORY_JOB] * 5

    # raw: each minute's file holds exactly that minute's trades, by id, in ms
    want_files: dict[Path, list[tuple]] = {}
    for t in sorted(trades, key=lambda t: t.trade_id):
        path = lake.minute_file(root, t.symbol, t.trade_time_ms - t.trade_time_ms % 60_000)
        row = (t.trade_id, t.price, t.qty, t.trade_time_ms, t.event_time_ms, t.buyer_is_maker)
        want_files.setdefault(path, []).append(row)
    assert sorted(p.resolve() for p in root.rglob("*.parquet")) == sorted(want_files)
    assert _lake_trades(root, trades) == want_files

    # minutes, hours, days: pandas + Decimal from the files; trends: pandas on a time index
    database = settings.resolved_duckdb_path
    minutes = _rows(database, "trade_analytics_1m")
    assert len(minutes) == 2 + len(MINUTES) + 1
    assert_matches(minutes, expected_analytics(trades))
    assert_rollups(_rows(database, ROLLUP_TABLES["hour"]), direct(trades, "hour"), "hour")
    days = _rows(database, ROLLUP_TABLES["day"])
    assert [r["trade_count"] for r in days] == [4212, len(trades) - 4212 - 32, 32]
    assert_rollups(days, direct(trades, "day"), "day")
    with warehouse.connection(database, read_only=True) as conn:
        analytics = warehouse.read_minutes(conn, 0, NEW_YEAR + 2 * 24 * H)
    trends = _rows(database, TRENDS_TABLE)
    assert len(trends) == len(minutes)
    assert_equal_pandas(trends, expected(analytics))

    # the import rebuilt the trends after what it wrote: nothing stale for trend_tails_sensor
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    tick = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert tick.run_requests == [] and "up to date" in tick.skip_reason.skip_message
