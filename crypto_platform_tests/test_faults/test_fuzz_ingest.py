"""Property-based: arbitrary and near-valid frames sent by the exchange simulator to the running
ingestion service. Nothing escapes as an exception, every bad frame lands in the DLQ with the
reason the parser gives, in order and byte for byte, and the `trades` topic only ever holds
valid trades of the subscribed symbol.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.trades import TradeValidationError, parse_trade_frame
from crypto_platform.ingest.exchange_sim import ExchangeSimulator
from crypto_platform.ingest.service import IngestService
from crypto_platform.ingest.sim_sources import SimulatedSource, wall_ms
from crypto_platform.kafka import admin
from crypto_platform_tests.test_ingest.conftest import (
    Topics,
    make_config,
    read_topic,
    running,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

SYMBOLS = frozenset({"BTCUSDT"})
BAD_VALUES: dict[str, list[Any]] = {
    "e": ["aggTrade", "", None, 1, "TRADE"],
    "s": ["btcusdt", "ETHUSDT", "", None, 7, "BTC-USDT"],
    "t": ["1", 1.5, -1, True, None],
    "p": ["0", "-1", "NaN", "inf", "1e400", "abc", "1.123456789", "99999999999", 1.0, None],
    "q": ["0", "-0.1", "Infinity", "", "0.000000001", "10000000000", 2, None],
    "T": [0, 1000, "1754036957014", 10**18, -5, None, 1.5],
    "E": ["x", 10**18, 0, None],
    "m": ["true", 1, None, "false"],
}


def _valid_event(now_ms: int) -> dict[str, Any]:
    return {
        "e": "trade",
        "E": now_ms,
        "s": "BTCUSDT",
        "t": 5,
        "p": "114410.00000000",
        "q": "0.00010000",
        "T": now_ms,
        "m": True,
        "M": True,
    }


@st.composite
def near_valid_frame(draw: st.DrawFn) -> str:
    """A real-looking trade with one to three fields broken, wrapped or not in an envelope."""
    event = _valid_event(wall_ms())
    fields = draw(
        st.lists(st.sampled_from(sorted(BAD_VALUES)), min_size=1, max_size=3, unique=True)
    )
    for field in fields:
        value = draw(st.sampled_from(BAD_VALUES[field]))
        if value is None:
            event.pop(field)
        else:
            event[field] = value
    if draw(st.booleans()):
        return json.dumps({"stream": "btcusdt@trade", "data": event})
    return json.dumps(event)


ARBITRARY = st.one_of(
    st.text(max_size=120),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=12,
    ).map(json.dumps),
)
FRAMES = st.lists(st.one_of(near_valid_frame(), ARBITRARY), min_size=1, max_size=15)


def _expected_reason(frame: str) -> str | None:
    try:
        parse_trade_frame(frame, SYMBOLS, now_ms=wall_ms())
    except TradeValidationError as exc:
        return exc.reason
    return None


@pytest.fixture(scope="module")
def live_service(bootstrap: str) -> Iterator[tuple[ExchangeSimulator, IngestService, Topics]]:
    """One simulator streaming BTCUSDT in real time and one service reading it, for every case."""
    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"fuzz-trades-{tag}", f"fuzz-dlq-{tag}", f"fuzz-progress-{tag}")
    admin.create_topics(
        bootstrap,
        [admin.TopicSpec(name, 1, {}) for name in (topics.trades, topics.dlq, topics.progress)],
    )
    simulation = MarketSimulation(["btcusdt"], seed=3, start_ms=wall_ms())
    with ExchangeSimulator(SimulatedSource(simulation)) as sim:
        service = IngestService(make_config(bootstrap, topics, sim, ["btcusdt"]))
        with running(service):
            wait_until(lambda: service.stats.symbols["BTCUSDT"].delivered > 0, 30, "first trade")
            yield sim, service, topics
    admin.delete_topics(bootstrap, [topics.trades, topics.dlq, topics.progress])


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=FRAMES)
def test_bad_frames_reach_the_dlq_with_their_reason_and_nothing_else_changes(
    live_service: tuple[ExchangeSimulator, IngestService, Topics],
    bootstrap: str,
    frames: list[str],
) -> None:
    sim, service, topics = live_service
    expected = [_expected_reason(f) for f in frames]
    assert all(expected), "a generated frame happened to be a valid trade"
    before = sum(service.stats.dead_letters.values())
    for frame in frames:
        sim.send_raw(frame)
    wait_until(
        lambda: sum(service.stats.dead_letters.values()) >= before + len(frames),
        30,
        "every frame dead-lettered",
    )
    assert sum(service.stats.dead_letters.values()) == before + len(frames)

    dead = read_topic(bootstrap, topics.dlq)[before:]
    assert [m.value().decode() for m in dead] == frames
    assert [dict(m.headers())["reason"].decode() for m in dead] == expected
    # What reached `trades` is only ever a valid BTCUSDT trade.
    for msg in read_topic(bootstrap, topics.trades)[-200:]:
        assert msg.key() == b"BTCUSDT"
        parse_trade_frame(msg.value(), SYMBOLS, now_ms=wall_ms())
