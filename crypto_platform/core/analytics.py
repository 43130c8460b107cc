"""The 1-minute analytics: one definition, in SQL that DuckDB and Spark SQL both run.

Input: a relation of trades with the lake's columns ``symbol``, ``trade_id`` (BIGINT), ``price``
and ``qty`` (DECIMAL(18, 8), exact), ``trade_time`` (TIMESTAMP, UTC) and ``buyer_is_maker``
(BOOLEAN), free of duplicate (symbol, trade_id). Output: one row per (symbol, minute) that has
trades, with the columns of :data:`ANALYTICS_COLUMNS`.

Definitions (UTC minutes by trade time):

- ``avg_price`` = mean price; ``price_change_pct`` = (max - min) / min * 100 (the seed's
  definition: the minute's range, not open-to-close);
- ``volatility`` = *sample* standard deviation of prices, NULL for a single trade;
- ``open``/``close`` = price of the lowest/highest trade id, ``high``/``low`` = max/min price;
- ``volume`` = sum qty, ``quote_volume`` = sum price*qty, ``vwap`` = quote_volume / volume;
- ``taker_buy_volume`` = qty where the buyer is *not* the maker, ``taker_sell_volume`` the rest
  (Binance's kline column "taker buy base asset volume" is the former);
- ``first_trade_id``/``last_trade_id``; ``is_complete`` = the ids are contiguous.

Sums run on the exact decimals and are cast to DOUBLE only at the end, so volume, quote volume,
VWAP and the mean do not depend on the order rows were summed in (DuckDB, Spark and a pandas
check agree to the last bit); only the standard deviation is computed in floating point.
"""

from __future__ import annotations

PRICE_SQL_TYPE = "DECIMAL(18, 8)"
# price * qty, exactly: widening one side to 19 digits makes DuckDB multiply in 128 bits
# (DECIMAL(37, 16)); Spark gives DECIMAL(38, 16) for the same, still without rounding.
_NOTIONAL = "CAST(price AS DECIMAL(19, 8)) * qty"

# (column, SQL expression over the trades relation, DuckDB column type)
MINUTE_AGGREGATES: tuple[tuple[str, str, str], ...] = (
    ("avg_price", "CAST(SUM(price) AS DOUBLE) / COUNT(*)", "DOUBLE"),
    (
        "price_change_pct",
        "CAST((MAX(price) - MIN(price)) AS DOUBLE) / CAST(MIN(price) AS DOUBLE) * 100",
        "DOUBLE",
    ),
    ("volatility", "STDDEV_SAMP(CAST(price AS DOUBLE))", "DOUBLE"),
    ("trade_count", "COUNT(*)", "BIGINT"),
    ("open", "CAST(MIN_BY(price, trade_id) AS DOUBLE)", "DOUBLE"),
    ("high", "CAST(MAX(price) AS DOUBLE)", "DOUBLE"),
    ("low", "CAST(MIN(price) AS DOUBLE)", "DOUBLE"),
    ("close", "CAST(MAX_BY(price, trade_id) AS DOUBLE)", "DOUBLE"),
    ("volume", "CAST(SUM(qty) AS DOUBLE)", "DOUBLE"),
    ("quote_volume", f"CAST(SUM({_NOTIONAL}) AS DOUBLE)", "DOUBLE"),
    ("vwap", f"CAST(SUM({_NOTIONAL}) AS DOUBLE) / CAST(SUM(qty) AS DOUBLE)", "DOUBLE"),
    (
        "taker_buy_volume",
        "CAST(SUM(CASE WHEN buyer_is_maker THEN 0 ELSE qty END) AS DOUBLE)",
        "DOUBLE",
    ),
    (
        "taker_sell_volume",
        "CAST(SUM(CASE WHEN buyer_is_maker THEN qty ELSE 0 END) AS DOUBLE)",
        "DOUBLE",
    ),
    ("first_trade_id", "MIN(trade_id)", "BIGINT"),
    ("last_trade_id", "MAX(trade_id)", "BIGINT"),
    ("is_complete", "(MAX(trade_id) - MIN(trade_id) + 1) = COUNT(*)", "BOOLEAN"),
)

KEY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("symbol", "VARCHAR"),
    ("window_start", "TIMESTAMP WITH TIME ZONE"),
    ("window_end", "TIMESTAMP WITH TIME ZONE"),
)

ANALYTICS_COLUMNS: tuple[str, ...] = tuple(
    [name for name, _ in KEY_COLUMNS] + [name for name, _, _ in MINUTE_AGGREGATES]
)

ANALYTICS_TABLE = "trade_analytics_1m"


def aggregate_select_list() -> str:
    """``expr AS name, ...`` for every aggregate column (shared by DuckDB and Spark)."""
    return ",\n  ".join(f"{expr} AS {name}" for name, expr, _ in MINUTE_AGGREGATES)


def minute_analytics_sql(source: str) -> str:
    """DuckDB query computing the analytics of every (symbol, minute) in ``source``.

    ``trade_time`` must be TIMESTAMP WITH TIME ZONE with the session in UTC, or a UTC TIMESTAMP.
    """
    return f"""
SELECT
  symbol,
  date_trunc('minute', trade_time) AS window_start,
  date_trunc('minute', trade_time) + INTERVAL 1 MINUTE AS window_end,
  {aggregate_select_list()}
FROM {source}
GROUP BY symbol, date_trunc('minute', trade_time)
ORDER BY symbol, window_start
"""


def analytics_table_ddl(table: str = ANALYTICS_TABLE) -> str:
    """CREATE TABLE for the analytics, primary key (symbol, window_start)."""
    columns = [f"{name} {sql_type}" for name, sql_type in KEY_COLUMNS]
    columns += [f"{name} {sql_type}" for name, _, sql_type in MINUTE_AGGREGATES]
    body = ",\n  ".join([*columns, "PRIMARY KEY (symbol, window_start)"])
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {body}\n)"
