"""Hourly and daily roll-ups of the 1-minute analytics, with the same columns and meanings.

Each roll-up row is what :mod:`crypto_platform.core.analytics` would give for the trades of the
whole hour (or day), merged from the minute rows rather than re-read from the trades:

- counts, volumes and quote volumes add up; ``vwap`` = sum of quote volumes / sum of volumes;
  ``high``/``low`` and the first/last trade ids are the extremes; ``open`` is the first
  minute's open, ``close`` the last minute's close; ``is_complete`` compares the id range with
  the count, as for a minute; ``price_change_pct`` = (high - low) / low * 100;
- ``avg_price`` and the sample standard deviation ``volatility`` are exact too, not averages of
  averages: each minute carries its count ``n_i``, mean ``m_i`` and sum of squared deviations
  ``M2_i = volatility_i**2 * (n_i - 1)``, merged as (Chan et al.)
  ``mean = sum(n_i m_i) / n`` and ``M2 = sum(M2_i) + sum(n_i (m_i - mean)**2)``,
  ``volatility = sqrt(M2 / (n - 1))``.

Sums are ordered by minute, so the same minutes always give the same bits.
"""

from __future__ import annotations

from typing import Literal

from crypto_platform.core.analytics import (
    ANALYTICS_COLUMNS,
    ANALYTICS_TABLE,
    KEY_COLUMNS,
    MINUTE_AGGREGATES,
)

Unit = Literal["hour", "day"]
ROLLUP_TABLES: dict[Unit, str] = {"hour": "trade_analytics_1h", "day": "trade_analytics_1d"}

# The merged value of each analytics column, over the minute rows ``m`` of one bucket, with
# ``n`` and ``mean`` computed beforehand (see rollup_sql).
_MERGED: dict[str, str] = {
    "avg_price": "mean",
    "price_change_pct": "(MAX(high) - MIN(low)) / MIN(low) * 100",
    "volatility": (
        "CASE WHEN n > 1 THEN sqrt((SUM(m2 ORDER BY minute) + SUM(trade_count * "
        "(avg_price - mean) * (avg_price - mean) ORDER BY minute)) / (n - 1)) END"
    ),
    "trade_count": "n",
    "open": "ARG_MIN(open, minute)",
    "high": "MAX(high)",
    "low": "MIN(low)",
    "close": "ARG_MAX(close, minute)",
    "volume": "SUM(volume ORDER BY minute)",
    "quote_volume": "SUM(quote_volume ORDER BY minute)",
    "vwap": "SUM(quote_volume ORDER BY minute) / SUM(volume ORDER BY minute)",
    "taker_buy_volume": "SUM(taker_buy_volume ORDER BY minute)",
    "taker_sell_volume": "SUM(taker_sell_volume ORDER BY minute)",
    "first_trade_id": "MIN(first_trade_id)",
    "last_trade_id": "MAX(last_trade_id)",
    "is_complete": "MAX(last_trade_id) - MIN(first_trade_id) + 1 = n",
}
assert set(_MERGED) == {name for name, _, _ in MINUTE_AGGREGATES}


def rollup_sql(unit: Unit, source: str = ANALYTICS_TABLE) -> str:
    """DuckDB query: the roll-up rows of every (symbol, ``unit``) whose minutes are in ``source``
    and lie in ``[$start, $end)`` (bound parameters). The session must be in UTC."""
    columns = ",\n  ".join(f"{_MERGED[name]} AS {name}" for name, _, _ in MINUTE_AGGREGATES)
    return f"""
WITH m AS (
  SELECT * EXCLUDE (window_start, window_end), window_start AS minute,
    date_trunc('{unit}', window_start) AS bucket,
    COALESCE(volatility * volatility * (trade_count - 1), 0) AS m2
  FROM {source} WHERE window_start >= $start AND window_start < $end
), sizes AS (
  SELECT symbol, bucket, CAST(SUM(trade_count) AS BIGINT) AS n,
    SUM(trade_count * avg_price ORDER BY minute) / SUM(trade_count) AS mean
  FROM m GROUP BY symbol, bucket
)
SELECT symbol, bucket AS window_start, bucket + INTERVAL 1 {unit} AS window_end,
  {columns}
FROM m JOIN sizes USING (symbol, bucket)
GROUP BY symbol, bucket, n, mean
ORDER BY symbol, bucket
"""


def rollup_table_ddl(unit: Unit) -> str:
    """CREATE TABLE for a roll-up: the 1-minute table's columns and key."""
    columns = [f"{name} {sql_type}" for name, sql_type in KEY_COLUMNS]
    columns += [f"{name} {sql_type}" for name, _, sql_type in MINUTE_AGGREGATES]
    body = ",\n  ".join([*columns, "PRIMARY KEY (symbol, window_start)"])
    return f"CREATE TABLE IF NOT EXISTS {ROLLUP_TABLES[unit]} (\n  {body}\n)"


ROLLUP_COLUMNS = ANALYTICS_COLUMNS
