"""Binance trade-stream connections: URLs, reconnects with backoff, silence, the 24-hour cut.

Binance serves up to 1024 streams per connection, sends a ping every 20 s (a pong is expected
within a minute) and cuts every connection after 24 hours. Here:

- symbols are split into *slots* of at most ``max_streams`` streams, one connection URL each;
- each connection attempt (a *generation* of its slot) is a thread that reads frames with
  websocket-client's low-level API, answers pings (``recv_data_frame`` does), and treats a socket
  that stays silent for ``silence_s`` (no frame at all, pings included) as dead;
- the thread only reports: ``opened``, text frames (a list per read, with the receive time),
  ``lost``. The service's main loop decides when to reconnect (exponential backoff with jitter)
  and when to roll over (a new generation is opened *before* the old one is closed, so nothing
  is missed).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websocket

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
READ_AHEAD_BYTES = 65_536
RESET_BACKOFF_AFTER_S = 10.0  # a connection that lived this long resets the backoff
TEXT_FINAL = 0x81  # first header byte of an unfragmented text frame: FIN, no RSV bits, opcode 1
LENGTH_16_BIT = 126  # second header byte: no mask, a 16-bit length follows

Emit = Callable[[tuple[Any, ...]], None]


def stream_urls(
    ws_base_url: str, symbols: list[str], max_streams: int, endpoint: str = "combined"
) -> list[tuple[str, list[str]]]:
    """(url, symbols) per connection: ``/stream?streams=a@trade/b@trade`` or ``/ws/a@trade/...``."""
    base = ws_base_url.rstrip("/")
    lowered = [s.lower() for s in symbols]
    urls = []
    for start in range(0, len(lowered), max_streams):
        chunk = lowered[start : start + max_streams]
        streams = "/".join(f"{s}@trade" for s in chunk)
        path = f"/stream?streams={streams}" if endpoint == "combined" else f"/ws/{streams}"
        urls.append((base + path, [s.upper() for s in chunk]))
    return urls


def backoff_delay(attempt: int, low_s: float, high_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(high, low * 2^attempt)."""
    ceiling = min(high_s, low_s * 2 ** min(attempt, 30))
    return rng.uniform(ceiling / 2, ceiling)


class ReadAheadWebSocket(websocket.WebSocket):
    """websocket-client reads each frame header and body with separate small ``recv`` calls;
    reading ahead into a buffer turns those into one system call per 64 KiB.

    :meth:`recv_texts` also cuts complete unfragmented text frames straight out of that buffer:
    websocket-client's frame parsing costs a few microseconds of Python per frame, and holds the
    GIL the main loop needs. Anything else (control frames, fragments, a masked or 64-bit-length
    frame, a frame not fully read yet) goes through websocket-client as before.
    """

    _buffer = b""
    _position = 0

    def _recv(self, bufsize: int) -> bytes:
        if self._position >= len(self._buffer):
            self._buffer, self._position = super()._recv(READ_AHEAD_BYTES), 0
        start, self._position = self._position, min(self._position + bufsize, len(self._buffer))
        return self._buffer[start : self._position]

    def recv_texts(self) -> tuple[int, list[bytes]]:
        """The next text messages, ``(OPCODE_TEXT, [payload, ...])`` in order, or another frame's
        opcode with ``[]`` (pings are answered, as by ``recv_data_frame``). Blocks for one frame
        at most when nothing complete is buffered."""
        texts = self._buffered_texts()
        if texts:
            return websocket.ABNF.OPCODE_TEXT, texts
        opcode, frame = self.recv_data_frame(control_frame=True)
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return opcode, []
        return opcode, [frame.data, *self._buffered_texts()]

    def _buffered_texts(self) -> list[bytes]:
        """Complete final text frames (no mask, length < 65536) at the front of the buffer."""
        if (
            self.frame_buffer.header is not None  # websocket-client is inside a frame
            or self.frame_buffer.recv_buffer
            or self.cont_frame.recving_frames is not None  # or inside a fragmented message
        ):
            return []
        buffer, position, end = self._buffer, self._position, len(self._buffer)
        texts = []
        while position + 2 <= end and buffer[position] == TEXT_FINAL:
            length, start = buffer[position + 1], position + 2
            if length == LENGTH_16_BIT:
                length, start = int.from_bytes(buffer[start : start + 2], "big"), start + 2
            elif length > LENGTH_16_BIT:  # 64-bit length, or masked: websocket-client's job
                break
            if start + length > end:
                break
            texts.append(buffer[start : start + length])
            position = start + length
        self._position = position
        return texts


class StreamConnection:
    """One connection attempt; its thread emits ("opened"|"frames"|"lost", slot, ...)."""

    def __init__(self, url: str, slot: int, generation: int, silence_s: float, emit: Emit) -> None:
        self.url = url
        self.slot = slot
        self.generation = generation
        self.silence_s = silence_s
        self._emit = emit
        self.frames = 0
        self._ws: websocket.WebSocket | None = None
        self._closing = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"ws-{slot}.{generation}", daemon=True
        )

    def start(self) -> StreamConnection:
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop reading; wakes a blocked ``recv`` by shutting the socket down."""
        self._closing.set()
        ws = self._ws
        if ws is not None and ws.sock is not None:
            with contextlib.suppress(OSError):
                ws.sock.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        reason = "closed"
        try:
            self._ws = websocket.create_connection(
                self.url,
                timeout=CONNECT_TIMEOUT_S,
                enable_multithread=True,
                class_=ReadAheadWebSocket,
                skip_utf8_validation=True,  # 3x faster; json.loads rejects bad UTF-8 (-> DLQ)
            )
            if self._closing.is_set():
                return
            self._ws.settimeout(self.silence_s)
            self._emit(("opened", self.slot, self.generation))
            reason = self._read()
        except websocket.WebSocketTimeoutException:
            reason = f"silent for {self.silence_s:.0f}s"
        except (OSError, websocket.WebSocketException) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            if self._ws is not None:
                with contextlib.suppress(Exception):
                    self._ws.close(timeout=0.5)
            if self._closing.is_set():
                reason = "closed by the service"
            self._emit(("lost", self.slot, self.generation, reason, self.frames))

    def _read(self) -> str:
        assert isinstance(self._ws, ReadAheadWebSocket)
        while not self._closing.is_set():
            opcode, texts = self._ws.recv_texts()
            if texts:
                self.frames += len(texts)
                local_ms = time.monotonic_ns() // 1_000_000
                self._emit(("frames", self.slot, local_ms, time.time_ns() // 1_000_000, texts))
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                return "closed by the server"
            else:  # ping/pong: the connection is alive (pongs are sent by recv_data_frame)
                self._emit(("alive", self.slot, self.generation))
        return "closed by the service"


@dataclass
class StreamSlot:
    """One connection URL and the generations serving it; driven by the service's main loop."""

    index: int
    url: str
    symbols: list[str]
    connections: dict[int, StreamConnection] = field(default_factory=dict)
    live: dict[int, float] = field(default_factory=dict)  # open generation -> opened (monotonic)
    retired: set[int] = field(default_factory=set)  # closed on purpose after a rollover
    generation: int = 0
    attempt: int = 0
    retry_at: float = 0.0
    last_frame_at: float = 0.0

    @property
    def is_live(self) -> bool:
        return bool(self.live)

    def connect(self, silence_s: float, emit: Emit) -> None:
        self.generation += 1
        log.info("connecting %s (slot %d, generation %d)", self.url, self.index, self.generation)
        connection = StreamConnection(self.url, self.index, self.generation, silence_s, emit)
        self.connections[self.generation] = connection.start()

    def opened(self, generation: int, now: float) -> bool:
        """Record an open generation; close older ones (rollover); True if the slot was down."""
        was_down = not self.live
        self.live[generation] = now
        for older in [g for g in self.live if g < generation]:
            log.info("slot %d: rolled over to generation %d", self.index, generation)
            self.connections[older].close()
            del self.live[older]
            self.retired.add(older)
        return was_down

    def lost(
        self, generation: int, now: float, low_s: float, high_s: float, rng: random.Random
    ) -> float:
        """Forget a generation; schedule the next attempt; return the delay chosen (0 if none)."""
        opened_at = self.live.pop(generation, None)
        self.connections.pop(generation, None)
        if generation in self.retired:
            self.retired.discard(generation)
            return 0.0
        if opened_at is not None and now - opened_at >= RESET_BACKOFF_AFTER_S:
            self.attempt = 0
        delay = backoff_delay(self.attempt, low_s, high_s, rng)
        self.attempt += 1
        self.retry_at = now + delay
        return delay

    def needs_connection(self, now: float, rollover_s: float) -> bool:
        """No attempt under way, and either nothing is open or the newest is due to roll over."""
        pending = [g for g in self.connections if g not in self.live]
        if pending or now < self.retry_at:
            return False
        if not self.live:
            return True
        return now - max(self.live.values()) >= rollover_s

    def close(self) -> None:
        for connection in list(self.connections.values()):
            connection.close()
