"""The ingestion service: Binance trade streams into Kafka, with every trade id accounted for.

Threads: one per WebSocket connection (reading frames), one REST gap filler, and the main loop,
which owns all state: connection threads and the filler only put events on one queue. The main
loop validates each frame, decides by trade id whether to produce it, produces it (key = symbol,
timestamp = trade time ``T``, value = the event as received, header ``received_at_ms``), sends
bad frames to the DLQ with a ``reason`` header, and once a tick: reconnects (exponential backoff
with jitter) or rolls connections over before Binance's 24-hour cut, schedules gap fills,
publishes progress marks and late notices, and writes the status line.

Nothing lost:

- start: the end of the ``trades`` topic gives each symbol's last ids (:mod:`..kafka.tail`),
  so a restart or crash of the service leaves no hole; a symbol never seen starts with the
  stream (or right after the exchange's latest trade, if the stream starts later than that);
- after every (re)connect, and on any jump in ids, the missing ids are fetched over REST
  (:mod:`.fills`); each gap and its fill is logged and counted;
- ids the exchange does not have, or a gap REST cannot fill within ``gap_give_up_s``, are
  reported (ERROR log, DLQ record with reason ``unfilled_gap``) and only then skipped;
- Kafka: the producer is idempotent with acks=all and buffers while the broker is away; a
  message not acknowledged within ``delivery_timeout_s`` stops the service with
  :class:`IngestError` (the CLI exits 1) instead of dropping anything silently. Duplicates
  (after a restart) carry the same key and trade id, for consumers to drop.

Progress, ``complete_through_ms`` per symbol (every ``progress_interval_s``): the minimum of

1. the symbol's connection's estimated exchange clock, ``max(E - local receive time)`` over
   the events seen (and REST ``serverTime``) plus local monotonic time, taken at the local time
   up to which every received frame has been processed, minus ``clock_margin_ms``;
2. one ms before the trade time of the last contiguous id, while ids are missing or a
   catch-up after a (re)connect has not finished;
3. one ms before the oldest trade Kafka has not acknowledged.

It never moves while the connection is down and never goes back. Trades acknowledged at or
below a mark already published (a gap filled late) produce a ``late`` notice for their minutes.
See :mod:`.marks` for the arithmetic and :mod:`.progress_out` for the publishing.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from functools import partial
from typing import Any

from crypto_platform.core.topics import REASON_HEADER, RECEIVED_AT_HEADER
from crypto_platform.core.trades import (
    Trade,
    TradeValidationError,
    load_frame,
    parse_trade_event,
    unwrap_stream_envelope,
)
from crypto_platform.ingest.binance import StreamSlot, stream_urls
from crypto_platform.ingest.config import IngestConfig
from crypto_platform.ingest.fills import GapFills
from crypto_platform.ingest.frames import decode_plain, inner_event_bytes
from crypto_platform.ingest.gaps import BinanceRest, GapFiller
from crypto_platform.ingest.ledger import SymbolLedger, Verdict
from crypto_platform.ingest.marks import ExchangeClock, SymbolMarks
from crypto_platform.ingest.progress_out import ProgressPublisher
from crypto_platform.ingest.stats import IngestStats, status_lines
from crypto_platform.kafka.producer import KafkaProducer
from crypto_platform.kafka.tail import read_tail

__all__ = ["IngestConfig", "IngestError", "IngestService"]

log = logging.getLogger(__name__)

TICK_S = 0.1
# While Kafka holds unacknowledged trades, wait at most this long for frames before serving its
# delivery reports: acknowledgements (and the latency measured at them) do not sit out a tick.
REPORT_WAIT_S = 0.002
BATCH = 2_000  # frames handled between producer polls
SHUTDOWN_FLUSH_S = 10.0
SOURCE_HEADER = "source"  # b"rest" on trades that came from a REST gap fill


class IngestError(RuntimeError):
    """The service cannot go on without losing trades; the message says why."""


def _mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class IngestService:
    """Long-running: :meth:`run` until :meth:`request_stop` (SIGTERM) or an unrecoverable error."""

    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.symbols = list(config.symbols)
        self.symbol_set = frozenset(self.symbols)
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.producer = KafkaProducer(config.bootstrap_servers, config.delivery_timeout_s)
        urls = stream_urls(config.ws_url, self.symbols, config.max_streams, config.endpoint)
        self.slots = [StreamSlot(i, url, symbols) for i, (url, symbols) in enumerate(urls)]
        self.slot_of = {s: slot for slot in self.slots for s in slot.symbols}
        self.clocks = {slot.index: ExchangeClock() for slot in self.slots}
        self.ledgers: dict[str, SymbolLedger] = {s: SymbolLedger(s) for s in self.symbols}
        self.marks = {s: SymbolMarks() for s in self.symbols}
        self.stats = IngestStats.for_symbols(self.symbols)
        self.filler = GapFiller(BinanceRest(config.rest_url), self.events.put)
        backoff = (config.reconnect_min_s, config.reconnect_max_s)
        self.fills = GapFills(
            self.ledgers,
            self.slot_of,
            self.filler,
            self._accept,
            self._dead_letter,
            self.stats,
            backoff,
            config.gap_give_up_s,
        )
        self.progress = ProgressPublisher(
            self.slot_of,
            self.clocks,
            self.ledgers,
            self.marks,
            self.stats,
            self._produce_progress,
            config.clock_margin_ms,
            lambda: self.processed_through_ms,
        )
        self.processed_through_ms = _mono_ms()  # every frame received before this is handled
        self._stop = threading.Event()
        self._failure: str | None = None
        self._rng = random.Random()
        self._started = self._last_stats = time.monotonic()
        self._next_progress = self._next_stats = 0.0

    @property
    def gaps_log(self) -> list[dict[str, Any]]:
        return self.fills.log

    # -- lifecycle ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish: close connections, flush Kafka, return (thread-safe)."""
        self._stop.set()

    def run(self) -> None:
        """Run until stopped; raises :class:`IngestError` when trades could not be delivered."""
        self._resume_from_topic()
        self.filler.start()
        for slot in self.slots:
            slot.connect(self.config.silence_s, self.events.put)
        self._next_stats = time.monotonic() + self.config.stats_interval_s
        try:
            while not self._stop.is_set():
                self._drain(REPORT_WAIT_S if len(self.producer) else TICK_S)
                self.producer.poll(0)
                self._check_delivery()
                self._tick(time.monotonic())
        finally:
            self._shutdown()

    def _resume_from_topic(self) -> None:
        topic = self.config.trades_topic
        tails = read_tail(self.config.bootstrap_servers, topic, self.symbols)
        for symbol in self.symbols:
            if symbol not in tails:
                self.fills.set_cause([symbol], "first start")
                log.info("%s: no trades in %s yet; starting with the stream", symbol, topic)
                continue
            self.ledgers[symbol] = SymbolLedger.from_tail(symbol, tails[symbol].times_by_id)
            self.fills.set_cause([symbol], "restart")
            log.info(
                "%s: resuming after trade id %s (the end of %s)",
                symbol,
                (self.ledgers[symbol].next_id or 1) - 1,
                topic,
            )

    def _shutdown(self) -> None:
        for slot in self.slots:
            slot.close()
        for slot in self.slots:
            for connection in list(slot.connections.values()):
                connection.thread.join(2.0)
        self.filler.close()
        self._drain(0.0, until_empty=True)
        remaining = self.producer.flush(SHUTDOWN_FLUSH_S)
        self.progress.publish_late()  # acknowledgements during the flush may reopen minutes
        remaining = self.producer.flush(SHUTDOWN_FLUSH_S if remaining == 0 else 0.0)
        self._report_stats(final=True)
        if remaining and self._failure is None:
            self._failure = (
                f"{remaining} message(s) were not acknowledged by Kafka within "
                f"{SHUTDOWN_FLUSH_S:.0f}s of stopping; the next start refills them from the "
                "end of the topic and REST"
            )
        if self._failure is not None:
            raise IngestError(self._failure)
        log.info("ingestion stopped; every trade handed to Kafka was acknowledged")

    def _check_delivery(self) -> None:
        if self.producer.fatal_error is not None and self._failure is None:
            self._failure = f"the Kafka producer failed: {self.producer.fatal_error}"
        if self._failure is not None:
            self._stop.set()

    # -- the event queue ---------------------------------------------------------------------

    def _drain(self, wait_s: float, until_empty: bool = False) -> None:
        try:
            item = self.events.get(timeout=wait_s) if wait_s > 0 else self.events.get_nowait()
        except queue.Empty:
            self.processed_through_ms = _mono_ms()
            return
        budget = BATCH if not until_empty else 2**62
        while True:
            budget -= self._handle(item)
            if budget <= 0:
                return
            checked_at = _mono_ms()
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                self.processed_through_ms = checked_at
                return

    def _handle(self, item: tuple[Any, ...]) -> int:
        """Handle one event from the queue; returns how many frames it held (at least 1)."""
        kind = item[0]
        if kind == "frames":
            _kind, slot, local_ms, wall_ms, frames = item
            self.processed_through_ms = max(self.processed_through_ms, local_ms)
            for data in frames:
                self._on_frame(slot, local_ms, wall_ms, data)
            return len(frames) or 1
        if kind == "page":
            self.fills.on_page(*item[1:])
        elif kind == "opened":
            self._on_opened(item[1], item[2])
        elif kind == "lost":
            self._on_lost(*item[1:])
        elif kind == "clock":
            self.clocks[item[1]].observe(item[2], item[3])
        elif kind == "page_error":
            self.fills.on_page_error(*item[1:])
        return 1

    # -- frames and trades -------------------------------------------------------------------

    def _on_frame(self, slot: int, local_ms: int, wall_ms: int, data: bytes) -> None:
        plain = decode_plain(data, self.symbol_set, wall_ms)
        if plain is None:
            self._on_unusual_frame(slot, local_ms, wall_ms, data)
            return
        (symbol, trade_id, trade_time_ms, event_time_ms), value = plain
        self.clocks[slot].observe(event_time_ms, local_ms)
        self._produce_trade(symbol, trade_id, trade_time_ms, value, wall_ms, False)

    def _on_unusual_frame(self, slot: int, local_ms: int, wall_ms: int, data: bytes) -> None:
        """The exact path: any frame :func:`decode_plain` does not vouch for, valid or not."""
        try:
            message = load_frame(data)
        except ValueError as exc:
            self._dead_letter(data, "malformed_json", str(exc), wall_ms)
            return
        if not isinstance(message, dict):
            self._dead_letter(data, "not_an_object", f"got {str(message)[:80]}", wall_ms)
            return
        event = unwrap_stream_envelope(message)
        try:
            trade = parse_trade_event(event, self.symbol_set, now_ms=wall_ms)
        except TradeValidationError as exc:
            self._dead_letter(data, exc.reason, exc.detail, wall_ms, event.get("s"))
            return
        self.clocks[slot].observe(trade.event_time_ms, local_ms)
        self._accept(trade, inner_event_bytes(data, message, event), wall_ms, False)

    def _accept(self, trade: Trade, value: bytes, received_ms: int, from_rest: bool) -> bool:
        """Produce the trade unless this process already did; True if produced."""
        return self._produce_trade(
            trade.symbol, trade.trade_id, trade.trade_time_ms, value, received_ms, from_rest
        )

    def _produce_trade(
        self,
        symbol: str,
        trade_id: int,
        time_ms: int,
        value: bytes,
        received_ms: int,
        from_rest: bool,
    ) -> bool:
        ledger = self.ledgers[symbol]
        had_gap = ledger.max_ahead is not None
        if ledger.accept(trade_id, time_ms) is Verdict.DUPLICATE:
            self.stats.symbols[symbol].duplicates += 1
            return False
        headers = [(RECEIVED_AT_HEADER, str(received_ms).encode())]
        if from_rest:
            headers.append((SOURCE_HEADER, b"rest"))
        self.producer.produce(
            self.config.trades_topic,
            value,
            key=symbol,
            timestamp_ms=time_ms,
            headers=headers,
            on_delivery=partial(self._trade_delivered, symbol, trade_id, time_ms),
        )
        self.marks[symbol].in_flight.add(trade_id, time_ms)
        self.stats.symbols[symbol].produced(time_ms, _wall_ms(), from_rest)
        if not from_rest:
            self.fills.stream_continues(symbol, had_gap, trade_id)
        return True

    def _trade_delivered(self, symbol: str, trade_id: int, time_ms: int, err: str | None) -> None:
        if err is not None:
            self._failure = self._failure or (
                f"Kafka did not acknowledge trade {symbol} {trade_id} within "
                f"{self.config.delivery_timeout_s:.0f}s ({err}); stopping so that nothing is "
                "dropped silently: the next start refills from the end of the topic"
            )
            return
        self.marks[symbol].acknowledged(trade_id, time_ms)
        self.stats.symbols[symbol].delivered += 1

    def _other_delivered(self, what: str, err: str | None) -> None:
        if err is not None:
            self._failure = self._failure or f"Kafka did not acknowledge {what}: {err}"

    def _dead_letter(
        self, raw: bytes, reason: str, detail: str, wall_ms: int, symbol: Any = None
    ) -> None:
        symbol = symbol if isinstance(symbol, str) and symbol in self.stats.symbols else None
        headers = [
            (REASON_HEADER, reason.encode()),
            ("detail", detail[:300].encode(errors="replace")),
            (RECEIVED_AT_HEADER, str(wall_ms).encode()),
        ]
        on_delivery = partial(self._other_delivered, "a dead letter")
        self.producer.produce(
            self.config.dlq_topic, raw, key=symbol, headers=headers, on_delivery=on_delivery
        )
        if self.stats.dead_letters[reason] == 0:
            log.warning(
                "dead letter (%s): %s; counted in the status line from now on", reason, detail
            )
        self.stats.dead_letters[reason] += 1
        if symbol is not None:
            self.stats.symbols[symbol].dead_letters += 1

    def _produce_progress(self, symbol: str, value: bytes) -> None:
        on_delivery = partial(self._other_delivered, "a progress message")
        self.producer.produce(
            self.config.progress_topic, value, key=symbol, on_delivery=on_delivery
        )

    # -- connections -------------------------------------------------------------------------

    def _on_opened(self, slot_index: int, generation: int) -> None:
        slot = self.slots[slot_index]
        self.stats.connects += 1
        if slot.opened(generation, time.monotonic()):  # it was down: check what was missed
            log.info("connected: %s", slot.url)
            self.fills.connected(slot.symbols, time.monotonic())

    def _on_lost(self, slot_index: int, generation: int, reason: str, frames: int) -> None:
        slot: StreamSlot = self.slots[slot_index]
        was_live = generation in slot.live
        low, high = self.config.reconnect_min_s, self.config.reconnect_max_s
        delay = slot.lost(generation, time.monotonic(), low, high, self._rng)
        if delay == 0.0 or self._stop.is_set():  # retired after a rollover, or stopping
            return
        self.stats.disconnects += 1
        log.warning(
            "%s %s after %d frames (%s); retrying in %.1fs",
            "lost" if was_live else "could not connect",
            slot.url,
            frames,
            reason,
            delay,
        )
        if not slot.is_live:
            self.fills.set_cause(slot.symbols, "reconnect")

    # -- the tick ----------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        for slot in self.slots:
            if slot.needs_connection(now, self.config.rollover_s) and not self._stop.is_set():
                slot.connect(self.config.silence_s, self.events.put)
        self.fills.schedule(now)
        self.fills.give_up_stale(now)
        if now >= self._next_progress:
            self._next_progress = now + self.config.progress_interval_s
            self.progress.publish_late()
            self.progress.publish_marks(now)
        if now >= self._next_stats:
            self._next_stats = now + self.config.stats_interval_s
            self._report_stats()

    def _report_stats(self, final: bool = False) -> None:
        now = time.monotonic()
        elapsed, self._last_stats = max(1e-3, now - self._last_stats), now
        snapshot = self.stats.snapshot(
            elapsed,
            final=final,
            queue_depth=self.events.qsize(),
            kafka_buffered=len(self.producer),
            uptime_s=round(now - self._started, 1),
            gaps=self.gaps_log[-50:],
        )
        for line in status_lines(snapshot):
            log.info(line)
        if self.config.stats_json is not None:
            self.config.stats_json.write(json.dumps(snapshot) + "\n")
            self.config.stats_json.flush()
