"""The analytics computed independently of DuckDB: pandas and Decimal over the same trades."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from crypto_platform.core.trades import Trade


def minutes_frame(trades: list[Trade]) -> pd.DataFrame:
    """One row per (symbol, minute): avg price (exact sum), sample std, count, volume."""
    frame = pd.DataFrame(
        {
            "symbol": [t.symbol for t in trades],
            "minute": [t.trade_time_ms // 60_000 * 60_000 for t in trades],
            "price": [t.price for t in trades],
            "price_f": [float(t.price) for t in trades],
            "qty": [t.qty for t in trades],
        }
    )
    grouped = frame.groupby(["symbol", "minute"])
    out = pd.DataFrame(
        {
            "avg_price": grouped["price"].agg(lambda p: float(sum(p)) / len(p)),
            "volatility": grouped["price_f"].std(ddof=1),
            "trade_count": grouped.size(),
            "volume": grouped["qty"].agg(lambda q: float(sum(q))),
        }
    ).reset_index()
    out["window_start"] = [datetime.fromtimestamp(m / 1000, tz=UTC) for m in out["minute"]]
    return out
