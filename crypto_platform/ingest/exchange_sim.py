"""A local exchange that speaks Binance's protocol, for tests, demos and benchmarks.

It serves Binance's trade streams (``/ws/...``, ``/stream?streams=...``) and the REST endpoints
the ingestion service needs (``/api/v3/historicalTrades``, ``/api/v3/time``) on ONE port of
127.0.0.1, from a :mod:`~crypto_platform.ingest.sim_sources` source, and injects the faults the
real feed shows: dropped connections (after N messages or T seconds), stalls (no frame at all,
not even a ping), malformed frames between the real ones, failing REST calls, and trades REST
does not have. Pings go out every ``ping_interval_s``; a client that does not answer is dropped.

Python API: ``with ExchangeSimulator(source, faults).start() as sim: sim.port ...``. The server
runs its own asyncio loop in a background thread; the control methods are thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from crypto_platform.ingest import sim_protocol as proto
from crypto_platform.ingest.sim_rest import RestEndpoints, SimStats
from crypto_platform.ingest.sim_sources import TradeSource

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
CLIENT_QUEUE = 10_000  # frames waiting per client; a paced feed drops a client that falls behind


@dataclass(frozen=True)
class Faults:
    """Faults injected on every connection (until ``max_drops`` drops/stalls have happened)."""

    drop_after_messages: int | None = None
    drop_after_seconds: float | None = None
    stall_after_messages: int | None = None
    stall_seconds: float = 30.0
    max_drops: int | None = None
    malformed_every: int | None = None  # a malformed frame after every N trade frames


# Changes to a valid trade event, and the reason core.trades gives for the result; None = cut JSON.
MALFORMED_FRAMES: tuple[tuple[dict[str, Any] | None, str], ...] = (
    (None, "malformed_json"),
    ({"e": "aggTrade"}, "unknown_event"),
    ({"t": "12"}, "bad_trade_id"),
    ({"p": "-5.00"}, "bad_price"),
    ({"q": "0.00000000"}, "bad_qty"),
    ({"m": "yes"}, "bad_maker_flag"),
)


def malformed_frame(index: int, symbol: str, time_ms: int) -> tuple[str, str]:
    """The ``index``-th malformed event text (cycling) and the DLQ reason it must get."""
    change, reason = MALFORMED_FRAMES[index % len(MALFORMED_FRAMES)]
    event = {"e": "trade", "E": time_ms, "s": symbol, "t": 12, "p": "5.00", "q": "1.0"}
    event |= {"T": time_ms, "m": True, "M": True} | (change or {})
    text = proto.event_json(event)
    return (text[: len(text) // 2] if change is None else text), reason


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    request: proto.StreamRequest
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    sent: int = 0
    stalled: bool = False
    alive: bool = True

    def frame(self, symbol: str, event_text: str) -> str:
        return proto.combined_frame(symbol, event_text) if self.request.combined else event_text


class ExchangeSimulator:
    """Binance's trade streams and REST endpoints on 127.0.0.1, with fault injection."""

    def __init__(
        self,
        source: TradeSource,
        faults: Faults | None = None,
        port: int = 0,
        ping_interval_s: float = 20.0,
        wait_for_clients: int = 1,
        record: bool = False,
    ) -> None:
        self.source = source
        self.record = record
        self.published_events: dict[str, dict[int, str]] = {}  # with record: symbol -> id -> text
        self.faults = faults or Faults()
        self.stats = SimStats()
        self.ping_interval_s = ping_interval_s
        self.wait_for_clients = wait_for_clients  # the feed starts once this many connected
        self._port = port
        self._clients: set[_Client] = set()
        self.rest = RestEndpoints(source, self.stats)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._clients_ready: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}"

    @property
    def finished(self) -> bool:
        """True once the source has published everything it has (replays, bounded runs)."""
        return self.source.finished

    def start(self) -> ExchangeSimulator:
        self._thread = threading.Thread(target=self._run, name="exchange-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._error is not None:
            raise RuntimeError(f"the exchange simulator did not start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)

    def __enter__(self) -> ExchangeSimulator:
        return self if self._ready.is_set() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until :meth:`stop` (for the CLI)."""
        if self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(0.5)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() and the log
            self._error = exc
            log.exception("exchange simulator failed")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop, self._clients_ready = asyncio.Event(), asyncio.Event()
        server: Server = await serve(
            self._handle,
            "127.0.0.1",
            self._port,
            process_request=self.rest.process_request,
            ping_interval=None,  # pings are ours, so that a stall silences them too
            compression=None,  # Binance's streams are not compressed either
            max_queue=None,
        )
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        feed = asyncio.create_task(self._feed())
        try:
            await self._stop.wait()
        finally:
            feed.cancel()
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), STOP_TIMEOUT_S)

    async def _feed(self) -> None:
        assert self._clients_ready is not None
        if self.wait_for_clients > 0:
            await self._clients_ready.wait()
        try:
            await self.source.run(self._publish)
        except Exception:
            log.exception("the simulator's trade source failed")

    # -- control (thread-safe) ---------------------------------------------------------------

    def _call(self, callback: Any, *args: Any) -> None:
        if self._loop is None:
            raise RuntimeError("the simulator is not running")
        self._loop.call_soon_threadsafe(callback, *args)

    def drop_connections(self) -> None:
        """Cut every open connection now, without a close frame (a network drop)."""
        self._call(lambda: [self._drop(c, "dropped on request") for c in list(self._clients)])

    def stall_connections(self, seconds: float) -> None:
        """Send nothing (no trades, no pings) on every open connection for ``seconds``."""
        self._call(lambda: [asyncio.ensure_future(self._stall(c, seconds)) for c in self._clients])

    def send_raw(self, frame: str) -> None:
        """Send ``frame`` as is on every open connection (e.g. a hand-made malformed frame)."""
        self._call(lambda: [c.queue.put_nowait(frame) for c in self._clients if c.alive])

    def fail_rest(self, count: int) -> None:
        """The next ``count`` REST requests answer 503."""
        self.rest.failures += count

    def withhold(self, symbol: str, first_id: int, last_id: int) -> None:
        """REST never returns these trades of ``symbol`` (a hole on the exchange's side)."""
        self.rest.withheld.append((symbol.upper(), first_id, last_id))

    # -- WebSocket ---------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None and self._clients_ready is not None
        client = _Client(ws, proto.parse_stream_path(ws.request.path))
        self._clients.add(client)
        self.stats.connections_opened += 1
        if self.stats.connections_opened >= self.wait_for_clients:
            self._clients_ready.set()
        tasks = [
            asyncio.create_task(self._send_loop(client)),
            asyncio.create_task(self._pings(client)),
        ]
        if self.faults.drop_after_seconds is not None:
            tasks.append(asyncio.create_task(self._drop_later(client)))
        try:
            await ws.wait_closed()
        finally:
            client.alive = False
            self._clients.discard(client)
            for task in tasks:
                task.cancel()

    def _may_fault(self) -> bool:
        done = self.stats.drops + self.stats.stalls
        return self.faults.max_drops is None or done < self.faults.max_drops

    def _drop(self, client: _Client, why: str) -> None:
        if client.alive:
            client.alive = False
            self.stats.drops += 1
            log.info("simulator: dropping a connection (%s) after %d frames", why, client.sent)
            client.ws.transport.abort()

    async def _drop_later(self, client: _Client) -> None:
        assert self.faults.drop_after_seconds is not None
        await asyncio.sleep(self.faults.drop_after_seconds)
        if self._may_fault():
            self._drop(client, f"after {self.faults.drop_after_seconds}s")

    async def _stall(self, client: _Client, seconds: float) -> None:
        client.stalled = True
        self.stats.stalls += 1
        log.info("simulator: stalling a connection for %.1fs", seconds)
        await asyncio.sleep(seconds)
        client.alive = False
        client.ws.transport.abort()

    async def _send_loop(self, client: _Client) -> None:
        faults = self.faults
        while client.alive:
            frame = await client.queue.get()
            if client.stalled:
                continue
            await client.ws.send(frame)
            client.sent += 1
            self.stats.frames_sent += 1
            if faults.malformed_every and client.sent % faults.malformed_every == 0:
                await self._send_malformed(client)
            due_drop = faults.drop_after_messages and client.sent >= faults.drop_after_messages
            if due_drop and self._may_fault():
                self._drop(client, f"after {client.sent} messages")
            due_stall = faults.stall_after_messages and client.sent == faults.stall_after_messages
            if due_stall and self._may_fault():
                await self._stall(client, faults.stall_seconds)

    async def _send_malformed(self, client: _Client) -> None:
        symbol = min(client.request.symbols) if client.request.symbols else "BTCUSDT"
        count = sum(self.stats.malformed_sent.values())
        text, reason = malformed_frame(count, symbol, self.source.clock_ms())
        await client.ws.send(text if reason == "malformed_json" else client.frame(symbol, text))
        self.stats.malformed_sent[reason] += 1

    async def _pings(self, client: _Client) -> None:
        while client.alive:
            await asyncio.sleep(self.ping_interval_s)
            if client.stalled:
                continue
            waiter = await client.ws.ping()
            try:
                await asyncio.wait_for(waiter, self.ping_interval_s * 3)
                self.stats.pongs += 1
            except TimeoutError:
                self._drop(client, "no pong")

    async def _publish(self, event: dict[str, Any]) -> None:
        symbol = event["s"]
        text: str | None = None
        for client in list(self._clients):
            if symbol not in client.request.symbols or client.stalled or not client.alive:
                continue
            text = text or proto.event_json(event)
            await self._offer(client, client.frame(symbol, text))
        self.stats.published[symbol] += 1
        if self.record:
            self.published_events.setdefault(symbol, {})[event["t"]] = text or proto.event_json(
                event
            )

    async def _offer(self, client: _Client, frame: str) -> None:
        """Queue a frame; a paced feed drops a client that fell behind, a fast one waits for it."""
        while client.alive:
            try:
                client.queue.put_nowait(frame)
                return
            except asyncio.QueueFull:
                if self.source.paced:
                    self._drop(client, "slow consumer")
                    return
                await asyncio.sleep(0.002)
