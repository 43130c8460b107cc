"""The test_defs fixtures (real definitions on a temp folder, the session's broker) for these
tests too, real recorded trades as Arrow tables, and Binance trade dumps read and written by
hand (csv + Decimal), independent of the platform's readers."""

from __future__ import annotations

import hashlib
import random
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from crypto_platform.core.trade_batches import LAKE_SCHEMA
from crypto_platform.core.trades import Trade
from crypto_platform_tests.test_defs.conftest import (  # noqa: F401 - fixtures, re-exported
    instance,
    platform,
    platform_factory,
    topic_factory,
)

MICROS_CSV = "btcusdt_2025-01-02/BTCUSDT-trades-2025-01-02.head32.csv"
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


def read_binance_dump(path: Path, symbol: str = "BTCUSDT") -> list[Trade]:
    """A spot trades dump (CSV, or every CSV of a zip), by hand: ``id,price,qty,quote_qty,time,
    is_buyer_maker,is_best_match``; 16-digit times are µs (2025 on), floored to ms."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            texts = [archive.read(name).decode() for name in archive.namelist()]
    else:
        texts = [path.read_text()]
    trades = []
    for text in texts:
        for line in text.splitlines():
            trade_id, price, qty, _quote, time, maker, _best = line.split(",")
            ms = int(time) // 1000 if len(time) >= 16 else int(time)
            trades.append(
                Trade(symbol, int(trade_id), Decimal(price), Decimal(qty), ms, ms, maker == "True")
            )
    return trades


def write_binance_day(
    folder: Path, day_ms: int, first_id: int, minutes: list[int], seed: int = 3
) -> Path:
    """``BTCUSDT-trades-<day>.zip`` as data.binance.vision ships a day from 2025 on (µs times,
    8-decimal strings, quote = price * qty), 1-40 trades in each of ``minutes`` (of the day),
    with its ``.CHECKSUM`` beside it."""
    rng = random.Random(seed)
    price, trade_id, lines = Decimal("93500.00"), first_id, []
    for minute in minutes:
        start_us = (day_ms + minute * 60_000) * 1000
        for offset in sorted(rng.sample(range(60_000_000), rng.randint(1, 40))):
            price += Decimal(rng.randint(-300, 300)) / 100
            qty = Decimal(rng.randint(1, 200_000)) / 100_000
            quote = (price * qty).quantize(Decimal("0.00000001"))
            maker = rng.random() < 0.5
            lines.append(
                f"{trade_id},{price:.8f},{qty:.8f},{quote:.8f},{start_us + offset},{maker},True"
            )
            trade_id += 1
    name = f"BTCUSDT-trades-{datetime.fromtimestamp(day_ms / 1000, UTC):%Y-%m-%d}"
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.csv", "\n".join(lines) + "\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / f"{path.name}.CHECKSUM").write_text(f"{digest}  {path.name}\n")
    return path
