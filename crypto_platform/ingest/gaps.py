"""Filling holes in the trade ids from Binance's REST endpoint, in a worker thread.

``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=N&limit=1000`` returns up to 1000 trades
with id >= N, oldest first, as ``{"id","price","qty","quoteQty","time","isBuyerMaker",
"isBestMatch"}``; without ``fromId`` it returns the latest trades. Each row becomes the trade
event the stream would have sent (``E`` = ``T``: REST has no event time) and goes through the
same validation as stream frames.

A :class:`FillJob` asks for ids ``from_id..to_id`` (``to_id=None``: up to the exchange's latest,
as after a reconnect). The worker emits one ``("page", job_id, events, done)`` per response and
``("page_error", job_id, message, retry_after_s)`` when a request fails; for open-ended jobs it
first samples ``/api/v3/time`` (``("clock", slot, server_ms, local_ms)``). The service decides
what is a duplicate, what is still missing, and when to retry or give up.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PAGE_LIMIT = 1000  # Binance's maximum per request
REST_TIMEOUT_S = 10.0

Emit = Callable[[tuple[Any, ...]], None]


class RestError(RuntimeError):
    """A REST call failed; ``retry_after_s`` is set when the exchange asked us to wait."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class FillJob:
    job_id: int
    symbol: str
    from_id: int | None  # None: only the latest trade (where a never-seen symbol starts)
    to_id: int | None  # None: up to the latest trade
    cause: str
    slot: int


class BinanceRest:
    """The two public market-data calls the service needs, over plain HTTP(S)."""

    def __init__(self, base_url: str, timeout_s: float = REST_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300].decode(errors="replace")
            retry = exc.headers.get("Retry-After")
            raise RestError(
                f"GET {path} -> HTTP {exc.code}: {body}", float(retry) if retry else None
            ) from None
        except (OSError, ValueError) as exc:
            raise RestError(f"GET {path} failed: {exc}") from None

    def server_time(self) -> int:
        return int(self._get("/api/v3/time", {})["serverTime"])

    def historical_trades(self, symbol: str, from_id: int | None, limit: int) -> list[dict]:
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if from_id is not None:
            params["fromId"] = from_id
        rows = self._get("/api/v3/historicalTrades", params)
        if not isinstance(rows, list):
            raise RestError(f"historicalTrades for {symbol} returned {str(rows)[:200]}")
        return rows


def rest_row_to_event(symbol: str, row: dict[str, Any]) -> dict[str, Any]:
    """A ``historicalTrades`` row as the trade event the stream sends (``E`` = ``T``)."""
    return {
        "e": "trade",
        "E": row.get("time"),
        "s": symbol,
        "t": row.get("id"),
        "p": row.get("price"),
        "q": row.get("qty"),
        "T": row.get("time"),
        "m": row.get("isBuyerMaker"),
        "M": row.get("isBestMatch", True),
    }


class GapFiller:
    """One worker thread that runs fill jobs in order and reports each page."""

    def __init__(self, rest: BinanceRest, emit: Emit, page_limit: int = PAGE_LIMIT) -> None:
        self.rest = rest
        self.page_limit = page_limit
        self._emit = emit
        self._jobs: queue.SimpleQueue[FillJob | None] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gap-filler", daemon=True)

    def start(self) -> GapFiller:
        self._thread.start()
        return self

    def submit(self, job: FillJob) -> None:
        self._jobs.put(job)

    def close(self) -> None:
        """Stop after the current request (the thread is a daemon: shutdown never waits on it)."""
        self._closing.set()
        self._jobs.put(None)

    def _run(self) -> None:
        while not self._closing.is_set():
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._fill(job)
            except RestError as exc:
                self._emit(("page_error", job.job_id, str(exc), exc.retry_after_s))
            except Exception as exc:  # a bad page must not kill the worker
                log.exception("gap filler: unexpected error in job %s", job)
                self._emit(("page_error", job.job_id, f"{type(exc).__name__}: {exc}", None))

    def _fill(self, job: FillJob) -> None:
        if job.to_id is None:  # the clock tells the service how far this catch-up reaches
            server_ms = self.rest.server_time()
            self._emit(("clock", job.slot, server_ms, time.monotonic_ns() // 1_000_000))
        if job.from_id is None:
            rows = self.rest.historical_trades(job.symbol, None, 1)
            self._emit(("page", job.job_id, self._events(job, rows), True))
            return
        from_id = job.from_id
        while not self._closing.is_set():
            limit = self.page_limit  # a bounded job asks for no more than it misses
            if job.to_id is not None:
                limit = max(1, min(limit, job.to_id - from_id + 1))
            rows = self.rest.historical_trades(job.symbol, from_id, limit)
            reached = (
                job.to_id is not None and bool(rows) and int(rows[-1].get("id", 0)) >= job.to_id
            )
            done = len(rows) < limit or reached
            self._emit(("page", job.job_id, self._events(job, rows), done))
            if done:
                return
            from_id = int(rows[-1]["id"]) + 1

    @staticmethod
    def _events(job: FillJob, rows: list[dict]) -> list[tuple[dict[str, Any], int]]:
        received_ms = time.time_ns() // 1_000_000
        return [(rest_row_to_event(job.symbol, row), received_ms) for row in rows]
