"""Asset checks over the run's partition window: one op per asset reads each hour once for all.

Checks on ``raw_trades`` that bad data must not pass (duplicates, non-positive values, trades
filed under the wrong minute) are blocking: when one fails, ``trade_analytics_1m`` is not built
from that data in the same run. A gap in trade ids is reported (with the missing ranges) but
does not block: the analytics flag such minutes with ``is_complete = false``. Offending ids,
ranges and minutes go into the check's metadata (at most :data:`MAX_EXAMPLES` of each).
"""

import time
from collections.abc import Iterator

import dagster as dg
import duckdb
import pyarrow as pa

from crypto_platform import warehouse
from crypto_platform.core.analytics import ANALYTICS_TABLE
from crypto_platform.core.lake import misplaced_trades, read_trades_by_symbol
from crypto_platform.core.windows import HOUR_MS, minute_label
from crypto_platform.defs.partitions import PlatformPartitions, window_ms
from crypto_platform.defs.resources import ParquetLakeResource, WarehouseResource

MAX_EXAMPLES = 20
# avg_price and vwap are quotients of exact sums; as doubles they may sit a few ulps outside
# [low, high] when every price is equal.
BOUNDS_REL_TOLERANCE = 1e-12
FRESHNESS_SLACK_S = 60.0


def _hours(context: dg.AssetCheckExecutionContext) -> Iterator[tuple[int, int]]:
    start, end = window_ms(context)
    for hour in range(start, end, HOUR_MS):
        yield hour, min(hour + HOUR_MS, end)


def _queries(queries: dict[str, str], **tables: pa.Table) -> dict[str, list[tuple]]:
    """Several queries over the same registered tables, on one in-memory DuckDB."""
    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        for name, table in tables.items():
            conn.register(name, table)
        return {key: conn.sql(sql).fetchall() for key, sql in queries.items()}
    finally:
        conn.close()


def _query(sql: str, **tables: pa.Table) -> list[tuple]:
    return _queries({"query": sql}, **tables)["query"]


def _result(check: str, problems: list, what: str, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check,
        passed=not problems,
        metadata={what: len(problems), "examples": [str(p) for p in problems[:MAX_EXAMPLES]]}
        | metadata,
    )


def _specs(asset, partitions, checks: tuple[tuple[str, bool, str], ...]) -> list:
    return [
        dg.AssetCheckSpec(
            name, asset=asset, description=doc, blocking=blocking, partitions_def=partitions
        )
        for name, blocking, doc in checks
    ]


# (name, blocking, description) of each check
_RAW_CHECKS = (
    ("no_duplicate_trade_ids", True, "Each (symbol, trade id) appears once in the partition."),
    ("prices_and_quantities_positive", True, "Every price and quantity is > 0."),
    (
        "trades_inside_their_window",
        True,
        "Every trade sits in the file of its own symbol and minute (trade time).",
    ),
    (
        "trade_ids_contiguous",
        False,
        "Per symbol, trade ids run without gaps (Binance numbers a symbol's trades 1, 2, ...).",
    ),
)
_ANALYTICS_CHECKS = (
    (
        "one_row_per_symbol_minute",
        False,
        "The partition has one analytics row for each (symbol, minute) with raw trades.",
    ),
    (
        "trade_count_matches_raw",
        False,
        "Each row's trade_count equals the raw trades of its symbol and minute.",
    ),
    ("prices_within_high_low", False, "low <= open, close, avg_price, vwap <= high in every row."),
    (
        "latest_minute_is_fresh",
        False,
        "The newest minute in the table ended at most grace + 60 s ago (a warning otherwise).",
    ),
)


# The raw checks' SQL over one hour's trades (``t``): each reads the same table, so the lake is
# read once per hour for all of them.
_RAW_SQL = {
    "no_duplicate_trade_ids": (
        "SELECT symbol, trade_id, count(*) FROM t GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL"
    ),
    "prices_and_quantities_positive": (
        "SELECT symbol, trade_id, price, qty FROM t WHERE price <= 0 OR qty <= 0 ORDER BY ALL"
    ),
    "trade_ids_contiguous": (
        "SELECT symbol, previous + 1, trade_id - 1 FROM ("
        "  SELECT symbol, trade_id,"
        "    lag(trade_id) OVER (PARTITION BY symbol ORDER BY trade_id) AS previous FROM t"
        ") WHERE trade_id - previous > 1 ORDER BY ALL"
    ),
}
_RAW_COLUMNS = ["symbol", "trade_id", "price", "qty"]


def build_raw_checks(
    partitions: PlatformPartitions, raw_trades: dg.AssetsDefinition
) -> list[dg.AssetChecksDefinition]:
    """The checks on ``raw_trades``: one op that reads each hour of the lake once for all four.

    - ``no_duplicate_trade_ids`` (blocking): each (symbol, trade id) appears once;
    - ``prices_and_quantities_positive`` (blocking): every price and quantity is > 0;
    - ``trades_inside_their_window`` (blocking): every trade sits in the file of its own symbol
      and minute (trade time);
    - ``trade_ids_contiguous`` (warning): per symbol, ids run without gaps (Binance numbers a
      symbol's trades 1, 2, ...); the missing ranges are listed.
    """
    hourly = partitions.hourly
    specs = _specs(raw_trades, hourly, _RAW_CHECKS)

    @dg.multi_asset_check(specs=specs, name="raw_trades_checks")
    def raw_trades_checks(context, lake: ParquetLakeResource) -> Iterator[dg.AssetCheckResult]:
        found: dict[str, list[tuple]] = {name: [] for name in _RAW_SQL}
        for start, end in _hours(context):  # every check is per symbol: read one at a time
            for trades in read_trades_by_symbol(lake.path, start, end, _RAW_COLUMNS, sort=False):
                for name, rows in _queries(_RAW_SQL, t=trades).items():
                    found[name] += rows
        yield _result(
            "no_duplicate_trade_ids",
            [f"{s} {i} x{n}" for s, i, n in found["no_duplicate_trade_ids"]],
            "duplicated_ids",
        )
        yield _result(
            "prices_and_quantities_positive",
            [
                f"{s} {i} price={p} qty={q}"
                for s, i, p, q in found["prices_and_quantities_positive"]
            ],
            "bad_trades",
        )
        start, end = window_ms(context)
        misplaced = misplaced_trades(lake.path, start, end)
        yield _result(
            "trades_inside_their_window",
            [f"{m.path.relative_to(lake.path)}: ids {m.trade_ids[:10]}" for m in misplaced],
            "files_with_misplaced_trades",
        )
        gaps = found["trade_ids_contiguous"]
        yield dg.AssetCheckResult(
            check_name="trade_ids_contiguous",
            passed=not gaps,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "gaps": len(gaps),
                "missing_trades": sum(last - first + 1 for _s, first, last in gaps),
                "missing_ranges": [f"{s} {a}-{b}" for s, a, b in gaps[:MAX_EXAMPLES]],
            },
        )

    return [raw_trades_checks]


_RAW_COUNTS = (
    "SELECT symbol, epoch_ms(date_trunc('minute', trade_time)) AS minute, count(*) AS trades "
    "FROM t GROUP BY ALL"
)
_COUNTED = ["symbol", "trade_time"]
_BOUNDED = ("open", "close", "avg_price", "vwap")
_ANALYTICS_SQL = {
    "one_row_per_symbol_minute": (
        "SELECT coalesce(raw.symbol, a.symbol), coalesce(raw.minute, epoch_ms(a.window_start)),"
        " CASE WHEN raw.symbol IS NULL THEN 'extra row' ELSE 'missing row' END"
        " FROM raw FULL JOIN a"
        " ON raw.symbol = a.symbol AND raw.minute = epoch_ms(a.window_start)"
        " WHERE raw.symbol IS NULL OR a.symbol IS NULL ORDER BY ALL"
    ),
    "trade_count_matches_raw": (
        "SELECT raw.symbol, raw.minute, raw.trades, a.trade_count FROM raw JOIN a"
        " ON raw.symbol = a.symbol AND raw.minute = epoch_ms(a.window_start)"
        " WHERE raw.trades <> a.trade_count ORDER BY ALL"
    ),
    "prices_within_high_low": (
        "SELECT symbol, epoch_ms(window_start) FROM a WHERE "
        + " OR ".join(
            f"{c} < low * (1 - {BOUNDS_REL_TOLERANCE}) OR {c} > high * (1 + {BOUNDS_REL_TOLERANCE})"
            for c in _BOUNDED
        )
        + " ORDER BY ALL"
    ),
}


def _analytics_problems(
    context, lake: ParquetLakeResource, duckdb_resource: WarehouseResource
) -> dict[str, list[tuple]]:
    """Each hour: the raw counts per (symbol, minute) (``raw``) and the analytics rows (``a``),
    read once, with every query of :data:`_ANALYTICS_SQL` over them."""
    found: dict[str, list[tuple]] = {name: [] for name in _ANALYTICS_SQL}
    for start, end in _hours(context):
        counts = [
            count
            for trades in read_trades_by_symbol(lake.path, start, end, _COUNTED, sort=False)
            for count in _query(_RAW_COUNTS, t=trades)
        ]
        raw = pa.table(
            {
                "symbol": pa.array([c[0] for c in counts], pa.string()),
                "minute": pa.array([c[1] for c in counts], pa.int64()),
                "trades": pa.array([c[2] for c in counts], pa.int64()),
            }
        )
        with duckdb_resource.read_connection() as conn:
            rows = warehouse.read_minutes(conn, start, end)
        for name, problems in _queries(_ANALYTICS_SQL, raw=raw, a=rows).items():
            found[name] += problems
    return found


def build_analytics_checks(
    partitions: PlatformPartitions, analytics: dg.AssetsDefinition, grace_seconds: float
) -> list[dg.AssetChecksDefinition]:
    """The checks on ``trade_analytics_1m`` (warnings), in one op that reads each hour once:

    - ``one_row_per_symbol_minute``: one row for each (symbol, minute) with raw trades;
    - ``trade_count_matches_raw``: each row's ``trade_count`` equals its raw trades;
    - ``prices_within_high_low``: ``low <= open, close, avg_price, vwap <= high`` in every row;
    - ``latest_minute_is_fresh``: the newest minute ended at most grace + 60 s ago.
    """
    hourly = partitions.hourly
    specs = _specs(analytics, hourly, _ANALYTICS_CHECKS)

    @dg.multi_asset_check(specs=specs, name="trade_analytics_1m_checks")
    def trade_analytics_1m_checks(
        context, lake: ParquetLakeResource, duckdb: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        found = _analytics_problems(context, lake, duckdb)
        yield _result(
            "one_row_per_symbol_minute",
            [f"{s} {minute_label(m)}: {why}" for s, m, why in found["one_row_per_symbol_minute"]],
            "mismatches",
        )
        yield _result(
            "trade_count_matches_raw",
            [
                f"{s} {minute_label(m)}: raw {r}, trade_count {c}"
                for s, m, r, c in found["trade_count_matches_raw"]
            ],
            "mismatches",
        )
        yield _result(
            "prices_within_high_low",
            [f"{s} {minute_label(m)}" for s, m in found["prices_within_high_low"]],
            "rows_out_of_bounds",
        )
        yield _freshness(duckdb, grace_seconds)

    return [trade_analytics_1m_checks]


def _freshness(duckdb: WarehouseResource, grace_seconds: float) -> dg.AssetCheckResult:
    with duckdb.read_connection() as conn:
        query = f"SELECT epoch_ms(max(window_end)) FROM {ANALYTICS_TABLE}"
        latest = conn.execute(query).fetchone()[0]
    limit = grace_seconds + FRESHNESS_SLACK_S
    lag = None if latest is None else time.time() - latest / 1000
    return dg.AssetCheckResult(
        check_name="latest_minute_is_fresh",
        passed=lag is not None and lag <= limit,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "latest_window_end": minute_label(latest) if latest is not None else "none",
            "lag_seconds": round(lag, 1) if lag is not None else -1.0,
            "limit_seconds": limit,
        },
    )
