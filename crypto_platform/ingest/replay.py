"""Recorded trades for the exchange simulator to replay: Binance CSV dumps and JSON lines.

- Binance's public trade dumps (``BTCUSDT-trades-2024-12-31.csv`` or its ``.zip``; times in ms up
  to 2024, µs from 2025) are read by :func:`crypto_platform.core.archive.read_trades`.
- JSON lines: one trade event per line, as the ``<symbol>@trade`` stream sends it, or wrapped in
  the combined-stream envelope ``{"stream": ..., "data": {...}}``; the event is replayed as is.

Every event is validated on load, so a replay never sends what Binance would not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypto_platform.core.archive import read_trades
from crypto_platform.core.trades import (
    Trade,
    TradeValidationError,
    parse_trade_event,
    trade_to_event,
    unwrap_stream_envelope,
)


class ReplayFileError(ValueError):
    """A recording cannot be replayed; the message names the file and the line."""


@dataclass(frozen=True)
class RecordedTrade:
    """A trade and the exact event to send for it."""

    trade: Trade
    event: dict[str, Any]


def _read_json_lines(path: Path) -> list[RecordedTrade]:
    recorded = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = unwrap_stream_envelope(json.loads(line))
                trade = parse_trade_event(event, now_ms=event.get("T"))
            except (ValueError, TradeValidationError, AttributeError) as exc:
                raise ReplayFileError(f"{path} line {number}: {exc}") from None
            recorded.append(RecordedTrade(trade, event))
    return recorded


def read_recording(path: Path) -> list[RecordedTrade]:
    """The trades of one recording (``.csv``/``.zip`` dump, or ``.jsonl``/``.json`` lines)."""
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return _read_json_lines(path)
    if path.suffix.lower() in (".csv", ".zip"):
        return [RecordedTrade(t, trade_to_event(t)) for t in read_trades(path)]
    raise ReplayFileError(f"{path}: unknown recording format (expected .csv, .zip or .jsonl)")


def load_recordings(paths: list[Path]) -> list[RecordedTrade]:
    """All trades of several recordings, in the order an exchange would have sent them."""
    recorded = [r for path in paths for r in read_recording(path)]
    recorded.sort(key=lambda r: (r.trade.trade_time_ms, r.trade.symbol, r.trade.trade_id))
    return recorded
