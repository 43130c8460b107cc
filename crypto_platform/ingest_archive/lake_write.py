"""One dump's trades into the raw Parquet lake, with the lake's own writer and layout.

``core.lake.write_minutes`` serves the Kafka path, where a run owns every symbol of its minutes;
a dump owns one symbol only, so this writes that symbol's minute files and removes its stale
ones, and leaves every other symbol's files alone. The dump is authoritative from its first to
its last trade's minute: a minute there without trades ends with no file, as in the Kafka path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from crypto_platform.core.lake import (
    deduplicate,
    minute_file,
    split_by_minute,
    write_parquet_atomic,
)
from crypto_platform.core.progress import MINUTE_MS, minute_floor_ms
from crypto_platform.core.trade_batches import LAKE_SCHEMA


@dataclass
class DumpWrite:
    symbol: str
    first_minute_ms: int
    last_minute_ms: int
    rows: int = 0
    duplicates: int = 0
    files: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def minute_span(trades: pa.Table) -> tuple[int, int]:
    """First and last minute start (epoch ms) of a non-empty table of trades."""
    times = trades["trade_time"].cast(pa.int64())
    return minute_floor_ms(pc.min(times).as_py()), minute_floor_ms(pc.max(times).as_py())


def write_dump(root: Path, trades: pa.Table) -> DumpWrite:
    """Write ``trades`` (one symbol, validated) as minute files; returns what changed."""
    symbols = pc.unique(trades["symbol"]).to_pylist()
    if len(symbols) != 1:
        raise ValueError(f"a dump holds one symbol, got {symbols}")
    first, last = minute_span(trades)
    report = DumpWrite(symbols[0], first, last)
    unique = deduplicate(trades)
    report.duplicates = unique.dropped
    written = set()
    for symbol, minute, rows in split_by_minute(unique.table.select(LAKE_SCHEMA.names)):
        path = minute_file(root, symbol, minute)
        write_parquet_atomic(rows.cast(LAKE_SCHEMA), path)
        written.add(minute)
        report.files.append(path)
        report.rows += rows.num_rows
    for minute in range(first, last + MINUTE_MS, MINUTE_MS):
        path = minute_file(root, report.symbol, minute)
        if minute not in written and path.exists():
            path.unlink()
            report.removed.append(path)
    return report
