"""The Parquet lake of raw trades: layout, deduplication, atomic deterministic writes, reads.

Layout under the lake root (Hive style, UTC)::

    raw_trades/symbol=BTCUSDT/date=2024-12-31/hour=00/minute=01.parquet   one file per minute
    raw_trades_daily/symbol=BTCUSDT/date=2024-12-31/trades.parquet        a compacted day

Each file holds :data:`LAKE_SCHEMA` rows of one symbol, sorted by trade id. Writes go to a
hidden temporary file in the same folder and are renamed into place, so a reader never sees a
half-written file; the bytes depend only on the rows (same rows, same pyarrow: same bytes), so
re-materialising a minute is a no-op on disk. A minute file takes precedence over the
compacted day's rows for that minute: it can only be newer (compaction deletes the minute files
it merged).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_ds
import pyarrow.parquet as pq

from crypto_platform.core.progress import MINUTE_MS
from crypto_platform.core.trade_batches import LAKE_SCHEMA, TIME_TYPE, empty_trades
from crypto_platform.core.windows import DAY_MS, day_floor_ms, hours_between

RAW_DIR = "raw_trades"
DAILY_DIR = "raw_trades_daily"
DAILY_FILE = "trades.parquet"
WRITER_THREADS = 2
MAX_PENDING_FILES = 4 * WRITER_THREADS
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}
_MINUTE_FILE_RE = re.compile(r"^minute=(\d{2})\.parquet$")
# Sort order that picks, among copies of one (symbol, trade id), the same copy whatever order
# they were read in: the content decides, not the Kafka offset.
_DEDUP_ORDER = [
    ("symbol", "ascending"),
    ("trade_id", "ascending"),
    ("event_time", "ascending"),
    ("trade_time", "ascending"),
    ("price", "ascending"),
    ("qty", "ascending"),
    ("buyer_is_maker", "ascending"),
]
_CONTENT_COLUMNS = ("price", "qty", "trade_time", "buyer_is_maker")


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def minute_file(root: Path, symbol: str, minute_ms: int) -> Path:
    """``root/raw_trades/symbol=S/date=YYYY-MM-DD/hour=HH/minute=MM.parquet``."""
    at = _utc(minute_ms)
    return (
        root
        / RAW_DIR
        / f"symbol={symbol}"
        / f"date={at:%Y-%m-%d}"
        / f"hour={at:%H}"
        / f"minute={at:%M}.parquet"
    )


def daily_file(root: Path, symbol: str, day_ms: int) -> Path:
    """``root/raw_trades_daily/symbol=S/date=YYYY-MM-DD/trades.parquet``."""
    return root / DAILY_DIR / f"symbol={symbol}" / f"date={_utc(day_ms):%Y-%m-%d}" / DAILY_FILE


def lake_symbols(root: Path) -> list[str]:
    """Symbols with any files in the lake (minute or daily)."""
    found = set()
    for folder in (root / RAW_DIR, root / DAILY_DIR):
        if folder.is_dir():
            found.update(p.name.removeprefix("symbol=") for p in folder.glob("symbol=*"))
    return sorted(found)


def use_memory_returning_pool() -> None:
    """Make Arrow allocate from jemalloc, returning freed pages to the OS at once.

    An hour's materialisation allocates and frees several copies of the hour's trades (parsed
    chunks, per-symbol copies, files being written); with Arrow's default mimalloc pool the
    freed pages stay resident, and the peak RSS of a 5M-trade hour was about 20% higher
    (docs/benchmarks.md). ``ARROW_DEFAULT_MEMORY_POOL``, when set, is left to decide.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without jemalloc
        return


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a writer killed mid-write left it
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, temporary, **PARQUET_OPTIONS)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


@dataclass(frozen=True)
class Deduplicated:
    table: pa.Table
    dropped: int
    conflicting: int
    """Dropped copies whose price, qty, trade time or side differed from the kept one."""


def deduplicate(table: pa.Table) -> Deduplicated:
    """One row per (symbol, trade id), sorted by symbol then trade id; the pick is content-based.

    The common case, one symbol's rows with rising ids (as Kafka holds them), costs one pass
    over the ids; otherwise one sort on the two key columns and one copy, and only when copies
    exist is the whole table sorted by content to pick the same copy every time.
    """
    if table.num_rows == 0:
        return Deduplicated(table, 0, 0)
    if _one_symbol_rising_ids(table):  # one symbol's rows in Kafka order: nothing to do
        return Deduplicated(table, 0, 0)
    by_key, repeated = _key_order(table)
    if not repeated:
        return Deduplicated(table.take(pa.array(by_key)), 0, 0)
    ordered = table.take(pc.sort_indices(table, sort_keys=_DEDUP_ORDER))
    repeat = _same_as_previous(ordered, ("symbol", "trade_id"))
    conflicting = int((repeat & ~_same_as_previous(ordered, _CONTENT_COLUMNS)).sum())
    return Deduplicated(ordered.filter(pa.array(~repeat)), int(repeat.sum()), conflicting)


def _one_symbol_rising_ids(table: pa.Table) -> bool:
    """All rows of one symbol, with strictly rising trade ids (so sorted and unique)."""
    ids = table["trade_id"].to_numpy()
    return bool((ids[1:] > ids[:-1]).all()) and pc.count_distinct(table["symbol"]).as_py() == 1


def _key_order(table: pa.Table) -> tuple[np.ndarray, bool]:
    """Row order by (symbol, trade id), and whether any key repeats.

    numpy sorts the ids (with the symbols as small integer codes) several times faster than
    Arrow's sort on a string and an integer column; both sorts are stable.
    """
    names = pc.unique(table["symbol"]).sort()
    ids = table["trade_id"].to_numpy()
    if len(names) == 1:
        order = np.argsort(ids, kind="stable")
        ordered = ids[order]
        return order, bool((ordered[1:] == ordered[:-1]).any())
    codes = pc.index_in(table["symbol"], value_set=names).to_numpy(zero_copy_only=False)
    order = np.lexsort((ids, codes))
    ids, codes = ids[order], codes[order]
    return order, bool(((ids[1:] == ids[:-1]) & (codes[1:] == codes[:-1])).any())


def _same_as_previous(table: pa.Table, columns: Iterable[str]) -> np.ndarray:
    """Row i equals row i-1 in every one of ``columns`` (row 0: False)."""
    same = np.ones(table.num_rows, dtype=bool)
    same[0] = False
    for name in columns:
        column = table[name].combine_chunks()
        equal = pc.equal(column.slice(1), column.slice(0, len(column) - 1))
        same[1:] &= pc.fill_null(equal, False).to_numpy(zero_copy_only=False)
    return same


def minute_starts(trade_time: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Each trade time's minute start, as int64 epoch milliseconds."""
    if isinstance(trade_time, pa.ChunkedArray):
        trade_time = trade_time.combine_chunks()
    values = trade_time.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return pa.array(values - values % MINUTE_MS, pa.int64())


def only_minutes(trades: pa.Table, minutes_ms: Iterable[int]) -> pa.Table:
    """Rows of ``trades`` whose minute is one of ``minutes_ms``."""
    wanted = pa.array(sorted(set(minutes_ms)), pa.int64())
    return trades.filter(pc.is_in(minute_starts(trades["trade_time"]), wanted))


def split_by_minute(table: pa.Table) -> Iterator[tuple[str, int, pa.Table]]:
    """(symbol, minute start, rows sorted by trade id) for every (symbol, minute) with rows."""
    if table.num_rows == 0:
        return
    keyed = table.append_column("_minute", minute_starts(table["trade_time"]))
    if not _ordered_by_symbol_minute_id(keyed):  # usual input (by symbol, id) needs no copy
        keyed = keyed.take(
            pc.sort_indices(
                keyed,
                [("symbol", "ascending"), ("_minute", "ascending"), ("trade_id", "ascending")],
            )
        )
    starts = np.flatnonzero(~_same_as_previous(keyed, ("symbol", "_minute")))
    ends = np.append(starts[1:], keyed.num_rows)
    for start, end in zip(starts, ends, strict=True):
        chunk = keyed.slice(int(start), int(end - start))
        yield (
            chunk["symbol"][0].as_py(),
            chunk["_minute"][0].as_py(),
            chunk.drop_columns(["_minute"]),
        )


def _ordered_by_symbol_minute_id(keyed: pa.Table) -> bool:
    """Rows already sorted by (symbol, minute, trade id)? (Binance ids rise with time.)"""
    same_symbol = _same_as_previous(keyed, ("symbol",))[1:]
    if not pc.all(pc.greater_equal(keyed["symbol"][1:], keyed["symbol"][:-1])).as_py():
        return False
    minutes = keyed["_minute"].to_numpy()
    ids = keyed["trade_id"].to_numpy()
    minute_step, id_step = np.diff(minutes), np.diff(ids)
    in_order = (minute_step > 0) | ((minute_step == 0) & (id_step > 0))
    return bool(np.all(~same_symbol | in_order))


@dataclass
class MinuteWrite:
    files: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    rows_per_symbol: dict[str, int] = field(default_factory=dict)
    minutes_with_trades: set[int] = field(default_factory=set)


@dataclass
class LakeWrite(MinuteWrite):
    dropped: int = 0
    conflicting: int = 0


def by_symbol(trades: pa.Table) -> Iterator[pa.Table]:
    """Each symbol's rows in turn (in their original order), taken one symbol at a time.

    Kafka keys trades by symbol, so every copy of a (symbol, trade id) is in its symbol's
    rows: deduplicating and writing symbol by symbol gives the same files as doing the whole
    table at once, while only one symbol's copy is in memory beside the input. A filter, not a
    ``take``: Arrow's take on a chunked table concatenates each column first (the hour's symbol
    strings, once per symbol), a filter works chunk by chunk.
    """
    if trades.num_rows == 0:
        return
    names = pc.unique(trades["symbol"]).sort()
    codes = pc.index_in(trades["symbol"], value_set=names).to_numpy(zero_copy_only=False)
    for code in range(len(names)):
        yield trades.filter(pa.array(codes == code))


def write_minutes(root: Path, trades: pa.Table, minutes_ms: Iterable[int]) -> MinuteWrite:
    """Write the (deduplicated) trades of ``minutes_ms``, one file per (symbol, minute).

    Rows outside ``minutes_ms`` are an error (the caller filters). A minute with no trades gets
    no file, and a file left from an earlier write of that minute is removed: the lake then says
    what the source said, however often a minute is written.
    """
    wanted = set(minutes_ms)
    report = MinuteWrite()
    with _FileWriter() as writer:
        writer.write(root, trades, wanted, report)
    _remove_unwritten(root, wanted, report)
    return report


def deduplicate_and_write(root: Path, trades: pa.Table, minutes_ms: Iterable[int]) -> LakeWrite:
    """:func:`deduplicate` then :func:`write_minutes`, symbol by symbol to bound the memory."""
    wanted = set(minutes_ms)
    report = LakeWrite()
    with _FileWriter() as writer:
        for rows in by_symbol(trades):
            unique = deduplicate(rows)
            del rows
            report.dropped += unique.dropped
            report.conflicting += unique.conflicting
            writer.write(root, unique.table, wanted, report)
    _remove_unwritten(root, wanted, report)
    return report


class _FileWriter:
    """Writes minute files on :data:`WRITER_THREADS` threads: Parquet encoding, compression and
    fsync release the GIL, so files are written while the next symbol is sorted. Leaving the
    ``with`` block waits for every file and raises the first error."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="lake-writer")
        self._pending: list[Future[None]] = []

    def __enter__(self) -> _FileWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def write(self, root: Path, trades: pa.Table, wanted: set[int], report: MinuteWrite) -> None:
        for symbol, minute, rows in split_by_minute(trades.select(LAKE_SCHEMA.names)):
            if minute not in wanted:
                raise ValueError(
                    f"trades of minute {_utc(minute):%Y-%m-%dT%H:%M} were not asked for"
                )
            path = minute_file(root, symbol, minute)
            while len(self._pending) >= MAX_PENDING_FILES:  # bound what waits in memory
                self._pending.pop(0).result()
            self._pending.append(
                # one chunk per file: the bytes then do not depend on how the rows were chunked
                self._pool.submit(
                    write_parquet_atomic, rows.cast(LAKE_SCHEMA).combine_chunks(), path
                )
            )
            report.files.append(path)
            report.rows_per_symbol[symbol] = report.rows_per_symbol.get(symbol, 0) + rows.num_rows
            report.minutes_with_trades.add(minute)
        done = [f for f in self._pending if f.done()]
        for future in done:
            future.result()  # fail early
        self._pending = [f for f in self._pending if not f.done()]


def _remove_unwritten(root: Path, wanted: set[int], report: MinuteWrite) -> None:
    """Delete minute files of ``wanted`` minutes that this write did not (re)write."""
    written = set(report.files)
    for symbol in lake_symbols(root):
        for minute in sorted(wanted):
            path = minute_file(root, symbol, minute)
            if path not in written and path.exists():
                path.unlink()
                report.removed.append(path)


def minute_files(root: Path, start_ms: int, end_ms: int) -> dict[tuple[str, int], Path]:
    """Existing minute files with minute start in ``[start_ms, end_ms)``, by (symbol, minute)."""
    found: dict[tuple[str, int], Path] = {}
    base = root / RAW_DIR
    if not base.is_dir():
        return found
    for symbol_dir in sorted(base.glob("symbol=*")):
        symbol = symbol_dir.name.removeprefix("symbol=")
        for hour in hours_between(start_ms, end_ms):
            at = _utc(hour)
            hour_dir = symbol_dir / f"date={at:%Y-%m-%d}" / f"hour={at:%H}"
            if not hour_dir.is_dir():
                continue
            for path in sorted(hour_dir.iterdir()):
                match = _MINUTE_FILE_RE.match(path.name)
                if match:
                    minute = hour + int(match.group(1)) * MINUTE_MS
                    if start_ms <= minute < end_ms:
                        found[(symbol, minute)] = path
    return found


def daily_files(root: Path, start_ms: int, end_ms: int) -> dict[tuple[str, int], Path]:
    """Existing compacted day files overlapping ``[start_ms, end_ms)``, by (symbol, day)."""
    found: dict[tuple[str, int], Path] = {}
    base = root / DAILY_DIR
    if not base.is_dir() or end_ms <= start_ms:
        return found
    for symbol_dir in sorted(base.glob("symbol=*")):
        symbol = symbol_dir.name.removeprefix("symbol=")
        for day in range(day_floor_ms(start_ms), end_ms, DAY_MS):
            path = daily_file(root, symbol, day)
            if path.exists():
                found[(symbol, day)] = path
    return found


def read_trades(
    root: Path,
    start_ms: int,
    end_ms: int,
    symbol: str | None = None,
    columns: list[str] | None = None,
    sort: bool = True,
) -> pa.Table:
    """Every trade in the lake with trade time in ``[start_ms, end_ms)``, sorted by symbol, id.

    Minute files win over a compacted day's rows of the same (symbol, minute). Keep ranges to
    about an hour at a time: the result is in memory. ``columns`` reads only those (checks that
    count or group need two of the seven); ``sort=False`` skips the sort where order does not
    matter.
    """
    minutes = {
        key: path
        for key, path in minute_files(root, start_ms, end_ms).items()
        if symbol is None or key[0] == symbol
    }
    needed = None
    if columns is not None:
        needed = list(dict.fromkeys([*columns, "symbol", "trade_id", "trade_time"]))
    parts = [_read_files(list(minutes.values()), columns=needed)]
    days = daily_files(root, start_ms, end_ms)
    for (day_symbol, _day), path in days.items():
        if symbol is not None and day_symbol != symbol:
            continue
        rows = _read_files([path], start_ms, end_ms, columns=needed)
        covered = pa.array([m for (s, m) in minutes if s == day_symbol], pa.int64())
        if len(covered):
            rows = rows.filter(pc.invert(pc.is_in(minute_starts(rows["trade_time"]), covered)))
        parts.append(rows)
    table = pa.concat_tables(parts)
    if sort:
        table = table.take(
            pc.sort_indices(table, [("symbol", "ascending"), ("trade_id", "ascending")])
        )
    return table if columns is None else table.select(columns)


def read_trades_by_symbol(
    root: Path,
    start_ms: int,
    end_ms: int,
    columns: list[str] | None = None,
    sort: bool = True,
) -> Iterator[pa.Table]:
    """:func:`read_trades`, one symbol at a time (in symbol order), skipping symbols without
    trades: what is computed per symbol then needs one symbol's rows in memory, not the hour's."""
    for symbol in lake_symbols(root):
        table = read_trades(root, start_ms, end_ms, symbol=symbol, columns=columns, sort=sort)
        if table.num_rows:
            yield table


def _read_files(
    paths: list[Path],
    start_ms: int | None = None,
    end_ms: int | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Rows of ``paths`` (trade time in ``[start_ms, end_ms)`` if given; row groups skipped)."""
    if not paths:
        empty = empty_trades()
        return empty if columns is None else empty.select(columns)
    dataset = pa_ds.dataset([str(p) for p in paths], schema=LAKE_SCHEMA, format="parquet")
    if start_ms is None or end_ms is None:
        return dataset.to_table(columns=columns)
    time = pa_ds.field("trade_time")
    start = pa.scalar(start_ms, pa.int64()).cast(TIME_TYPE)
    end = pa.scalar(end_ms, pa.int64()).cast(TIME_TYPE)
    return dataset.to_table(columns=columns, filter=(time >= start) & (time < end))


@dataclass(frozen=True)
class MisplacedTrades:
    path: Path
    trade_ids: list[int]


def misplaced_trades(root: Path, start_ms: int, end_ms: int) -> list[MisplacedTrades]:
    """Files whose rows lie outside the minute (or day) their path names, or of another symbol."""
    found = []
    for (symbol, minute), path in minute_files(root, start_ms, end_ms).items():
        found.extend(_outside(path, symbol, minute, minute + MINUTE_MS))
    for (symbol, day), path in daily_files(root, start_ms, end_ms).items():
        found.extend(_outside(path, symbol, day, day + DAY_MS))
    return found


def _outside(path: Path, symbol: str, start_ms: int, end_ms: int) -> list[MisplacedTrades]:
    rows = pq.read_table(path, columns=["symbol", "trade_id", "trade_time"])
    ms = rows["trade_time"].cast(pa.int64())
    bad = pc.or_(
        pc.or_(pc.less(ms, start_ms), pc.greater_equal(ms, end_ms)),
        pc.not_equal(rows["symbol"], symbol),
    )
    ids = rows["trade_id"].filter(bad).to_pylist()
    return [MisplacedTrades(path, ids)] if ids else []
