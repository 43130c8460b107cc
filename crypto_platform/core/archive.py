"""Binance's public trade dumps (data.binance.vision): CSV, or the zip they ship in.

Spot trades CSV, no header: ``id,price,qty,quote_qty,time,is_buyer_maker,is_best_match``.
``time`` is epoch **milliseconds** in files up to 2024-12-31 and epoch **microseconds** from
2025-01-01 on; :func:`to_millis` tells them apart by magnitude. ``is_buyer_maker=True`` means the
taker sold. The file name carries the symbol (``BTCUSDT-trades-2024-12-31.csv``).

1m klines CSV, no header: ``open_time,open,high,low,close,volume,close_time,quote_volume,
trades,taker_buy_base_volume,taker_buy_quote_volume,ignore`` (times in ms, or µs from 2025).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from crypto_platform.core.trades import Trade, TradeValidationError, parse_trade_event

# Epoch microseconds pass 1e15 in 2001; epoch milliseconds will not reach it for 30,000 years.
_MICROS_THRESHOLD = 10**15


class ArchiveError(ValueError):
    """A dump is corrupt or truncated: the message names the file and the row."""


@dataclass(frozen=True)
class Kline:
    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal


def to_millis(value: int) -> int:
    """Binance archive time (ms up to 2024, µs from 2025) to epoch milliseconds (floor)."""
    return value // 1000 if value >= _MICROS_THRESHOLD else value


def symbol_from_name(path: Path) -> str:
    """``BTCUSDT-trades-2024-12-31.csv`` -> ``BTCUSDT``."""
    return path.name.split("-", 1)[0].upper()


def _open_lines(path: Path) -> Iterator[tuple[str, io.TextIOBase]]:
    """Yield (member name, text stream) for a CSV or for each CSV member of a zip."""
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.lower().endswith(".csv"):
                    with archive.open(member) as raw:
                        yield f"{path}!{member}", io.TextIOWrapper(raw, encoding="ascii")
    else:
        with open(path, encoding="ascii", newline="") as handle:
            yield str(path), handle


def _bool(text: str) -> bool:
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def read_trades(path: Path, symbol: str | None = None) -> Iterator[Trade]:
    """Every trade of a Binance spot trades dump, validated; raises :class:`ArchiveError`."""
    symbol = (symbol or symbol_from_name(path)).upper()
    for name, stream in _open_lines(path):
        for row_number, row in enumerate(csv.reader(stream), start=1):
            try:
                if len(row) != 7:
                    raise ValueError(f"expected 7 fields, got {len(row)}")
                time_ms = to_millis(int(row[4]))
                event = {
                    "e": "trade",
                    "E": time_ms,
                    "s": symbol,
                    "t": int(row[0]),
                    "p": row[1],
                    "q": row[2],
                    "T": time_ms,
                    "m": _bool(row[5]),
                    "M": _bool(row[6]),
                }
                yield parse_trade_event(event, now_ms=time_ms)
            except (ValueError, TradeValidationError, UnicodeDecodeError) as exc:
                raise ArchiveError(f"{name} row {row_number}: {exc}") from None


def read_klines(path: Path) -> list[Kline]:
    """Official 1m klines of a dump (CSV or zip), open times in ms."""
    klines = []
    for _name, stream in _open_lines(path):
        for row in csv.reader(stream):
            klines.append(
                Kline(
                    open_time_ms=to_millis(int(row[0])),
                    open=Decimal(row[1]),
                    high=Decimal(row[2]),
                    low=Decimal(row[3]),
                    close=Decimal(row[4]),
                    volume=Decimal(row[5]),
                    quote_volume=Decimal(row[7]),
                    trade_count=int(row[8]),
                    taker_buy_volume=Decimal(row[9]),
                    taker_buy_quote_volume=Decimal(row[10]),
                )
            )
    return klines
