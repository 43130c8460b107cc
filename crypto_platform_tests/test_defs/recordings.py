"""The real Binance recordings beside the project (``../shared/data/binance``), read in place.

``PROVENANCE.md`` there says where each file comes from. Only the 2024-12-31 BTCUSDT minutes
have official klines; the 2025-01-02 head has 32 trades (microsecond times); XRPETH holds
aggTrades, replayed here as trades with the aggTrade id as the trade id (contiguous, real
prices and quantities).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from crypto_platform.core.archive import read_trades
from crypto_platform.core.trades import Trade

BTC_2024_TRADES = "btcusdt_2024-12-31/BTCUSDT-trades-2024-12-31_00-00_00-01.csv"
BTC_2024_KLINES = "btcusdt_2024-12-31/BTCUSDT-1m-2024-12-31.head32.csv"
BTC_2025_HEAD = "btcusdt_2025-01-02/BTCUSDT-trades-2025-01-02.head32.csv"
XRPETH_AGG_TRADES = "xrpeth_2019-10-11/XRPETH-aggTrades-2019-10-11_2019-10-13.csv"


def btcusdt_2024(shared: Path) -> list[Trade]:
    """Every BTCUSDT trade of 2024-12-31 00:00 and 00:01 UTC (4,212)."""
    return list(read_trades(shared / BTC_2024_TRADES))


def btcusdt_2025_head(shared: Path) -> list[Trade]:
    """The first 32 BTCUSDT trades of 2025-01-02 (00:00:00.1 to 00:00:02.9 UTC)."""
    return list(read_trades(shared / BTC_2025_HEAD))


def xrpeth(shared: Path) -> list[Trade]:
    """All 12,477 XRPETH aggTrades, 2019-10-11 00:00 to 2019-10-13 11:19 UTC, as trades."""
    trades = []
    for line in (shared / XRPETH_AGG_TRADES).read_text().splitlines():
        agg_id, price, qty, _first, _last, time_ms, maker, _best = line.split(",")
        trades.append(
            Trade(
                "XRPETH",
                int(agg_id),
                Decimal(price),
                Decimal(qty),
                int(time_ms),
                int(time_ms),
                maker == "True",
            )
        )
    return trades
