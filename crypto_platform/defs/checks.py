"""Asset checks, one named function per property, over the run's partition window.

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
from crypto_platform.core.lake import misplaced_trades, read_trades
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


def _query(sql: str, **tables: pa.Table) -> list[tuple]:
    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        for name, table in tables.items():
            conn.register(name, table)
        return conn.sql(sql).fetchall()
    finally:
        conn.close()


def _lake_query(context, lake: ParquetLakeResource, sql: str, columns: list[str]) -> list[tuple]:
    """``sql`` over each hour's trades (as ``t``, only ``columns``, unordered), concatenated."""
    found: list[tuple] = []
    for start, end in _hours(context):
        found += _query(sql, t=read_trades(lake.path, start, end, columns=columns, sort=False))
    return found


def _result(problems: list, what: str, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={what: len(problems), "examples": [str(p) for p in problems[:MAX_EXAMPLES]]}
        | metadata,
    )


def build_raw_checks(
    partitions: PlatformPartitions, raw_trades: dg.AssetsDefinition
) -> list[dg.AssetChecksDefinition]:
    hourly = partitions.hourly

    @dg.asset_check(asset=raw_trades, blocking=True, partitions_def=hourly)
    def no_duplicate_trade_ids(context, lake: ParquetLakeResource) -> dg.AssetCheckResult:
        """Each (symbol, trade id) appears once in the partition."""
        rows = _lake_query(
            context,
            lake,
            "SELECT symbol, trade_id, count(*) FROM t GROUP BY ALL HAVING count(*) > 1"
            " ORDER BY ALL",
            ["symbol", "trade_id"],
        )
        return _result([f"{s} {i} x{n}" for s, i, n in rows], "duplicated_ids")

    @dg.asset_check(asset=raw_trades, blocking=True, partitions_def=hourly)
    def prices_and_quantities_positive(context, lake: ParquetLakeResource) -> dg.AssetCheckResult:
        """Every price and quantity is > 0."""
        rows = _lake_query(
            context,
            lake,
            "SELECT symbol, trade_id, price, qty FROM t WHERE price <= 0 OR qty <= 0 ORDER BY ALL",
            ["symbol", "trade_id", "price", "qty"],
        )
        return _result([f"{s} {i} price={p} qty={q}" for s, i, p, q in rows], "bad_trades")

    @dg.asset_check(asset=raw_trades, blocking=True, partitions_def=hourly)
    def trades_inside_their_window(context, lake: ParquetLakeResource) -> dg.AssetCheckResult:
        """Every trade sits in the file of its own symbol and minute (trade time)."""
        start, end = window_ms(context)
        found = misplaced_trades(lake.path, start, end)
        problems = [f"{m.path.relative_to(lake.path)}: ids {m.trade_ids[:10]}" for m in found]
        return _result(problems, "files_with_misplaced_trades")

    @dg.asset_check(asset=raw_trades, partitions_def=hourly)
    def trade_ids_contiguous(context, lake: ParquetLakeResource) -> dg.AssetCheckResult:
        """Per symbol, trade ids run without gaps (Binance numbers a symbol's trades 1, 2, ...)."""
        rows = _lake_query(
            context,
            lake,
            "SELECT symbol, previous + 1, trade_id - 1 FROM ("
            "  SELECT symbol, trade_id,"
            "    lag(trade_id) OVER (PARTITION BY symbol ORDER BY trade_id) AS previous FROM t"
            ") WHERE trade_id - previous > 1 ORDER BY ALL",
            ["symbol", "trade_id"],
        )
        missing = sum(last - first + 1 for _s, first, last in rows)
        return dg.AssetCheckResult(
            passed=not rows,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "gaps": len(rows),
                "missing_trades": missing,
                "missing_ranges": [f"{s} {a}-{b}" for s, a, b in rows[:MAX_EXAMPLES]],
            },
        )

    return [
        no_duplicate_trade_ids,
        prices_and_quantities_positive,
        trades_inside_their_window,
        trade_ids_contiguous,
    ]


_RAW_COUNTS = (
    "SELECT symbol, epoch_ms(date_trunc('minute', trade_time)) AS minute, count(*) AS trades "
    "FROM t GROUP BY ALL"
)


def _compare(context, lake: ParquetLakeResource, duckdb_resource: WarehouseResource, sql: str):
    """``sql`` over each hour's raw counts (``raw``) and analytics rows (``a``)."""
    found: list[tuple] = []
    for start, end in _hours(context):
        trades = read_trades(lake.path, start, end, columns=["symbol", "trade_time"], sort=False)
        counts = _query(_RAW_COUNTS, t=trades)
        raw = pa.table(
            {
                "symbol": pa.array([c[0] for c in counts], pa.string()),
                "minute": pa.array([c[1] for c in counts], pa.int64()),
                "trades": pa.array([c[2] for c in counts], pa.int64()),
            }
        )
        with duckdb_resource.read_connection() as conn:
            rows = warehouse.read_minutes(conn, start, end)
        found += _query(sql, raw=raw, a=rows)
    return found


def build_analytics_checks(
    partitions: PlatformPartitions, analytics: dg.AssetsDefinition, grace_seconds: float
) -> list[dg.AssetChecksDefinition]:
    hourly = partitions.hourly

    @dg.asset_check(asset=analytics, partitions_def=hourly)
    def one_row_per_symbol_minute(
        context, lake: ParquetLakeResource, duckdb: WarehouseResource
    ) -> dg.AssetCheckResult:
        """The partition has one analytics row for each (symbol, minute) with raw trades."""
        rows = _compare(
            context,
            lake,
            duckdb,
            "SELECT coalesce(raw.symbol, a.symbol), coalesce(raw.minute, epoch_ms(a.window_start)),"
            " CASE WHEN raw.symbol IS NULL THEN 'extra row' ELSE 'missing row' END"
            " FROM raw FULL JOIN a"
            " ON raw.symbol = a.symbol AND raw.minute = epoch_ms(a.window_start)"
            " WHERE raw.symbol IS NULL OR a.symbol IS NULL ORDER BY ALL",
        )
        return _result([f"{s} {minute_label(m)}: {why}" for s, m, why in rows], "mismatches")

    @dg.asset_check(asset=analytics, partitions_def=hourly)
    def trade_count_matches_raw(
        context, lake: ParquetLakeResource, duckdb: WarehouseResource
    ) -> dg.AssetCheckResult:
        """Each row's ``trade_count`` equals the raw trades of its symbol and minute."""
        rows = _compare(
            context,
            lake,
            duckdb,
            "SELECT raw.symbol, raw.minute, raw.trades, a.trade_count FROM raw JOIN a"
            " ON raw.symbol = a.symbol AND raw.minute = epoch_ms(a.window_start)"
            " WHERE raw.trades <> a.trade_count ORDER BY ALL",
        )
        return _result(
            [f"{s} {minute_label(m)}: raw {r}, trade_count {c}" for s, m, r, c in rows],
            "mismatches",
        )

    @dg.asset_check(asset=analytics, partitions_def=hourly)
    def prices_within_high_low(context, duckdb: WarehouseResource) -> dg.AssetCheckResult:
        """``low <= open, close, avg_price, vwap <= high`` in every row."""
        tol = BOUNDS_REL_TOLERANCE
        problems = []
        for start, end in _hours(context):
            with duckdb.read_connection() as conn:
                rows = warehouse.read_minutes(conn, start, end)
            problems += _query(
                "SELECT symbol, epoch_ms(window_start) FROM a WHERE "
                + " OR ".join(
                    f"{c} < low * (1 - {tol}) OR {c} > high * (1 + {tol})"
                    for c in ("open", "close", "avg_price", "vwap")
                )
                + " ORDER BY ALL",
                a=rows,
            )
        return _result([f"{s} {minute_label(m)}" for s, m in problems], "rows_out_of_bounds")

    @dg.asset_check(asset=analytics, partitions_def=hourly)
    def latest_minute_is_fresh(context, duckdb: WarehouseResource) -> dg.AssetCheckResult:
        """The newest minute in the table ended at most grace + 60 s ago (a warning otherwise)."""
        with duckdb.read_connection() as conn:
            query = f"SELECT epoch_ms(max(window_end)) FROM {ANALYTICS_TABLE}"
            latest = conn.execute(query).fetchone()[0]
        limit = grace_seconds + FRESHNESS_SLACK_S
        lag = None if latest is None else time.time() - latest / 1000
        return dg.AssetCheckResult(
            passed=lag is not None and lag <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "latest_window_end": minute_label(latest) if latest is not None else "none",
                "lag_seconds": round(lag, 1) if lag is not None else -1.0,
                "limit_seconds": limit,
            },
        )

    return [
        one_row_per_symbol_minute,
        trade_count_matches_raw,
        prices_within_high_low,
        latest_minute_is_fresh,
    ]
