"""The ingestion service's numbers: per-symbol counters and the periodic status line.

One line per symbol every stats interval (trades/s delivered, last trade time, lag from trade
time to produce, gaps filled and lost, dead letters), and the same as one JSON object with
``--stats-json``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class SymbolStats:
    stream_trades: int = 0  # produced from the WebSocket
    rest_trades: int = 0  # produced from REST gap fills
    duplicates: int = 0  # skipped: already produced by this process
    delivered: int = 0  # acknowledged by Kafka
    dead_letters: int = 0
    gaps_filled: int = 0
    ids_lost: int = 0  # ids the exchange could not give us (reported, never silent)
    late_notices: int = 0
    last_trade_ms: int | None = None
    complete_through_ms: int | None = None
    lag_ms_max: int = 0  # local produce time - trade time, over the interval
    lag_ms_sum: int = 0
    lag_count: int = 0
    _delivered_before: int = field(default=0, repr=False)

    def produced(self, trade_time_ms: int, now_ms: int, from_rest: bool) -> None:
        if from_rest:
            self.rest_trades += 1
        else:
            self.stream_trades += 1
            lag = now_ms - trade_time_ms
            self.lag_ms_sum += lag
            self.lag_count += 1
            if lag > self.lag_ms_max:
                self.lag_ms_max = lag
        if self.last_trade_ms is None or trade_time_ms > self.last_trade_ms:
            self.last_trade_ms = trade_time_ms

    def snapshot(self, interval_s: float) -> dict[str, Any]:
        """Numbers for one interval (rates, lag) and totals; resets the interval's figures."""
        values = {k: v for k, v in asdict(self).items() if not k.startswith(("_", "lag_"))}
        values["trades_per_s"] = round((self.delivered - self._delivered_before) / interval_s, 2)
        values["lag_ms_avg"] = round(self.lag_ms_sum / self.lag_count) if self.lag_count else None
        values["lag_ms_max"] = self.lag_ms_max if self.lag_count else None
        self._delivered_before = self.delivered
        self.lag_ms_max = self.lag_ms_sum = self.lag_count = 0
        return values


@dataclass
class IngestStats:
    symbols: dict[str, SymbolStats]
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason
    connects: int = 0
    disconnects: int = 0

    @classmethod
    def for_symbols(cls, symbols: list[str]) -> IngestStats:
        return cls({s: SymbolStats() for s in symbols})

    def snapshot(self, interval_s: float, **extra: Any) -> dict[str, Any]:
        return {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "symbols": {s: stats.snapshot(interval_s) for s, stats in self.symbols.items()},
            "dead_letters": dict(self.dead_letters),
            "connects": self.connects,
            "disconnects": self.disconnects,
            **extra,
        }


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]


def status_lines(snapshot: dict[str, Any]) -> list[str]:
    """Human-readable status, one line per symbol."""
    lines = []
    for symbol, s in snapshot["symbols"].items():
        lag = "-" if s["lag_ms_avg"] is None else f"{s['lag_ms_avg']}/{s['lag_ms_max']} ms"
        lines.append(
            f"{symbol}: {s['trades_per_s']:.1f} trades/s, last trade {_time(s['last_trade_ms'])}, "
            f"lag avg/max {lag}, complete through {_time(s['complete_through_ms'])}, "
            f"gaps filled {s['gaps_filled']} ({s['rest_trades']} trades), lost ids "
            f"{s['ids_lost']}, dlq {s['dead_letters']}, duplicates {s['duplicates']}"
        )
    lines.append(
        f"all: dead letters {snapshot['dead_letters'] or 0}, connects {snapshot['connects']}, "
        f"disconnects {snapshot['disconnects']}, queued {snapshot.get('queue_depth', 0)}, "
        f"in Kafka's buffer {snapshot.get('kafka_buffered', 0)}"
    )
    return lines
