"""The exchange simulator's REST side: Binance's ``historicalTrades`` and ``time`` endpoints.

Served by the WebSocket server's ``process_request`` hook on the same port: a request for a
stream path goes on to the WebSocket handshake, anything else gets a JSON answer in Binance's
shapes (see :mod:`.sim_protocol`), with two faults on request: failing calls (503) and trades
the exchange does not have (withheld ids).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from crypto_platform.ingest import sim_protocol as proto
from crypto_platform.ingest.sim_sources import TradeSource


@dataclass
class SimStats:
    """What the simulator did, for tests and the CLI."""

    connections_opened: int = 0
    drops: int = 0
    stalls: int = 0
    frames_sent: int = 0
    pongs: int = 0
    rest_requests: int = 0
    published: Counter[str] = field(default_factory=Counter)
    malformed_sent: Counter[str] = field(default_factory=Counter)


class RestEndpoints:
    def __init__(self, source: TradeSource, stats: SimStats) -> None:
        self.source = source
        self.stats = stats
        self.failures = 0  # the next this-many requests answer 503
        self.withheld: list[tuple[str, int, int]] = []  # (symbol, first id, last id)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path.startswith("/ws/") or url.path.rstrip("/") == "/stream":
            try:
                proto.parse_stream_path(request.path)
            except proto.StreamPathError as exc:
                return _json(connection, 400, proto.rest_error(-1100, str(exc)))
            return None
        self.stats.rest_requests += 1
        if self.failures > 0:
            self.failures -= 1
            return _json(connection, 503, proto.rest_error(-1001, "Service unavailable (injected)"))
        if url.path == "/api/v3/time":
            return _json(connection, 200, {"serverTime": self.source.clock_ms()})
        if url.path == "/api/v3/ping":
            return _json(connection, 200, {})
        if url.path == "/api/v3/historicalTrades":
            return self._historical_trades(connection, parse_qs(url.query))
        return _json(connection, 404, proto.rest_error(-1000, f"no endpoint {url.path}"))

    def _historical_trades(
        self, connection: ServerConnection, query: dict[str, list[str]]
    ) -> Response:
        symbol = query.get("symbol", [""])[0].upper()
        if symbol not in self.source.symbols:
            return _json(connection, 400, proto.rest_error(-1121, "Invalid symbol."))
        try:
            limit = int(query.get("limit", [proto.DEFAULT_REST_LIMIT])[0])
            from_id = int(query["fromId"][0]) if "fromId" in query else None
        except ValueError as exc:
            return _json(connection, 400, proto.rest_error(-1100, f"bad parameter: {exc}"))
        if not 1 <= limit <= proto.MAX_REST_LIMIT:
            return _json(connection, 400, proto.rest_error(-1100, "limit must be 1..1000"))
        if from_id is None:
            trades = self.source.latest_trades(symbol, limit)
        else:
            trades = self.source.trades_from_id(symbol, from_id, limit)
        rows = [proto.rest_trade(t) for t in trades if not self._is_withheld(symbol, t.trade_id)]
        return _json(connection, 200, rows)

    def _is_withheld(self, symbol: str, trade_id: int) -> bool:
        return any(s == symbol and a <= trade_id <= b for s, a, b in self.withheld)


def _json(connection: ServerConnection, status: int, body: Any) -> Response:
    response = connection.respond(status, json.dumps(body, separators=(",", ":")))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json;charset=UTF-8"
    return response
