"""Binance's public wire shapes, as the exchange simulator serves them.

WebSocket paths (``wss://stream.binance.com:9443`` on Binance):

- ``/ws/btcusdt@trade`` and ``/ws/btcusdt@trade/ethusdt@trade``: raw streams, each frame is the
  trade event itself;
- ``/stream?streams=btcusdt@trade/ethusdt@trade``: combined streams, each frame is the envelope
  ``{"stream":"btcusdt@trade","data":{...event...}}``.

REST (``https://api.binance.com`` on Binance), JSON:

- ``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=N&limit=L`` (limit 1..1000, default 500;
  without ``fromId`` the most recent trades) -> ``[{"id","price","qty","quoteQty","time",
  "isBuyerMaker","isBestMatch"}, ...]`` by id;
- ``GET /api/v3/time`` -> ``{"serverTime": ms}``; errors are ``{"code": -1121, "msg": ...}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from crypto_platform.core.trades import Trade

MAX_REST_LIMIT = 1000
DEFAULT_REST_LIMIT = 500


class StreamPathError(ValueError):
    """A WebSocket path that is not one of Binance's stream forms."""


@dataclass(frozen=True)
class StreamRequest:
    symbols: frozenset[str]  # upper case, as in the events' "s"
    combined: bool


def parse_stream_path(path: str) -> StreamRequest:
    """``/ws/a@trade/b@trade`` or ``/stream?streams=a@trade/b@trade`` -> the trade symbols."""
    url = urlsplit(path)
    if url.path.startswith("/ws/"):
        names, combined = url.path[len("/ws/") :].split("/"), False
    elif url.path in ("/stream", "/stream/"):
        names, combined = parse_qs(url.query).get("streams", [""])[0].split("/"), True
    else:
        raise StreamPathError(f"unknown path {url.path!r}: use /ws/<symbol>@trade or /stream")
    names = [n for n in names if n]
    if not names:
        raise StreamPathError("no stream named")
    symbols = frozenset(n.split("@", 1)[0].upper() for n in names if n.endswith("@trade"))
    return StreamRequest(symbols, combined)


def event_json(event: dict[str, Any]) -> str:
    """Compact JSON, as Binance sends it."""
    return json.dumps(event, separators=(",", ":"))


def combined_frame(symbol: str, event_text: str) -> str:
    return f'{{"stream":"{symbol.lower()}@trade","data":{event_text}}}'


def rest_trade(trade: Trade, best_match: bool = True) -> dict[str, Any]:
    """One row of ``historicalTrades``; ``quoteQty`` is price x qty without trailing zeros."""
    quote = (trade.price * trade.qty).normalize()
    return {
        "id": trade.trade_id,
        "price": format(trade.price, "f"),
        "qty": format(trade.qty, "f"),
        "quoteQty": format(quote if quote != 0 else Decimal(0), "f"),
        "time": trade.trade_time_ms,
        "isBuyerMaker": trade.buyer_is_maker,
        "isBestMatch": best_match,
    }


def rest_error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "msg": message}
