"""The ``alerts`` table in the analytics database, and the minutes the rules read.

The table's primary key is the firing's key, ``(rule, symbol, window_start)``, and firings are
inserted with ``ON CONFLICT DO NOTHING``: re-evaluating minutes (a backfill, a retried run)
leaves an alert that already fired as it was, and only truly new firings come back to be logged
and sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from crypto_platform import warehouse
from crypto_platform.core.alerts import (
    ALERTS_TABLE,
    MINUTE_COLUMNS,
    Firing,
    Minute,
    alerts_table_ddl,
)
from crypto_platform.core.analytics import ANALYTICS_TABLE
from crypto_platform.query.database import has_table

_FIRING_COLUMNS = (
    "rule", "kind", "symbol", "window_start", "window_end", "value", "threshold", "message"
)  # fmt: skip


@contextmanager
def writing(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection (bounded wait for the lock), held only for the block."""
    with warehouse.connection(path) as con:
        con.execute("SET TimeZone = 'UTC'")
        yield con


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(alerts_table_ddl())


def load_minutes(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, lookback: timedelta
) -> tuple[list[Minute], datetime | None]:
    """Rows from ``start - lookback`` to ``end``, plus each symbol's row just before and just
    after (so silences and crossings at the edges are judged right), and where data ends."""
    if not has_table(con, ANALYTICS_TABLE):
        return [], None
    columns = ", ".join(MINUTE_COLUMNS)
    rows = con.execute(
        f"""SELECT {columns} FROM {ANALYTICS_TABLE}
        WHERE window_start >= $from AND window_start < $end
        UNION ALL
        (SELECT {columns} FROM {ANALYTICS_TABLE} WHERE window_start < $from
         QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY window_start DESC) = 1)
        UNION ALL
        (SELECT {columns} FROM {ANALYTICS_TABLE} WHERE window_start >= $end
         QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY window_start) = 1)
        ORDER BY symbol, window_start""",
        {"from": start - lookback, "end": end},
    ).fetchall()
    data_until = con.execute(f"SELECT max(window_end) FROM {ANALYTICS_TABLE}").fetchone()[0]
    return [Minute(*row) for row in rows], data_until


def record(
    con: duckdb.DuckDBPyConnection,
    firings: Sequence[Firing],
    fired_at: datetime,
    delivery: dict[tuple, str],
) -> list[Firing]:
    """Insert the firings not stored yet, in one transaction; return those that were new."""
    if not firings:
        return []
    rows = [(*(getattr(f, c) for c in _FIRING_COLUMNS), fired_at, delivery[f.key]) for f in firings]
    columns = ", ".join((*_FIRING_COLUMNS, "fired_at", "delivery"))
    placeholders = ", ".join("?" * (len(_FIRING_COLUMNS) + 2))
    con.execute("BEGIN")
    new_keys = set()
    for row in rows:
        inserted = con.execute(
            f"INSERT INTO {ALERTS_TABLE} ({columns}) VALUES ({placeholders}) "
            "ON CONFLICT DO NOTHING RETURNING rule, symbol, window_start",
            row,
        ).fetchall()
        new_keys.update(inserted)
    con.execute("COMMIT")
    return [f for f in firings if f.key in new_keys]


@dataclass(frozen=True)
class PendingAlert:
    firing: Firing
    attempts: int


def pending(con: duckdb.DuckDBPyConnection) -> list[PendingAlert]:
    """Alerts still waiting for the webhook (new ones, and those a run ran out of time for)."""
    rows = con.execute(
        f"""SELECT {", ".join(_FIRING_COLUMNS)}, attempts FROM {ALERTS_TABLE}
        WHERE delivery = 'pending' ORDER BY window_start, symbol, rule"""
    ).fetchall()
    return [PendingAlert(Firing(*row[:-1]), row[-1]) for row in rows]


@dataclass(frozen=True)
class Delivery:
    key: tuple
    state: str  # sent | failed | pending (out of time: tried again next run)
    attempts: int
    error: str | None
    at: datetime


def mark_deliveries(con: duckdb.DuckDBPyConnection, deliveries: Sequence[Delivery]) -> None:
    con.execute("BEGIN")
    for d in deliveries:
        con.execute(
            f"""UPDATE {ALERTS_TABLE}
            SET delivery = $state, attempts = attempts + $attempts, last_error = $error,
                delivered_at = CASE WHEN $state = 'sent' THEN $at ELSE delivered_at END
            WHERE rule = $rule AND symbol = $symbol AND window_start = $window_start""",
            {
                "state": d.state,
                "attempts": d.attempts,
                "error": d.error,
                "at": d.at,
                "rule": d.key[0],
                "symbol": d.key[1],
                "window_start": d.key[2],
            },
        )
    con.execute("COMMIT")
