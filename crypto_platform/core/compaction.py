"""Daily compaction: a day's minute files of one symbol merged into one Parquet file.

Long histories stay fast to scan and the file count stays small (one file per symbol and day
instead of up to 1,440). The merge streams hour by hour (memory stays at about one hour of
trades), writes the day file atomically, reads it back and compares row count, id range and
exact sums with what went in, and only then deletes the minute files it merged, each only if
it is unchanged since it was read (a minute re-materialised meanwhile stays and keeps
precedence). Re-running a day merges the existing day file with any newer minute files.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crypto_platform.core.lake import (
    PARQUET_OPTIONS,
    daily_file,
    lake_symbols,
    minute_files,
    read_trades,
)
from crypto_platform.core.trade_batches import LAKE_SCHEMA
from crypto_platform.core.windows import DAY_MS, HOUR_MS


class CompactionError(RuntimeError):
    """A day could not be merged safely; its minute files were left in place."""


@dataclass
class Fingerprint:
    """Order-independent summary of a set of trades, exact (decimal sums)."""

    rows: int = 0
    first_id: int | None = None
    last_id: int | None = None
    id_sum: int = 0
    price_sum: Decimal = Decimal(0)
    qty_sum: Decimal = Decimal(0)

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        ids = table["trade_id"]
        low, high = pc.min(ids).as_py(), pc.max(ids).as_py()
        self.rows += table.num_rows
        self.first_id = low if self.first_id is None else min(self.first_id, low)
        self.last_id = high if self.last_id is None else max(self.last_id, high)
        self.id_sum += pc.sum(ids).as_py()
        self.price_sum += pc.sum(table["price"]).as_py()
        self.qty_sum += pc.sum(table["qty"]).as_py()


@dataclass
class DayCompaction:
    symbol: str
    path: Path
    rows: int
    merged: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def compact_day(root: Path, day_ms: int) -> list[DayCompaction]:
    """Compact every symbol's minute files of the UTC day starting at ``day_ms``."""
    results = []
    for symbol in lake_symbols(root):
        sources = {
            path: _stamp(path)
            for (s, _m), path in minute_files(root, day_ms, day_ms + DAY_MS).items()
            if s == symbol
        }
        if sources:
            results.append(_compact_symbol(root, symbol, day_ms, sources))
    return results


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _compact_symbol(
    root: Path, symbol: str, day_ms: int, sources: dict[Path, tuple[int, int]]
) -> DayCompaction:
    target = daily_file(root, symbol, day_ms)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    expected = Fingerprint()
    try:
        _write_day(root, symbol, day_ms, temporary, expected)
        written = Fingerprint()
        written.add(pq.read_table(temporary))
        if written != expected:
            raise CompactionError(
                f"{symbol} {target.parent.name}: the merged file does not match its sources "
                f"({written} != {expected}); minute files kept"
            )
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    result = DayCompaction(symbol, target, expected.rows)
    for path, stamp in sorted(sources.items()):
        if path.exists() and _stamp(path) == stamp:
            path.unlink()
            result.merged.append(path)
            _remove_empty_dirs(path.parent, stop=root)
        else:
            result.kept.append(path)
    return result


def _write_day(root: Path, symbol: str, day_ms: int, path: Path, fingerprint: Fingerprint) -> None:
    """Stream the day hour by hour into ``path``; trade ids must rise across hours."""
    last_id: int | None = None
    with pq.ParquetWriter(path, LAKE_SCHEMA, **PARQUET_OPTIONS) as writer:
        for hour in range(day_ms, day_ms + DAY_MS, HOUR_MS):
            rows = read_trades(root, hour, hour + HOUR_MS, symbol=symbol)
            if rows.num_rows == 0:
                continue
            first = pc.min(rows["trade_id"]).as_py()
            if last_id is not None and first <= last_id:
                raise CompactionError(
                    f"{symbol}: trade id {first} in hour {hour} is not above {last_id} of an "
                    "earlier hour; the day cannot be merged in id order (minute files kept)"
                )
            last_id = pc.max(rows["trade_id"]).as_py()
            fingerprint.add(rows)
            writer.write_table(rows.cast(LAKE_SCHEMA))


def _remove_empty_dirs(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
