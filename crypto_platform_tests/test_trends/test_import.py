"""import-archive: the same raw Parquet and analytics as Kafka gives, idempotent, all-or-nothing
for bad files, zips with microsecond times; the command itself with its exit codes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from crypto_platform import warehouse
from crypto_platform.core import lake
from crypto_platform.core.archive import ArchiveError, read_trades
from crypto_platform.core.rollups import ROLLUP_TABLES
from crypto_platform.core.trends import TRENDS_TABLE
from crypto_platform.definitions import build_definitions
from crypto_platform.defs.history import DAILY_ROLLUP_JOB, HISTORY_JOB
from crypto_platform.defs.partitions import build_partitions
from crypto_platform.ingest_archive.importer import ImportReport, import_archives
from crypto_platform.settings import Settings
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_trends.conftest import BTC_CSV

BTC_DAY = 1_735_603_200_000  # 2024-12-31 00:00 UTC
MICROS_CSV = "btcusdt_2025-01-02/BTCUSDT-trades-2025-01-02.head32.csv"
TABLES = ("trade_analytics_1m", TRENDS_TABLE, *ROLLUP_TABLES.values())
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _settings(settings_factory, folder: Path) -> Settings:
    return settings_factory(data_dir=folder, partitions_start=date(2019, 1, 1))


def _import(settings: Settings, instance, paths, **options) -> ImportReport:
    defs = build_definitions(settings)
    return import_archives(
        [Path(p) for p in paths],
        settings.resolved_lake_dir.resolve(),
        defs,
        instance,
        build_partitions(settings).start_ms,
        **options,
    )


def _lake_bytes(settings: Settings) -> dict[str, bytes]:
    raw = settings.resolved_lake_dir / "raw_trades"
    if not raw.is_dir():
        return {}
    return {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*.parquet"))}


def _tables(database: Path) -> dict[str, list[dict]]:
    with warehouse.connection(database, read_only=True) as conn:
        return {
            t: conn.sql(f"SELECT * FROM {t} ORDER BY ALL").to_arrow_table().to_pylist()
            for t in TABLES
        }


def _run(platform: Platform, job: str, first: str, last: str) -> None:
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    result = platform.defs.resolve_job_def(job).execute_in_process(
        run_config=QUIET, instance=platform.instance, tags=tags
    )
    assert result.success


@pytest.mark.kafka
def test_the_archive_gives_what_kafka_gives_and_importing_again_changes_nothing(
    platform: Platform, settings_factory, tmp_path: Path, shared_binance: Path
) -> None:
    csv = shared_binance / BTC_CSV
    # Through Kafka: the trades produced as ingestion would, then the minute assets over the hour
    platform.produce(read_trades(csv))
    assert platform.backfill(BTC_DAY, BTC_DAY).success
    _run(platform, HISTORY_JOB, "2024-12-31-00:00", "2024-12-31-08:00")
    _run(platform, DAILY_ROLLUP_JOB, "2024-12-31", "2024-12-31")
    # Through the archive, into another data folder on the same instance
    imported = _settings(settings_factory, tmp_path / "imported")
    report = _import(imported, platform.instance, [csv])
    assert report.rows == 4212 and report.hours == [BTC_DAY]
    assert [d.duplicates for d in report.dumps] == [0]
    assert len(report.run_ids) == 3  # the hour, the trends of the 8 hours after, the day
    files = _lake_bytes(imported)
    assert sorted(files) == [
        "symbol=BTCUSDT/date=2024-12-31/hour=00/minute=00.parquet",
        "symbol=BTCUSDT/date=2024-12-31/hour=00/minute=01.parquet",
    ]
    assert files == platform.lake_bytes()  # byte for byte
    tables = _tables(imported.resolved_duckdb_path)
    assert tables == _tables(platform.database)  # every row of every table, exactly
    assert [len(tables[t]) for t in TABLES] == [2, 2, 1, 1]
    stored = pq.read_table(lake.minute_file(imported.resolved_lake_dir, "BTCUSDT", BTC_DAY))
    assert stored.num_rows == 1660 and stored["trade_id"][0].as_py() == 4356587539
    # again: nothing changes
    again = _import(imported, platform.instance, [csv])
    assert _lake_bytes(imported) == files and _tables(imported.resolved_duckdb_path) == tables
    assert again.rows == 4212 and not any(d.removed for d in again.dumps)
    runs = platform.instance.get_run_records(dg.RunsFilter(run_ids=again.run_ids))
    assert {r.dagster_run.job_name for r in runs} == {HISTORY_JOB, DAILY_ROLLUP_JOB}
    assert all(r.dagster_run.is_success for r in runs)


def _zip_with_checksum(source: Path, folder: Path, checksum: str | None = None) -> Path:
    path = folder / "BTCUSDT-trades-2025-01-02.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(source, "BTCUSDT-trades-2025-01-02.csv")
    digest = checksum or hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / f"{path.name}.CHECKSUM").write_text(f"{digest}  {path.name}\n")
    return path


def test_a_zip_with_microsecond_times(
    settings_factory, tmp_path: Path, shared_binance: Path
) -> None:
    settings = _settings(settings_factory, tmp_path / "data")
    dump = _zip_with_checksum(shared_binance / MICROS_CSV, tmp_path)
    report = _import(settings, dg.DagsterInstance.ephemeral(), [dump], rebuild_analytics=False)
    assert report.rows == 32 and report.run_ids == []
    (path,) = settings.resolved_lake_dir.rglob("*.parquet")
    assert path.relative_to(settings.resolved_lake_dir).as_posix() == (
        "raw_trades/symbol=BTCUSDT/date=2025-01-02/hour=00/minute=00.parquet"
    )
    rows = pq.read_table(path).to_pylist()
    expected = list(read_trades(shared_binance / MICROS_CSV))  # the row-by-row reader
    assert [(r["trade_id"], r["price"], r["qty"], r["buyer_is_maker"]) for r in rows] == [
        (t.trade_id, t.price, t.qty, t.buyer_is_maker) for t in expected
    ]
    # µs 1735776000113701 -> ms 1735776000113
    assert int(rows[0]["trade_time"].timestamp() * 1000) == 1_735_776_000_113


def _truncated(source: Path, folder: Path) -> Path:
    """The CSV cut in the middle of its last line, as an interrupted download leaves it."""
    text = source.read_text()
    path = folder / source.name
    path.write_text(text[: text.rstrip("\n").rfind("\n") + 20])
    return path


def _bad_value(source: Path, folder: Path, row: int) -> Path:
    lines = source.read_text().splitlines(keepends=True)
    fields = lines[row - 1].split(",")
    fields[1] = "92792.0x"
    lines[row - 1] = ",".join(fields)
    path = folder / f"BTCUSDT-trades-bad-{row}.csv"
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize("damage", ["truncated", "bad_price", "bad_checksum"])
def test_a_bad_file_is_named_with_its_row_and_nothing_is_written(
    damage: str, settings_factory, tmp_path: Path, shared_binance: Path
) -> None:
    settings = _settings(settings_factory, tmp_path / "data")
    good = shared_binance / MICROS_CSV
    if damage == "truncated":
        bad, message = _truncated(shared_binance / BTC_CSV, tmp_path), "row 4212: "
    elif damage == "bad_price":
        bad, message = _bad_value(shared_binance / BTC_CSV, tmp_path, 100), "row 100: "
    else:
        bad = _zip_with_checksum(good, tmp_path, checksum="0" * 64)
        message = "differs from BTCUSDT-trades-2025-01-02.zip.CHECKSUM"
    with pytest.raises(ArchiveError) as raised:
        _import(settings, dg.DagsterInstance.ephemeral(), [good, bad])
    assert str(bad) in str(raised.value) and message in str(raised.value)
    assert _lake_bytes(settings) == {}  # not even the good file before it
    assert not settings.resolved_duckdb_path.exists()


def _cli(args: list[str], data: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_PLATFORM_", "DAGSTER"))}
    env |= {
        "CRYPTO_PLATFORM_DATA_DIR": str(data),
        "CRYPTO_PLATFORM_PARTITIONS_START": "2024-12-01",
    }
    command = [sys.executable, "-m", "crypto_platform", "import-archive", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_command(tmp_path: Path, shared_binance: Path) -> None:
    bad = _truncated(shared_binance / BTC_CSV, tmp_path)
    failed = _cli([str(bad)], tmp_path / "data")
    assert failed.returncode == 1
    assert f"error: {bad} row 4212: expected 7 fields, got 2" in failed.stderr
    done = _cli([str(shared_binance / MICROS_CSV)], tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert "BTCUSDT: 32 trades in 1 minute files" in done.stdout
    assert "checking: 100%" in done.stderr and "analytics: 100%" in done.stderr
    assert (tmp_path / "data" / "dagster_home" / "dagster.yaml").is_file()
    with warehouse.connection(tmp_path / "data" / "analytics.duckdb", read_only=True) as conn:
        assert conn.sql("SELECT trade_count FROM trade_analytics_1d").fetchall() == [(32,)]
