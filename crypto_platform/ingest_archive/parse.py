"""A Binance trades dump (CSV, or the zip it ships in) to the lake's Arrow table, all validated.

Row by row, :func:`crypto_platform.core.archive.read_trades` would take a minute and gigabytes
for one busy day (millions of trades), so the file is parsed by Arrow's CSV reader and checked
column-wise with the same rules (7 fields, integer id >= 0, ``True``/``False`` flags, positive
prices and quantities with at most 8 decimals below 10^10, a time after 2017 in ms or µs).
When a check fails, the row-by-row reader is run over the file to name the first bad row, so
the error says ``<file> row <n>: <what>`` either way. Nothing is returned for a bad file.

The trades keep their trade time as event time (a dump has no event time), exactly as
:func:`~crypto_platform.core.archive.read_trades` makes them.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from crypto_platform.core import archive
from crypto_platform.core.trade_batches import DECIMAL_TYPE, LAKE_SCHEMA, TIME_TYPE
from crypto_platform.core.trades import MAX_DECIMAL_DIGITS, MIN_TRADE_TIME_MS

_COLUMNS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
_TYPES = {
    "id": pa.int64(),
    "price": pa.string(),
    "qty": pa.string(),
    "quote_qty": pa.string(),
    "time": pa.int64(),
    "is_buyer_maker": pa.bool_(),
    "is_best_match": pa.bool_(),
}
_READ = pa_csv.ReadOptions(column_names=list(_COLUMNS), block_size=16 << 20)
_PARSE = pa_csv.ParseOptions(ignore_empty_lines=False)
_CONVERT = pa_csv.ConvertOptions(
    column_types=_TYPES,
    true_values=["True", "true"],
    false_values=["False", "false"],
    strings_can_be_null=False,
)
_MICROS_THRESHOLD = 10**15
# What a damaged zip member raises while it is read: a bad CRC, a cut stream, or (zlib) a
# deflate stream that is not one
_DAMAGED = (zipfile.BadZipFile, EOFError, zlib.error)

Progress = Callable[[int], None]
"""Called with the number of bytes just read (uncompressed), for a progress bar."""


@dataclass(frozen=True)
class Member:
    """One CSV inside ``path`` (the file itself, or a zip member)."""

    path: Path
    name: str | None
    size: int

    @property
    def label(self) -> str:
        return f"{self.path}!{self.name}" if self.name else str(self.path)


def members(path: Path) -> list[Member]:
    """The CSVs of a dump, with their uncompressed sizes; a damaged zip is an ArchiveError."""
    if not path.is_file():
        raise archive.ArchiveError(f"{path}: no such file")
    if path.suffix.lower() != ".zip":
        return [Member(path, None, path.stat().st_size)]
    verify_checksum(path)
    try:
        with zipfile.ZipFile(path) as zipped:
            found = [
                Member(path, info.filename, info.file_size)
                for info in zipped.infolist()
                if info.filename.lower().endswith(".csv")
            ]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise archive.ArchiveError(f"{path}: not a readable zip ({exc})") from None
    if not found:
        raise archive.ArchiveError(f"{path}: the zip holds no .csv file")
    return found


def verify_checksum(path: Path) -> None:
    """Binance publishes ``<file>.CHECKSUM`` (sha256, hex) beside each zip; check it if present."""
    checksum = path.with_name(path.name + ".CHECKSUM")
    if not checksum.is_file():
        return
    expected = checksum.read_text().split()[0].lower()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise archive.ArchiveError(
            f"{path}: sha256 {digest.hexdigest()} differs from {checksum.name} ({expected}); "
            "the download is damaged"
        )


class _Counting(io.RawIOBase):
    def __init__(self, raw: io.BufferedIOBase, progress: Progress | None) -> None:
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer)
        if self._progress and count:
            self._progress(count)
        return count


@contextmanager
def _open(member: Member, progress: Progress | None) -> Iterator[io.RawIOBase]:
    try:
        if member.name is None:
            with open(member.path, "rb") as raw:
                yield _Counting(raw, progress)
        else:
            with zipfile.ZipFile(member.path) as zipped, zipped.open(member.name) as raw:
                yield _Counting(raw, progress)
    except _DAMAGED as exc:
        raise archive.ArchiveError(f"{member.label}: damaged ({exc})") from None


def read_member(member: Member, symbol: str, progress: Progress | None = None) -> pa.Table:
    """Every trade of one CSV as a :data:`LAKE_SCHEMA` table, or an ArchiveError."""
    try:
        with _open(member, progress) as stream:
            raw = pa_csv.read_csv(stream, _READ, _PARSE, _CONVERT)
        return _to_lake(raw, symbol)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        if isinstance(exc, archive.ArchiveError):
            raise
        raise _first_bad_row(member, symbol, str(exc)) from None


def read_dump(path: Path, symbol: str | None = None, progress: Progress | None = None) -> pa.Table:
    """All trades of a dump (every CSV of a zip), validated; raises ArchiveError."""
    symbol = (symbol or archive.symbol_from_name(path)).upper()
    if not (symbol.isalnum() and symbol.isupper()):
        raise archive.ArchiveError(f"{path}: {symbol!r} is not a symbol; pass --symbol")
    tables = [read_member(m, symbol, progress) for m in members(path)]
    return pa.concat_tables(tables) if tables else LAKE_SCHEMA.empty_table()


def _to_lake(raw: pa.Table, symbol: str) -> pa.Table:
    _require(not any(raw[c].null_count for c in raw.column_names), "an empty field")
    _require(pc.all(pc.greater_equal(raw["id"], 0)).as_py() is not False, "a negative id")
    for column in ("price", "qty"):
        too_long = pc.any(pc.greater(pc.utf8_length(raw[column]), MAX_DECIMAL_DIGITS)).as_py()
        _require(not too_long, f"a {column} that is too long")
    price = pc.cast(raw["price"], DECIMAL_TYPE)
    qty = pc.cast(raw["qty"], DECIMAL_TYPE)
    for name, values in (("price", price), ("qty", qty)):
        zero = pa.scalar(0, DECIMAL_TYPE)
        _require(pc.all(pc.greater(values, zero)).as_py() is not False, f"a {name} <= 0")
    time = raw["time"]
    millis = pc.if_else(pc.greater_equal(time, _MICROS_THRESHOLD), pc.divide(time, 1000), time)
    _require(pc.all(pc.greater_equal(millis, MIN_TRADE_TIME_MS)).as_py() is not False, "a time")
    stamps = millis.cast(TIME_TYPE)
    columns = {
        "symbol": pa.array([symbol] * raw.num_rows, pa.string()),
        "trade_id": raw["id"],
        "price": price,
        "qty": qty,
        "trade_time": stamps,
        "event_time": stamps,
        "buyer_is_maker": raw["is_buyer_maker"],
    }
    return pa.table(columns, schema=LAKE_SCHEMA)


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"the column checks found {what}")


def _first_bad_row(member: Member, symbol: str, detail: str) -> archive.ArchiveError:
    """Run the row-by-row reader over the dump to name the row Arrow's checks refused."""
    try:
        for _trade in archive.read_trades(member.path, symbol):
            pass
    except archive.ArchiveError as exc:
        return exc
    except _DAMAGED as exc:
        return archive.ArchiveError(f"{member.label}: damaged ({exc})")
    return archive.ArchiveError(f"{member.label}: {detail[:300]}")
