"""Import Binance dumps: check every file, write the raw trades, then rebuild the analytics.

1. **Check**: every file is read and validated in full before anything is written; one bad
   file (named, with its row) stops the import with nothing written.
2. **Write**: each dump's trades go to the lake (:mod:`.lake_write`); same dump, same bytes.
3. **Rebuild**: the Dagster assets recompute what depends on those trades, as runs on the
   instance (visible in the UI): ``trade_history_job`` (trade_analytics_1m from the Parquet,
   trade_trends_1m, trade_analytics_1h) day by day in time order, the trends of the 8 hours
   after each imported stretch (their look-back changed), then ``trade_analytics_1d``. Under
   ``make run`` ``trend_tails_sensor`` would rebuild those tails too; the import does not wait
   for it, and leaves it nothing to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from crypto_platform.core.archive import ArchiveError
from crypto_platform.core.trends import LOOKBACK_MS, TRENDS_TABLE
from crypto_platform.core.windows import HOUR_MS, day_floor_ms, hour_floor_ms
from crypto_platform.defs.history import DAILY_ROLLUP_JOB, HISTORY_JOB
from crypto_platform.defs.partitions import hour_partition_key
from crypto_platform.ingest_archive.lake_write import DumpWrite, write_dump
from crypto_platform.ingest_archive.parse import members, read_dump


class ImportFailedError(RuntimeError):
    """A Dagster run of the rebuild failed; the raw trades are written, the message says what
    to re-run."""


class Progress(Protocol):
    """What the importer reports as it goes (the CLI draws bars; tests pass nothing)."""

    def start(self, phase: str, total: int, unit: str) -> None: ...
    def advance(self, amount: int) -> None: ...
    def finish(self) -> None: ...


class _Silent:
    def start(self, phase: str, total: int, unit: str) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class ImportReport:
    dumps: list[DumpWrite] = field(default_factory=list)
    hours: list[int] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.dumps)


def check_dumps(
    paths: Sequence[Path], symbol: str | None, first_partition_ms: int, progress: Progress
) -> None:
    """Read and validate every file; raises ArchiveError naming the first bad file and row."""
    sizes = sum(m.size for p in paths for m in members(p))
    progress.start("checking", sizes, "B")
    for path in paths:
        trades = read_dump(path, symbol, progress.advance)
        if trades.num_rows == 0:
            raise ArchiveError(f"{path}: holds no trades")
        if pc.min(trades["trade_time"].cast(pa.int64())).as_py() < first_partition_ms:
            raise ArchiveError(_before_partitions(path, first_partition_ms))
    progress.finish()


def _before_partitions(path: Path, first_partition_ms: int) -> str:
    start = datetime.fromtimestamp(first_partition_ms / 1000, tz=UTC).date()
    return (
        f"{path}: its trades are older than the first partition ({start}); set "
        "CRYPTO_PLATFORM_PARTITIONS_START (or partitions_start in crypto-platform.toml) earlier"
    )


def write_dumps(
    lake: Path, paths: Sequence[Path], symbol: str | None, progress: Progress
) -> list[DumpWrite]:
    """Parse each (already checked) dump again and write it; one at a time bounds memory."""
    progress.start("writing", len(paths), "file")
    written = []
    for path in paths:
        written.append(write_dump(lake, read_dump(path, symbol)))
        progress.advance(1)
    progress.finish()
    return written


def touched_hours(dumps: Sequence[DumpWrite]) -> list[int]:
    hours: set[int] = set()
    for dump in dumps:
        hours.update(range(hour_floor_ms(dump.first_minute_ms), dump.last_minute_ms + 1, HOUR_MS))
    return sorted(hours)


def _range_tags(first_key: str, last_key: str) -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: first_key, ASSET_PARTITION_RANGE_END_TAG: last_key}


def _by_day(hours: Sequence[int]) -> list[list[int]]:
    days: dict[int, list[int]] = {}
    for hour in hours:
        days.setdefault(day_floor_ms(hour), []).append(hour)
    return [days[d] for d in sorted(days)]


def _trend_tails(hours: Sequence[int], last_partition_ms: int) -> list[list[int]]:
    """The hours after each imported stretch whose trends look back into it."""
    imported = set(hours)
    tails = []
    for hour in hours:
        if hour + HOUR_MS in imported:
            continue
        tail = [
            h
            for h in range(hour + HOUR_MS, hour + HOUR_MS + LOOKBACK_MS, HOUR_MS)
            if h <= last_partition_ms
        ]
        cut = next((i for i, h in enumerate(tail) if h in imported), len(tail))
        if tail[:cut]:
            tails.append(tail[:cut])
    return tails


# The run's events are stored on the instance (see them in the UI); the terminal shows warnings.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class _Runner:
    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, report: ImportReport):
        self.defs, self.instance, self.report = defs, instance, report

    def run(self, job_name: str, first: str, last: str, selection=None) -> None:
        result = self.defs.resolve_job_def(job_name).execute_in_process(
            run_config=_QUIET,
            instance=self.instance,
            tags=_range_tags(first, last),
            asset_selection=selection,
            raise_on_error=False,
        )
        self.report.run_ids.append(result.run_id)
        if not result.success:
            raise ImportFailedError(
                f"run {result.run_id} of {job_name} over {first}..{last} failed; the raw trades "
                "are written: backfill that range in the Dagster UI, or import again"
            )


def rebuild(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    hours: Sequence[int],
    last_partition_ms: int,
    report: ImportReport,
    progress: Progress,
) -> None:
    """Run the Dagster assets over ``hours``: day by day, then the trends tails, then days."""
    days = _by_day(hours)
    tails = _trend_tails(hours, last_partition_ms)
    runner = _Runner(defs, instance, report)
    progress.start("analytics", len(days) + len(tails) + 1, "run")
    for day_hours in days:
        runner.run(HISTORY_JOB, hour_partition_key(day_hours[0]), hour_partition_key(day_hours[-1]))
        progress.advance(1)
    for tail in tails:
        keys = (hour_partition_key(tail[0]), hour_partition_key(tail[-1]))
        runner.run(HISTORY_JOB, *keys, selection=[dg.AssetKey(TRENDS_TABLE)])
        progress.advance(1)
    first_day, last_day = day_floor_ms(hours[0]), day_floor_ms(hours[-1])
    runner.run(DAILY_ROLLUP_JOB, _day_key(first_day), _day_key(last_day))
    progress.advance(1)
    progress.finish()


def _day_key(day_ms: int) -> str:
    return datetime.fromtimestamp(day_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def import_archives(
    paths: Sequence[Path],
    lake: Path,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    first_partition_ms: int,
    symbol: str | None = None,
    progress: Progress | None = None,
    rebuild_analytics: bool = True,
) -> ImportReport:
    """Check, write and (unless told not to) rebuild; see the module docstring."""
    progress = progress or _Silent()
    check_dumps(paths, symbol, first_partition_ms, progress)
    report = ImportReport(dumps=write_dumps(lake, paths, symbol, progress))
    report.hours = touched_hours(report.dumps)
    if rebuild_analytics and report.hours:
        now_hour = hour_floor_ms(int(datetime.now(UTC).timestamp() * 1000))
        rebuild(defs, instance, report.hours, now_hour, report, progress)
    return report
