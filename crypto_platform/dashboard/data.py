"""What the dashboard shows, read from DuckDB with fixed SQL and bound parameters.

Every request opens a read-only connection for the few milliseconds it needs and closes it, so
the pipeline can take the write lock between requests. Results are cached for about a second,
so many open pages cost the database one read per question per second, not one per page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crypto_platform.core.alerts import ALERTS_TABLE
from crypto_platform.core.analytics import ANALYTICS_TABLE
from crypto_platform.core.rollups import ROLLUP_TABLES
from crypto_platform.query.database import has_table, reading

# The bar sizes offered, each with the table it reads and the time ranges (in minutes) that make
# sense for it: minutes over hours, hours over days, days over months. Keys are all the user
# chooses; table names never come from the request.
INTERVALS: dict[str, tuple[str, tuple[int, ...]]] = {
    "1m": (ANALYTICS_TABLE, (15, 60, 240, 1440, 10080)),
    "1h": (ROLLUP_TABLES["hour"], (1440, 10080, 43200)),
    "1d": (ROLLUP_TABLES["day"], (43200, 129600, 525600)),
}
DEFAULT_RANGES = {"1m": 60, "1h": 10080, "1d": 129600}  # 1 hour, 7 days, 90 days
CHART_COLUMNS = (
    "window_start",
    "open",
    "high",
    "low",
    "close",
    "avg_price",
    "vwap",
    "price_change_pct",
    "volatility",
    "trade_count",
    "volume",
)
TREND_CHART_COLUMNS = (
    "window_start", "sma_5", "sma_15", "sma_60", "ema_12", "ema_26", "macd",
    "volatility_60m_annualised", "vwap_60m", "trend",
)  # fmt: skip
CACHE_TTL_S = 1.0
DB_WAIT_S = 2.0


class UnknownSymbolError(LookupError):
    """The symbol is well-formed but the database has no minutes for it."""


class TTLCache:
    """Remembers each answer for ``ttl_s`` seconds; thread-safe, bounded by the few keys used."""

    def __init__(self, ttl_s: float = CACHE_TTL_S, max_entries: int = 256) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, Any]] = {}

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit and now - hit[0] < self.ttl_s:
                return hit[1]
        value = compute()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (now, value)
        return value


def _iso(value: datetime | None) -> str | None:
    """UTC time without offset: Plotly draws such strings as they are, i.e. in UTC."""
    return value.strftime("%Y-%m-%dT%H:%M:%S") if value is not None else None


class DashboardData:
    """The dashboard's questions over one database file."""

    def __init__(self, duckdb_path: Path, cache: TTLCache | None = None) -> None:
        self.duckdb_path = duckdb_path
        self.cache = cache or TTLCache()

    def symbols(self) -> list[dict[str, Any]]:
        return self.cache.get(("symbols",), self._symbols)

    def windows(self, symbol: str, range_minutes: int, interval: str = "1m") -> dict[str, Any]:
        return self.cache.get(
            ("windows", symbol, range_minutes, interval),
            lambda: self._windows(symbol, range_minutes, interval),
        )

    def alerts(self, symbol: str | None, limit: int) -> list[dict[str, Any]]:
        return self.cache.get(("alerts", symbol, limit), lambda: self._alerts(symbol, limit))

    def trends(self, symbol: str, range_minutes: int) -> dict[str, Any]:
        """trade_trends_1m over the same span as :meth:`windows` (empty columns until built)."""
        return self.cache.get(
            ("trends", symbol, range_minutes), lambda: self._trends(symbol, range_minutes)
        )

    def _trends(self, symbol: str, range_minutes: int) -> dict[str, Any]:
        from crypto_platform.core.trends import TRENDS_TABLE

        span = self.windows(symbol, range_minutes)
        columns: dict[str, list[Any]] = {name: [] for name in TREND_CHART_COLUMNS}
        with reading(self.duckdb_path, DB_WAIT_S) as con:
            rows = []
            if has_table(con, TRENDS_TABLE):
                rows = con.execute(
                    f"""SELECT {", ".join(TREND_CHART_COLUMNS)} FROM {TRENDS_TABLE}
                    WHERE symbol = ? AND window_start >= ? ORDER BY window_start""",
                    [symbol, datetime.fromisoformat(span["since"] + "+00:00")],
                ).fetchall()
        for row in rows:
            for name, value in zip(TREND_CHART_COLUMNS, row, strict=True):
                columns[name].append(_iso(value) if name == "window_start" else value)
        return {"symbol": symbol, "range_minutes": range_minutes, "columns": columns}

    def _symbols(self) -> list[dict[str, Any]]:
        if not self.duckdb_path.is_file():
            return []
        with reading(self.duckdb_path, DB_WAIT_S) as con:
            if not has_table(con, ANALYTICS_TABLE):
                return []
            rows = con.execute(
                f"""SELECT symbol, max(window_end), count(*) FROM {ANALYTICS_TABLE}
                GROUP BY symbol ORDER BY symbol"""
            ).fetchall()
        return [{"symbol": s, "latest": _iso(end), "windows": n} for s, end, n in rows]

    def _windows(self, symbol: str, range_minutes: int, interval: str) -> dict[str, Any]:
        """The bars of ``interval`` over the ``range_minutes`` up to the symbol's latest minute.

        The range ends at the latest closed minute, not at the latest bar's end, so the chart
        moves on minute by minute; the current hour's or day's bar covers the minutes so far.
        """
        table = INTERVALS[interval][0]
        if symbol not in {row["symbol"] for row in self.symbols()}:
            raise UnknownSymbolError(symbol)
        with reading(self.duckdb_path, DB_WAIT_S) as con:
            until = con.execute(
                f"SELECT max(window_end) FROM {ANALYTICS_TABLE} WHERE symbol = ?", [symbol]
            ).fetchone()[0]
            since = until - timedelta(minutes=range_minutes)
            rows = []
            if has_table(con, table):
                rows = con.execute(
                    f"""SELECT {", ".join(CHART_COLUMNS)} FROM {table}
                    WHERE symbol = ? AND window_end > ? ORDER BY window_start""",
                    [symbol, since],
                ).fetchall()
        columns: dict[str, list[Any]] = {name: [] for name in CHART_COLUMNS}
        for row in rows:
            for name, value in zip(CHART_COLUMNS, row, strict=True):
                columns[name].append(_iso(value) if name == "window_start" else value)
        latest = {name: values[-1] for name, values in columns.items()} if rows else None
        return {
            "symbol": symbol,
            "interval": interval,
            "range_minutes": range_minutes,
            "since": _iso(since),
            "until": _iso(until),
            "columns": columns,
            "latest": latest,
        }

    def _alerts(self, symbol: str | None, limit: int) -> list[dict[str, Any]]:
        if not self.duckdb_path.is_file():
            return []
        with reading(self.duckdb_path, DB_WAIT_S) as con:
            if not has_table(con, ALERTS_TABLE):
                return []
            rows = con.execute(
                f"""SELECT rule, kind, symbol, window_start, window_end, value, threshold,
                       message, fired_at, delivery
                FROM {ALERTS_TABLE} WHERE ($symbol IS NULL OR symbol = $symbol)
                ORDER BY window_start DESC, symbol, rule LIMIT $limit""",
                {"symbol": symbol, "limit": limit},
            ).fetchall()
        names = ("rule", "kind", "symbol", "window_start", "window_end", "value", "threshold")
        names += ("message", "fired_at", "delivery")
        return [
            {k: _iso(v) if isinstance(v, datetime) else v for k, v in zip(names, row, strict=True)}
            for row in rows
        ]
