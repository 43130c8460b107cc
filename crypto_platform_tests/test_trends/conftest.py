"""The test_defs fixtures (real definitions on a temp folder, the session's broker) for these
tests too, plus real recorded trades as Arrow tables."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from crypto_platform.core.trade_batches import LAKE_SCHEMA
from crypto_platform.core.trades import Trade
from crypto_platform_tests.test_defs.conftest import (  # noqa: F401 - fixtures, re-exported
    instance,
    platform,
    topic_factory,
)

XRPETH_CSV = "xrpeth_2019-10-11/XRPETH-aggTrades-2019-10-11_2019-10-13.csv"
BTC_CSV = "btcusdt_2024-12-31/BTCUSDT-trades-2024-12-31_00-00_00-01.csv"


def xrpeth_trades(shared_binance: Path) -> list[Trade]:
    """The XRPETH aggTrades as trades (aggTrade id as the id: contiguous, real prices)."""
    trades = []
    for line in (shared_binance / XRPETH_CSV).read_text().splitlines():
        agg_id, price, qty, _first, _last, time_ms, maker, _best = line.split(",")
        time = int(time_ms)
        trades.append(
            Trade("XRPETH", int(agg_id), Decimal(price), Decimal(qty), time, time, maker == "True")
        )
    return trades


def to_table(trades: list[Trade]) -> pa.Table:
    """Trades as the lake's Arrow table."""
    return pa.table(
        {
            "symbol": [t.symbol for t in trades],
            "trade_id": [t.trade_id for t in trades],
            "price": pa.array([t.price for t in trades], LAKE_SCHEMA.field("price").type),
            "qty": pa.array([t.qty for t in trades], LAKE_SCHEMA.field("qty").type),
            "trade_time": pa.array([t.trade_time_ms for t in trades], pa.int64()).cast(
                LAKE_SCHEMA.field("trade_time").type
            ),
            "event_time": pa.array([t.event_time_ms for t in trades], pa.int64()).cast(
                LAKE_SCHEMA.field("event_time").type
            ),
            "buyer_is_maker": [t.buyer_is_maker for t in trades],
        },
        schema=LAKE_SCHEMA,
    )
