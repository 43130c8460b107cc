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
from crypto_platform.core.archive import ArchiveError
from crypto_platform.core.rollups import ROLLUP_TABLES
from crypto_platform.core.trades import Trade
from crypto_platform.core.trends import TRENDS_TABLE
from crypto_platform.definitions import build_definitions
from crypto_platform.defs.history import DAILY_ROLLUP_JOB, HISTORY_JOB
from crypto_platform.defs.partitions import build_partitions, hour_partition_key
from crypto_platform.ingest.exchange_sim import ExchangeSimulator
from crypto_platform.ingest.replay import load_recordings
from crypto_platform.ingest.service import IngestService
from crypto_platform.ingest.sim_sources import ReplaySource
from crypto_platform.ingest_archive.importer import ImportReport, import_archives
from crypto_platform.settings import Settings
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_ingest.conftest import (
    Topics,
    assert_every_trade_exactly_as_sent,
    delivered_through,
    make_config,
    read_topic,
    running,
    wait_until,
)
from crypto_platform_tests.test_trends.conftest import BTC_CSV, MICROS_CSV, read_binance_dump

BTC_DAY = 1_735_603_200_000  # 2024-12-31 00:00 UTC
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


def _through_the_simulator(platform: Platform, csv: Path, dlq: str) -> list[Trade]:
    """``exchange-sim --replay csv`` (its source: the recording, as fast as read) and the real
    ingestion service into the platform's topics; returns the trades it replayed."""
    recorded = load_recordings([csv])
    topics = Topics(platform.trades_topic, dlq, platform.progress_topic)
    with ExchangeSimulator(ReplaySource(recorded, speed=None), record=True) as sim:
        service = IngestService(make_config(platform.bootstrap, topics, sim, ["btcusdt"]))
        with running(service):
            last = {"BTCUSDT": recorded[-1].trade.trade_id}
            wait_until(lambda: delivered_through(service, last), 60, "delivery to Kafka")
    trades = [r.trade for r in recorded]
    messages = read_topic(platform.bootstrap, platform.trades_topic)
    assert_every_trade_exactly_as_sent(messages, trades, sim)
    assert read_topic(platform.bootstrap, dlq) == []
    return trades


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("recording", "files", "rows"),
    [
        (BTC_CSV, ["minute=00", "minute=01"], [2, 2, 1, 1]),  # milliseconds, 4,212 trades
        (MICROS_CSV, ["minute=00"], [1, 1, 1, 1]),  # microseconds, 32 trades
    ],
)
def test_the_archive_gives_what_the_simulator_ingestion_and_kafka_give(
    recording: str,
    files: list[str],
    rows: list[int],
    platform: Platform,
    settings_factory,
    topic_factory,
    tmp_path: Path,
    shared_binance: Path,
) -> None:
    csv = shared_binance / recording
    # Through the exchange simulator, the ingestion service and Kafka, then the Dagster assets
    trades = _through_the_simulator(platform, csv, topic_factory("dlq", 1))
    hour = trades[0].trade_time_ms - trades[0].trade_time_ms % 3_600_000
    assert platform.backfill(hour, hour).success
    first_key, day = hour_partition_key(hour), hour_partition_key(hour)[:10]
    _run(platform, HISTORY_JOB, first_key, hour_partition_key(hour + 8 * 3_600_000))
    _run(platform, DAILY_ROLLUP_JOB, day, day)
    # Through the archive, into another data folder on the same instance
    imported = _settings(settings_factory, tmp_path / "imported")
    report = _import(imported, platform.instance, [csv])
    assert report.rows == len(trades) and report.hours == [hour]
    assert [d.duplicates for d in report.dumps] == [0]
    assert len(report.run_ids) == 3  # the hour, the trends of the 8 hours after, the day
    lake_files = _lake_bytes(imported)
    assert sorted(lake_files) == [
        f"symbol=BTCUSDT/date={day}/hour=00/{minute}.parquet" for minute in files
    ]
    assert lake_files == platform.lake_bytes()  # byte for byte
    tables = _tables(imported.resolved_duckdb_path)
    assert tables == _tables(platform.database)  # every row of every table, exactly
    assert [len(tables[t]) for t in TABLES] == rows
    stored = pq.read_table(lake.minute_file(imported.resolved_lake_dir, "BTCUSDT", hour))
    first_minute = [t for t in trades if t.trade_time_ms < hour + 60_000]
    assert stored["trade_id"].to_pylist() == [t.trade_id for t in first_minute]
    assert stored.num_rows == (1660 if recording == BTC_CSV else 32)
    # again: nothing changes
    again = _import(imported, platform.instance, [csv])
    assert _lake_bytes(imported) == lake_files and _tables(imported.resolved_duckdb_path) == tables
    assert again.rows == len(trades) and not any(d.removed for d in again.dumps)
    runs = platform.instance.get_run_records(dg.RunsFilter(run_ids=again.run_ids))
    assert {r.dagster_run.job_name for r in runs} == {HISTORY_JOB, DAILY_ROLLUP_JOB}
    assert all(r.dagster_run.is_success for r in runs)


def _zip_with_checksum(source: Path, folder: Path, checksum: str | None = None) -> Path:
    """The CSV zipped as Binance ships it (``BTCUSDT-trades-<day>.zip``), with its .CHECKSUM."""
    day = "2025-01-02" if source.name == Path(MICROS_CSV).name else "2024-12-31"
    path = folder / f"BTCUSDT-trades-{day}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(source, f"BTCUSDT-trades-{day}.csv")
    digest = checksum or hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / f"{path.name}.CHECKSUM").write_text(f"{digest}  {path.name}\n")
    return path


@pytest.mark.parametrize(
    ("recording", "minutes", "first_time_ms"),
    [
        (BTC_CSV, ["minute=00", "minute=01"], 1_735_603_200_213),  # ms, as written
        (MICROS_CSV, ["minute=00"], 1_735_776_000_113),  # µs 1735776000113701, floored to ms
    ],
)
def test_a_zip_with_millisecond_or_microsecond_times(
    recording: str,
    minutes: list[str],
    first_time_ms: int,
    settings_factory,
    tmp_path: Path,
    shared_binance: Path,
) -> None:
    settings = _settings(settings_factory, tmp_path / "data")
    dump = _zip_with_checksum(shared_binance / recording, tmp_path)
    report = _import(settings, dg.DagsterInstance.ephemeral(), [dump], rebuild_analytics=False)
    expected = read_binance_dump(shared_binance / recording)  # by hand, not the platform's
    assert report.rows == len(expected) and report.run_ids == []
    day = "2025-01-02" if recording == MICROS_CSV else "2024-12-31"
    files = _lake_bytes(settings)
    assert sorted(files) == [f"symbol=BTCUSDT/date={day}/hour=00/{m}.parquet" for m in minutes]
    raw = settings.resolved_lake_dir / "raw_trades"
    rows = [r for name in sorted(files) for r in pq.read_table(raw / name).to_pylist()]
    assert [_as_trade(r) for r in rows] == expected
    assert int(rows[0]["trade_time"].timestamp() * 1000) == first_time_ms
    # the same bytes as the plain CSV gives
    plain = _settings(settings_factory, tmp_path / "plain")
    _import(
        plain, dg.DagsterInstance.ephemeral(), [shared_binance / recording], rebuild_analytics=False
    )
    assert _lake_bytes(plain) == files


def _as_trade(row: dict) -> Trade:
    return Trade(
        row["symbol"],
        row["trade_id"],
        row["price"],
        row["qty"],
        round(row["trade_time"].timestamp() * 1000),
        round(row["event_time"].timestamp() * 1000),
        row["buyer_is_maker"],
    )


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


def _damaged_zip(zipped: Path, how: str) -> Path:
    """A copy of a good zip cut short, or with one byte of its deflate stream flipped."""
    data = zipped.read_bytes()
    path = zipped.with_name(f"BTCUSDT-trades-{how}.zip")
    if how == "cut_zip":
        path.write_bytes(data[: len(data) // 2])  # an interrupted download
    else:
        at = 200 if how == "bad_stream" else len(data) // 2  # inside the compressed member
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :])
    return path


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "bad_price",
        "bad_checksum",
        "cut_zip",
        "bad_stream",
        "bad_crc",
        "cut_csv_in_zip",
    ],
)
def test_a_bad_file_is_named_with_its_row_and_nothing_is_written(
    damage: str, settings_factory, tmp_path: Path, shared_binance: Path
) -> None:
    settings = _settings(settings_factory, tmp_path / "data")
    good = shared_binance / MICROS_CSV
    member = "!BTCUSDT-trades-2024-12-31.csv"
    zipped = _zip_with_checksum(shared_binance / BTC_CSV, tmp_path)
    zipped.with_name(f"{zipped.name}.CHECKSUM").unlink()  # the damage must be found without it
    if damage == "truncated":
        bad, message = _truncated(shared_binance / BTC_CSV, tmp_path), "row 4212: "
    elif damage == "bad_price":
        bad, message = _bad_value(shared_binance / BTC_CSV, tmp_path, 100), "row 100: "
    elif damage == "bad_checksum":
        bad = _zip_with_checksum(good, tmp_path, checksum="0" * 64)
        message = "differs from BTCUSDT-trades-2025-01-02.zip.CHECKSUM"
    elif damage == "cut_zip":
        bad, message = _damaged_zip(zipped, damage), ": not a readable zip"
    elif damage in ("bad_stream", "bad_crc"):  # zlib's error, or the zip's CRC check
        bad, message = _damaged_zip(zipped, damage), f"{member}: damaged ("
    else:
        (tmp_path / "cut").mkdir()
        bad = _zip_with_checksum(_truncated(shared_binance / BTC_CSV, tmp_path / "cut"), tmp_path)
        message = f"{member} row 4212: expected 7 fields, got 2"
    with pytest.raises(ArchiveError) as raised:
        _import(settings, dg.DagsterInstance.ephemeral(), [good, bad])
    assert str(raised.value).startswith(str(bad)) and message in str(raised.value)
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
