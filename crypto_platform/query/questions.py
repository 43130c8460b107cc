"""The seed's three questions, per symbol, plus free SQL: each returns an :class:`Answer`.

- ``recent``: the latest N minutes of each symbol (the seed's ``ORDER BY window_start DESC
  LIMIT 10``, per symbol);
- ``trends``: every minute since a time (the seed's ``window_start >= NOW() - INTERVAL 1 hour``);
- ``volatile``: the minutes whose volatility is above a threshold (the seed's ``volatility > 50``).

User values only ever reach DuckDB as bound parameters; symbols are checked against the table
first so a typo gets a clear "unknown symbol" rather than an empty answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from crypto_platform.core.analytics import ANALYTICS_TABLE
from crypto_platform.query.database import QueryError, has_table

WINDOW_COLUMNS = (
    "symbol",
    "window_start",
    "window_end",
    "avg_price",
    "price_change_pct",
    "volatility",
    "trade_count",
    "volume",
)
_SELECT = ", ".join(WINDOW_COLUMNS)
_DURATION_RE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = ("weeks", "days", "hours", "minutes", "seconds")


@dataclass(frozen=True)
class Answer:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def _analytics_ready(con: duckdb.DuckDBPyConnection) -> None:
    if not has_table(con, ANALYTICS_TABLE):
        raise QueryError(
            f"the database has no {ANALYTICS_TABLE} table yet: the pipeline creates it with "
            "the first closed minute (make run), or backfill a range in Dagster"
        )


def known_symbols(con: duckdb.DuckDBPyConnection) -> list[str]:
    _analytics_ready(con)
    rows = con.execute(f"SELECT DISTINCT symbol FROM {ANALYTICS_TABLE} ORDER BY 1").fetchall()
    return [row[0] for row in rows]


def resolve_symbols(con: duckdb.DuckDBPyConnection, wanted: tuple[str, ...]) -> list[str]:
    """Upper-cased ``wanted`` (all symbols when empty); unknown ones raise :class:`QueryError`."""
    known = known_symbols(con)
    if not wanted:
        return known
    symbols = [s.strip().upper() for s in wanted]
    unknown = [s for s in symbols if s not in known]
    if unknown:
        have = ", ".join(known) if known else "no symbols yet"
        raise QueryError(f"unknown symbol {', '.join(unknown)}: the database has {have}")
    return symbols


def _answer(relation: duckdb.DuckDBPyConnection) -> Answer:
    if relation.description is None:
        return Answer((), [])
    return Answer(tuple(d[0] for d in relation.description), relation.fetchall())


def recent(con: duckdb.DuckDBPyConnection, symbols: tuple[str, ...], last: int) -> Answer:
    if last < 1:
        raise QueryError(f"--last must be at least 1, got {last}")
    chosen = resolve_symbols(con, symbols)
    return _answer(
        con.execute(
            f"""SELECT {_SELECT} FROM {ANALYTICS_TABLE}
            WHERE list_contains($symbols, symbol)
            QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY window_start DESC) <= $last
            ORDER BY symbol, window_start DESC""",
            {"symbols": chosen, "last": last},
        )
    )


def trends(con: duckdb.DuckDBPyConnection, symbols: tuple[str, ...], since: datetime) -> Answer:
    chosen = resolve_symbols(con, symbols)
    return _answer(
        con.execute(
            f"""SELECT {_SELECT} FROM {ANALYTICS_TABLE}
            WHERE list_contains($symbols, symbol) AND window_start >= $since
            ORDER BY symbol, window_start""",
            {"symbols": chosen, "since": since},
        )
    )


def volatile(
    con: duckdb.DuckDBPyConnection,
    symbols: tuple[str, ...],
    above: float,
    since: datetime | None = None,
) -> Answer:
    chosen = resolve_symbols(con, symbols)
    return _answer(
        con.execute(
            f"""SELECT {_SELECT} FROM {ANALYTICS_TABLE}
            WHERE list_contains($symbols, symbol) AND volatility > $above
              AND ($since IS NULL OR window_start >= $since)
            ORDER BY window_start DESC, symbol""",
            {"symbols": chosen, "above": above, "since": since},
        )
    )


def run_sql(con: duckdb.DuckDBPyConnection, sql: str) -> Answer:
    """Any SQL on the read-only connection; DuckDB's message becomes a :class:`QueryError`."""
    if not sql.strip():
        raise QueryError("--sql needs a statement, e.g. --sql 'SELECT * FROM trade_analytics_1m'")
    try:
        return _answer(con.execute(sql))
    except duckdb.Error as exc:
        raise QueryError(f"the SQL failed: {exc}") from None


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``1h``, ``30m``, ``2d``, ``1h30m`` (before ``now``) or a time such as ``2024-12-31T00:00``
    (UTC unless it names an offset)."""
    value = text.strip()
    match = _DURATION_RE.match(value)
    if value and match and any(match.groups()):
        amounts = {unit: int(n) for unit, n in zip(_UNITS, match.groups(), strict=True) if n}
        return (now or datetime.now(UTC)) - timedelta(**amounts)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            f"--since {text!r} is neither a duration (1h, 30m, 2d, 1h30m) nor a time "
            "(2024-12-31T00:00, UTC unless an offset is given)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- trends and roll-ups (issue 9) ----------------------------------------------------------
TREND_COLUMNS = (
    "symbol", "window_start", "close", "sma_5", "sma_15", "sma_60", "ema_12", "ema_26", "macd",
    "log_return", "volatility_60m_annualised", "vwap_60m", "volume_60m", "trend",
)  # fmt: skip
ROLLUP_TABLES = {"1h": "trade_analytics_1h", "1d": "trade_analytics_1d"}


def _table_ready(con: duckdb.DuckDBPyConnection, table: str) -> None:
    if not has_table(con, table):
        raise QueryError(
            f"the database has no {table} table yet: the trends sensor builds it as minutes "
            "close (make run), or run import-archive / a backfill of it in Dagster"
        )


def indicators(con: duckdb.DuckDBPyConnection, symbols: tuple[str, ...], since: datetime) -> Answer:
    """trade_trends_1m since a time: moving averages, MACD, volatility, VWAP, trend label."""
    from crypto_platform.core.trends import TRENDS_TABLE

    chosen = resolve_symbols(con, symbols)
    _table_ready(con, TRENDS_TABLE)
    return _answer(
        con.execute(
            f"""SELECT {", ".join(TREND_COLUMNS)} FROM {TRENDS_TABLE}
            WHERE list_contains($symbols, symbol) AND window_start >= $since
            ORDER BY symbol, window_start""",
            {"symbols": chosen, "since": since},
        )
    )


def rollups(
    con: duckdb.DuckDBPyConnection, interval: str, symbols: tuple[str, ...], since: datetime
) -> Answer:
    """Hourly (``1h``) or daily (``1d``) rows since a time, same columns as the minutes."""
    if interval not in ROLLUP_TABLES:
        raise QueryError(f"--interval must be one of {', '.join(ROLLUP_TABLES)}, got {interval}")
    table = ROLLUP_TABLES[interval]
    chosen = resolve_symbols(con, symbols)
    _table_ready(con, table)
    columns = (*WINDOW_COLUMNS[:3], "open", "high", "low", "close", "vwap", *WINDOW_COLUMNS[3:])
    return _answer(
        con.execute(
            f"""SELECT {", ".join(columns)} FROM {table}
            WHERE list_contains($symbols, symbol) AND window_start >= $since
            ORDER BY symbol, window_start""",
            {"symbols": chosen, "since": since},
        )
    )
