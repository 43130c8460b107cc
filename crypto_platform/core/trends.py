"""Trends over the 1-minute analytics: moving averages, returns, rolling volatility, VWAP, a label.

Input: rows of ``trade_analytics_1m`` (one per symbol and minute *with trades*). Every window is
by time, not by row count: a minute without trades is a gap, never a shift. For the minute
``t`` of a symbol (``N``-minute windows cover the minutes ``(t - N, t]``):

- ``sma_N`` (N = 5, 15, 60): mean close of the minutes with trades in the window;
- ``ema_N`` (N = 12, 26): the time-decayed exponential average
  ``sum(q**(t - s) * close_s) / sum(q**(t - s))`` over the minutes ``s <= t`` with trades,
  ``q = 1 - 2 / (N + 1)`` per minute (the usual ``alpha = 2 / (N + 1)``; a gap of k minutes
  decays the past by ``q**k``, as pandas' ``ewm(halflife=..., times=...)`` does). It is
  computed over a fixed look-back of :data:`LOOKBACK_MINUTES` (8 hours): what lies further
  back weighs less than ``q**480 < 1e-16`` of the total, so the result does not depend on
  where a run or a backfill starts. ``macd = ema_12 - ema_26``;
- ``log_return`` = ``ln(close_t / close_{t-1 min})``, NULL when the previous minute has no trades;
- ``volatility_60m``: sample standard deviation of the log returns in the 60-minute window
  (NULL below two returns); ``volatility_60m_annualised`` scales it by
  ``sqrt(525600)`` (minutes in a 365-day year: crypto trades around the clock);
- ``vwap_60m`` = quote volume / volume over the window; ``volume_60m``, ``quote_volume_60m``,
  ``trade_count_60m`` their sums; ``minutes_60m`` how many minutes of the window had trades;
- ``trend``: ``up`` when ``sma_5 > sma_15 > sma_60`` with each step more than
  :data:`TREND_BAND` (1 basis point) apart, ``down`` when ``sma_5 < sma_15 < sma_60`` likewise,
  else ``flat``. Short averages above long ones mean prices have been rising.

A run for the minutes ``[start, end)`` reads the analytics of ``[start - LOOKBACK_MINUTES,
end)``, so its values equal those of an uninterrupted run (to rounding).
"""

from __future__ import annotations

import math

import numpy as np

from crypto_platform.core.progress import MINUTE_MS

TRENDS_TABLE = "trade_trends_1m"
SMA_MINUTES = (5, 15, 60)
EMA_SPANS = (12, 26)
WINDOW_MINUTES = 60
LOOKBACK_MINUTES = 480
LOOKBACK_MS = LOOKBACK_MINUTES * MINUTE_MS
MINUTES_PER_YEAR = 365 * 24 * 60
TREND_BAND = 1e-4

# (column, DuckDB type), in table order
TRENDS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("symbol", "VARCHAR"),
    ("window_start", "TIMESTAMP WITH TIME ZONE"),
    ("window_end", "TIMESTAMP WITH TIME ZONE"),
    ("close", "DOUBLE"),
    ("log_return", "DOUBLE"),
    *((f"sma_{n}", "DOUBLE") for n in SMA_MINUTES),
    *((f"ema_{n}", "DOUBLE") for n in EMA_SPANS),
    ("macd", "DOUBLE"),
    ("volatility_60m", "DOUBLE"),
    ("volatility_60m_annualised", "DOUBLE"),
    ("vwap_60m", "DOUBLE"),
    ("volume_60m", "DOUBLE"),
    ("quote_volume_60m", "DOUBLE"),
    ("trade_count_60m", "BIGINT"),
    ("minutes_60m", "BIGINT"),
    ("trend", "VARCHAR"),
)
TRENDS_COLUMN_NAMES = tuple(name for name, _ in TRENDS_COLUMNS)


def trends_table_ddl(table: str = TRENDS_TABLE) -> str:
    body = ",\n  ".join(
        [f"{name} {sql_type}" for name, sql_type in TRENDS_COLUMNS]
        + ["PRIMARY KEY (symbol, window_start)"]
    )
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {body}\n)"


def _frame(minutes: int) -> str:
    return (
        "OVER (PARTITION BY symbol ORDER BY window_start "
        f"RANGE BETWEEN INTERVAL {minutes - 1} MINUTES PRECEDING AND CURRENT ROW)"
    )


def window_sql(source: str) -> str:
    """DuckDB query: every column but the EMAs for each row of ``source`` (analytics rows).

    ``source`` must hold the look-back too; the caller keeps only the run's minutes. EMA
    columns come back NULL and are filled by :func:`ema`.
    """
    w = _frame(WINDOW_MINUTES)
    smas = ",\n    ".join(f"AVG(close) {_frame(n)} AS sma_{n}" for n in SMA_MINUTES)
    return f"""
WITH returns AS (
  SELECT symbol, window_start, close, volume, quote_volume, trade_count,
    CASE WHEN LAG(window_start) OVER by_time = window_start - INTERVAL 1 MINUTE
      THEN ln(close / LAG(close) OVER by_time) END AS log_return
  FROM {source}
  WINDOW by_time AS (PARTITION BY symbol ORDER BY window_start)
), windows AS (
  SELECT symbol, window_start, close, log_return,
    {smas},
    STDDEV_SAMP(log_return) {w} AS volatility_60m,
    SUM(quote_volume) {w} / SUM(volume) {w} AS vwap_60m,
    SUM(volume) {w} AS volume_60m,
    SUM(quote_volume) {w} AS quote_volume_60m,
    CAST(SUM(trade_count) {w} AS BIGINT) AS trade_count_60m,
    COUNT(*) {w} AS minutes_60m
  FROM returns
)
SELECT symbol, window_start, window_start + INTERVAL 1 MINUTE AS window_end, close, log_return,
  {", ".join(f"sma_{n}" for n in SMA_MINUTES)},
  {", ".join(f"CAST(NULL AS DOUBLE) AS ema_{n}" for n in EMA_SPANS)},
  CAST(NULL AS DOUBLE) AS macd,
  volatility_60m, volatility_60m * sqrt({MINUTES_PER_YEAR}) AS volatility_60m_annualised,
  vwap_60m, volume_60m, quote_volume_60m, trade_count_60m, minutes_60m,
  {trend_sql()} AS trend
FROM windows
ORDER BY symbol, window_start
"""


def trend_sql(band: float = TREND_BAND) -> str:
    """The trend label's rule (see the module docstring) as a SQL expression."""
    up = f"sma_5 > sma_15 * (1 + {band}) AND sma_15 > sma_60 * (1 + {band})"
    down = f"sma_5 < sma_15 * (1 - {band}) AND sma_15 < sma_60 * (1 - {band})"
    return f"CASE WHEN {up} THEN 'up' WHEN {down} THEN 'down' ELSE 'flat' END"


def ema_decay(span: int) -> float:
    """``q = 1 - alpha`` per minute, ``alpha = 2 / (span + 1)``."""
    return 1 - 2 / (span + 1)


def ema(minutes_ms: np.ndarray, closes: np.ndarray, span: int) -> np.ndarray:
    """The EMA (module docstring) at each of ``minutes_ms`` (one symbol, ascending, unique).

    The minutes are laid on a dense grid (gaps weigh nothing) and both sums are one
    convolution with the weights ``q**0 .. q**(LOOKBACK_MINUTES - 1)``.
    """
    if len(minutes_ms) == 0:
        return np.empty(0)
    offsets = (np.asarray(minutes_ms, dtype=np.int64) - int(minutes_ms[0])) // MINUTE_MS
    values = np.zeros(int(offsets[-1]) + 1)
    present = np.zeros_like(values)
    values[offsets] = closes
    present[offsets] = 1.0
    weights = ema_decay(span) ** np.arange(LOOKBACK_MINUTES, dtype=np.float64)
    numerator = np.convolve(values, weights)[: len(values)]
    denominator = np.convolve(present, weights)[: len(values)]
    return numerator[offsets] / denominator[offsets]


def annualise(volatility: float) -> float:
    return volatility * math.sqrt(MINUTES_PER_YEAR)
