"""The ingestion service against the real broker and the exchange simulator on 127.0.0.1.

Every test checks the same promise from a different angle: each trade id of each symbol ends up
in the trades topic, keyed by symbol, timestamped with its trade time, with the value the
exchange sent; bad frames end up in the DLQ with a reason; nothing is lost silently.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from crypto_platform.core import progress
from crypto_platform.core.simulation import DEFAULT_PROFILES, MarketSimulation
from crypto_platform.core.trades import TradeValidationError, parse_trade_frame
from crypto_platform.ingest.exchange_sim import ExchangeSimulator, Faults
from crypto_platform.ingest.replay import load_recordings
from crypto_platform.ingest.service import IngestService
from crypto_platform.ingest.sim_sources import ReplaySource, SimulatedSource, wall_ms
from crypto_platform_tests.test_ingest.conftest import (
    Topics,
    assert_every_trade_exactly_as_sent,
    delivered_through,
    make_config,
    read_topic,
    running,
    trades_by_id,
    wait_until,
)

pytestmark = pytest.mark.kafka

BTC_2024 = "btcusdt_2024-12-31/BTCUSDT-trades-2024-12-31_00-00_00-01.csv"
BTC_2025_HEAD = "btcusdt_2025-01-02/BTCUSDT-trades-2025-01-02.head32.csv"
START = 1_764_072_000_000  # 2025-11-25 12:00 UTC
GAP_LINE = re.compile(r"gap filled: (\w+) ids (\d+)-(\d+), (\d+) trades over REST")


def _last_ids(trades: list) -> dict[str, int]:
    last: dict[str, int] = {}
    for trade in trades:
        last[trade.symbol] = max(last.get(trade.symbol, 0), trade.trade_id)
    return last


@pytest.mark.parametrize("recording", [BTC_2024, BTC_2025_HEAD])
def test_replayed_real_trades_arrive_exactly_as_sent(
    bootstrap: str, topics: Topics, shared_binance: Path, recording: str
) -> None:
    recorded = load_recordings([shared_binance / recording])
    with ExchangeSimulator(ReplaySource(recorded, speed=None), record=True) as sim:
        service = IngestService(make_config(bootstrap, topics, sim, ["btcusdt"]))
        with running(service):
            expected = [r.trade for r in recorded]
            wait_until(lambda: delivered_through(service, _last_ids(expected)), 60, "delivery")
    assert len(expected) in (4212, 32)
    assert_every_trade_exactly_as_sent(read_topic(bootstrap, topics.trades), expected, sim)
    assert read_topic(bootstrap, topics.dlq) == []


@pytest.mark.parametrize(("endpoint", "max_streams"), [("combined", 2), ("raw", 1)])
def test_a_seeded_simulation_over_several_connections_arrives_exactly_as_sent(
    bootstrap: str, topics: Topics, endpoint: str, max_streams: int
) -> None:
    simulation = MarketSimulation(["btcusdt", "ethusdt", "solusdt"], seed=21, start_ms=START)
    end = START + 120_000
    expected = list(simulation.trades_between(START, end))
    source = SimulatedSource(simulation, speed=None, end_ms=end)
    connections = 2 if max_streams == 2 else 3
    with ExchangeSimulator(source, record=True, wait_for_clients=connections) as sim:
        config = make_config(
            bootstrap, topics, sim, simulation.symbols, endpoint=endpoint, max_streams=max_streams
        )
        service = IngestService(config)
        assert len(service.slots) == connections
        with running(service):
            wait_until(lambda: delivered_through(service, _last_ids(expected)), 90, "delivery")
    assert len(expected) > 3000
    assert_every_trade_exactly_as_sent(read_topic(bootstrap, topics.trades), expected, sim)


def test_drops_mid_stream_are_filled_over_rest_and_each_gap_is_logged(
    bootstrap: str, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    simulation = MarketSimulation(["btcusdt", "ethusdt"], seed=4, start_ms=START)
    end = START + 300_000
    expected = list(simulation.trades_between(START, end))
    faults = Faults(drop_after_messages=1500, max_drops=4)
    source = SimulatedSource(simulation, speed=30.0, end_ms=end)  # ~1000 trades/s, 10 s
    caplog.set_level(logging.INFO, logger="crypto_platform.ingest")
    with ExchangeSimulator(source, faults, record=True) as sim:
        service = IngestService(make_config(bootstrap, topics, sim, simulation.symbols))
        with running(service):
            wait_until(lambda: delivered_through(service, _last_ids(expected)), 120, "delivery")
        # four injected (a client lagging on a loaded machine may also be cut as too slow)
        assert sim.stats.drops >= 4 and service.stats.disconnects >= 4
    messages = read_topic(bootstrap, topics.trades)
    sources = assert_every_trade_exactly_as_sent(messages, expected, sim)
    assert sources["rest"] > 0

    logged = [m.groups() for r in caplog.records if (m := GAP_LINE.search(r.getMessage()))]
    assert len(logged) >= 4  # every drop left a gap, filled and logged
    rest_ids = sorted(
        (json.loads(m.value())["s"], json.loads(m.value())["t"])
        for m in messages
        if dict(m.headers()).get("source") == b"rest"
    )
    for symbol, trade_id in rest_ids:  # the log names each gap that REST filled
        assert any(s == symbol and int(a) <= trade_id <= int(b) for s, a, b, _n in logged), (
            f"{symbol} {trade_id} came from REST but no gap line names it"
        )
    assert sum(int(n) for *_x, n in logged) == len(rest_ids)
    assert [g["trades"] for g in service.gaps_log] == [int(n) for *_x, n in logged]


def test_malformed_frames_go_to_the_dlq_with_reasons_and_the_service_keeps_going(
    bootstrap: str, topics: Topics, shared_binance: Path
) -> None:
    recorded = load_recordings([shared_binance / BTC_2024])
    faults = Faults(malformed_every=97)
    with ExchangeSimulator(ReplaySource(recorded, speed=None), faults, record=True) as sim:
        service = IngestService(make_config(bootstrap, topics, sim, ["btcusdt"]))
        with running(service):
            expected = [r.trade for r in recorded]
            wait_until(lambda: delivered_through(service, _last_ids(expected)), 60, "delivery")
            wait_until(
                lambda: (
                    sum(service.stats.dead_letters.values())
                    == sum(sim.stats.malformed_sent.values())
                ),
                30,
                "every malformed frame counted",
            )
    assert_every_trade_exactly_as_sent(read_topic(bootstrap, topics.trades), expected, sim)
    dead = read_topic(bootstrap, topics.dlq)
    reasons = Counter(dict(m.headers())["reason"].decode() for m in dead)
    assert reasons == sim.stats.malformed_sent and len(reasons) == 6 and len(dead) >= 40
    for msg in dead:  # the raw frame is kept, and it really fails for the reason given
        with pytest.raises(TradeValidationError) as info:
            parse_trade_frame(msg.value(), frozenset({"BTCUSDT"}))
        assert info.value.reason == dict(msg.headers())["reason"].decode()
    assert service.stats.dead_letters == sim.stats.malformed_sent


def _progress_messages(bootstrap: str, topic: str) -> list:
    return [progress.decode(m.value()) for m in read_topic(bootstrap, topic)]


class _Recording(IngestService):
    """The real service, noting what Kafka acknowledged when each progress mark went out."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.acked: set[tuple[str, int]] = set()
        self.mark_checks: list[tuple[str, int, frozenset]] = []

    def _trade_delivered(self, symbol, trade_id, time_ms, err) -> None:
        super()._trade_delivered(symbol, trade_id, time_ms, err)
        if err is None:
            self.acked.add((symbol, trade_id))

    def _produce_progress(self, symbol, value) -> None:
        message = progress.decode(value)
        if isinstance(message, progress.ProgressMark):
            self.mark_checks.append((symbol, message.complete_through_ms, frozenset(self.acked)))
        super()._produce_progress(symbol, value)


@pytest.mark.slow
def test_progress_marks_advance_for_quiet_symbols_and_never_claim_undelivered_trades(
    bootstrap: str, topics: Topics
) -> None:
    """Real time, one busy and one very quiet symbol, two drops: each published mark only
    covers trades Kafka had acknowledged at that moment, and the quiet symbol keeps moving."""
    start = wall_ms()
    quiet = replace(DEFAULT_PROFILES["BNBUSDT"], trades_per_second=0.05)  # one per 20 s
    simulation = MarketSimulation(
        ["btcusdt", "bnbusdt"], seed=8, start_ms=start, profiles={"BNBUSDT": quiet}
    )
    faults = Faults(drop_after_seconds=2.0, max_drops=2)
    with ExchangeSimulator(SimulatedSource(simulation), faults) as sim:
        config = make_config(bootstrap, topics, sim, simulation.symbols, clock_margin_ms=1500)
        service = _Recording(config)
        with running(service):
            wait_until(lambda: sim.stats.drops == 2, 30, "two drops")
            seen = len(service.mark_checks)
            wait_until(lambda: len(service.mark_checks) >= seen + 8, 30, "marks after the drops")
        published = list(simulation.trades_between(start, wall_ms()))
    times = {(t.symbol, t.trade_id): t.trade_time_ms for t in published}
    for symbol, mark, acked in service.mark_checks:
        owed = {key for key, time_ms in times.items() if key[0] == symbol and time_ms <= mark}
        assert owed <= acked, f"{symbol} mark {mark} claims {sorted(owed - acked)[:5]}"
    marks = [
        m
        for m in _progress_messages(bootstrap, topics.progress)
        if isinstance(m, progress.ProgressMark)
    ]
    quiet_marks = [m.complete_through_ms for m in marks if m.symbol == "BNBUSDT"]
    assert quiet_marks == sorted(quiet_marks) and len(set(quiet_marks)) >= 8
    assert quiet_marks[-1] > start + 2_000  # it moved with the clock, not with trades


@pytest.mark.slow
def test_a_stalled_connection_is_declared_dead_and_late_trades_are_announced(
    bootstrap: str, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    """The exchange goes silent (no trades, no pings): after the silence timeout the service
    reconnects and fills the stall over REST. The clock kept the marks moving during the stall,
    so the filled trades are late for minutes already announced: a late notice says so."""
    start = wall_ms()
    simulation = MarketSimulation(["btcusdt"], seed=9, start_ms=start, rate_scale=2.0)
    faults = Faults(stall_after_messages=150, stall_seconds=5.0, max_drops=1)
    caplog.set_level(logging.INFO, logger="crypto_platform.ingest")
    with ExchangeSimulator(
        SimulatedSource(simulation),
        faults,
        ping_interval_s=0.5,
        record=True,
    ) as sim:
        config = make_config(
            bootstrap, topics, sim, ["btcusdt"], silence_s=1.5, clock_margin_ms=100
        )
        service = IngestService(config)
        with running(service):
            wait_until(lambda: service.stats.symbols["BTCUSDT"].late_notices > 0, 40, "late")
            now = wall_ms()
            expected = list(simulation.trades_between(start, now - 500))
            wait_until(lambda: delivered_through(service, _last_ids(expected)), 30, "delivery")
    assert sim.stats.stalls == 1
    assert any("silent for 2s" in r.getMessage() for r in caplog.records)
    found = trades_by_id(read_topic(bootstrap, topics.trades))
    assert {(t.symbol, t.trade_id) for t in expected} <= set(found)
    rest_filled = [
        t
        for t in expected
        if dict(found[(t.symbol, t.trade_id)][0].headers()).get("source") == b"rest"
    ]
    notices = [
        m
        for m in _progress_messages(bootstrap, topics.progress)
        if isinstance(m, progress.LateNotice)
    ]
    assert rest_filled and notices
    late_minutes = {minute for n in notices for minute in n.minutes_ms}
    late_ids = {i for n in notices for i in range(n.trade_ids[0], n.trade_ids[1] + 1)}
    assert {progress.minute_floor_ms(t.trade_time_ms) for t in rest_filled} >= late_minutes
    assert late_ids & {t.trade_id for t in rest_filled}


def test_rolling_over_before_the_exchange_cuts_leaves_no_gap(
    bootstrap: str, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    """The exchange cuts every connection after 3 s (Binance: 24 h); the service opens a new
    connection after 1.5 s and closes the old one once the new one is open: no drop, no gap."""
    start = wall_ms()
    simulation = MarketSimulation(["btcusdt", "ethusdt"], seed=10, start_ms=start, rate_scale=2)
    faults = Faults(drop_after_seconds=3.0)
    caplog.set_level(logging.INFO, logger="crypto_platform.ingest")
    with ExchangeSimulator(SimulatedSource(simulation), faults, record=True) as sim:
        service = IngestService(
            make_config(bootstrap, topics, sim, ["btcusdt", "ethusdt"], rollover_s=1.5)
        )
        with running(service):
            wait_until(lambda: sim.stats.connections_opened >= 4, 30, "three rollovers")
            expected = list(simulation.trades_between(start, wall_ms() - 2_000))
            wait_until(lambda: delivered_through(service, _last_ids(expected)), 30, "delivery")
        assert sim.stats.drops == 0 and service.stats.disconnects == 0
    assert sum("rolled over" in r.getMessage() for r in caplog.records) >= 3
    assert not any(GAP_LINE.search(r.getMessage()) for r in caplog.records)
    found = trades_by_id(read_topic(bootstrap, topics.trades))
    assert {(t.symbol, t.trade_id) for t in expected} <= set(found)
    assert all(
        dict(found[(t.symbol, t.trade_id)][0].headers()).get("source") is None for t in expected
    )


def test_a_restart_resumes_from_the_end_of_the_topic(
    bootstrap: str, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    simulation = MarketSimulation(["btcusdt", "ethusdt"], seed=12, start_ms=START)
    end = START + 180_000
    expected = list(simulation.trades_between(START, end))
    caplog.set_level(logging.INFO, logger="crypto_platform.ingest")
    source = SimulatedSource(simulation, speed=None, end_ms=end)
    with ExchangeSimulator(source, record=True) as sim:
        first = IngestService(make_config(bootstrap, topics, sim, simulation.symbols))
        with running(first):
            wait_until(
                lambda: sum(s.delivered for s in first.stats.symbols.values()) > 1000, 60, "1000"
            )
        wait_until(lambda: sim.finished, 60, "the exchange to move on")
        second = IngestService(make_config(bootstrap, topics, sim, simulation.symbols))
        with running(second):
            wait_until(lambda: delivered_through(second, _last_ids(expected)), 60, "delivery")
    resumed = [
        r.getMessage() for r in caplog.records if "resuming after trade id" in r.getMessage()
    ]
    assert len(resumed) == 2
    assert any(
        "restart" in r.getMessage() and GAP_LINE.search(r.getMessage()) for r in caplog.records
    )
    assert_every_trade_exactly_as_sent(read_topic(bootstrap, topics.trades), expected, sim)


def test_a_hole_in_the_exchange_history_is_reported_not_hidden(
    bootstrap: str, topics: Topics, shared_binance: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two real BTCUSDT recordings two days apart: the ids between them exist nowhere, so the
    service reports them lost (ERROR log, a DLQ record), then carries on with the second day."""
    recorded = load_recordings([shared_binance / BTC_2024, shared_binance / BTC_2025_HEAD])
    with ExchangeSimulator(ReplaySource(recorded, speed=None), record=True) as sim:
        service = IngestService(make_config(bootstrap, topics, sim, ["btcusdt"]))
        with running(service):
            expected = [r.trade for r in recorded]
            wait_until(lambda: delivered_through(service, _last_ids(expected)), 60, "delivery")
    assert_every_trade_exactly_as_sent(read_topic(bootstrap, topics.trades), expected, sim)
    first_lost, last_lost = 4356591751, 4361451941
    assert service.stats.symbols["BTCUSDT"].ids_lost == last_lost - first_lost + 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"gap NOT filled: BTCUSDT ids {first_lost}-{last_lost}" in e for e in errors)
    dead = read_topic(bootstrap, topics.dlq)
    assert [dict(m.headers())["reason"] for m in dead] == [b"unfilled_gap"]
    assert json.loads(dead[0].value())["first_id"] == first_lost
