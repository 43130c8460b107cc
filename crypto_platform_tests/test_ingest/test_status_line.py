"""The periodic status line tells the truth: rates, last trade time, lag, gaps, dead letters.

A known input (a seeded simulation an hour in the past, replayed as fast as possible) goes
through the real service and broker while the exchange simulator sends malformed frames and
drops the connection once, so the DLQ count and the gaps filled over REST are not zero. Each
status (the JSON line and the logged text) is checked against what the topics hold and what the
simulation published.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.ingest.exchange_sim import ExchangeSimulator, Faults
from crypto_platform.ingest.service import IngestService
from crypto_platform.ingest.sim_sources import SimulatedSource, wall_ms
from crypto_platform_tests.test_ingest.conftest import (
    Topics,
    delivered_through,
    make_config,
    read_topic,
    running,
    wait_until,
)

pytestmark = pytest.mark.kafka

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
STATUS_LINE = re.compile(r"^(?:(?:BTCUSDT|ETHUSDT): [0-9.]+ trades/s, |all: dead letters )")
GROUP = len(SYMBOLS) + 1  # status lines per status: one per symbol, then "all"
GAP_LINE = re.compile(r"gap filled: (\w+) ids (\d+)-(\d+), (\d+) trades over REST")


class _TimedLines:
    """A stats_json target that notes when each JSON line was written (monotonic seconds)."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, dict]] = []

    def write(self, text: str) -> int:
        self.lines.append((time.monotonic(), json.loads(text)))
        return len(text)

    def flush(self) -> None:
        pass


def _clock(ms: int) -> str:
    """HH:MM:SS.mmm (UTC), as an operator reads a trade time."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S.") + f"{ms % 1000:03d}"


def test_status_values_match_what_reached_kafka(
    bootstrap: str, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    start = wall_ms() - 3_600_000  # an hour old: lag is about an hour, in ms
    end = start + 60_000
    simulation = MarketSimulation([s.lower() for s in SYMBOLS], seed=31, start_ms=start)
    expected = list(simulation.trades_between(start, end))
    times = {s: [t.trade_time_ms for t in expected if t.symbol == s] for s in SYMBOLS}
    last_ids = {s: max(t.trade_id for t in expected if t.symbol == s) for s in SYMBOLS}
    faults = Faults(malformed_every=50, drop_after_messages=800, max_drops=1)
    caplog.set_level(logging.INFO, logger="crypto_platform.ingest")
    out = _TimedLines()
    source = SimulatedSource(simulation, speed=None, end_ms=end)
    with ExchangeSimulator(source, faults) as sim:
        config = make_config(bootstrap, topics, sim, SYMBOLS, stats_interval_s=0.5, stats_json=out)
        wall_before = wall_ms()
        service = IngestService(config)
        created = time.monotonic()  # the first interval starts here
        with running(service):
            wait_until(lambda: delivered_through(service, last_ids), 90, "every trade delivered")
            seen = len(out.lines)
            wait_until(lambda: len(out.lines) >= seen + 2, 30, "two statuses after that")
        wall_after = wall_ms()
        assert sim.stats.drops == 1
        connections = sim.stats.connections_opened

    trades = read_topic(bootstrap, topics.trades)
    dead = read_topic(bootstrap, topics.dlq)
    rest_count = Counter(m.key().decode() for m in trades if dict(m.headers()).get("source"))
    dlq_by_symbol = Counter(m.key().decode() for m in dead if m.key() is not None)
    dlq_by_reason = Counter(dict(m.headers())["reason"].decode() for m in dead)
    gaps = Counter(m.group(1) for r in caplog.records if (m := GAP_LINE.search(r.getMessage())))
    assert len(trades) == len(expected)  # every trade once: the counters have one truth
    assert sum(rest_count.values()) > 0 and dlq_by_symbol["BTCUSDT"] > 0  # non-trivial input
    assert dlq_by_reason["malformed_json"] > 0  # a frame that names no symbol

    snapshots = [snapshot for _at, snapshot in out.lines]
    assert [s["final"] for s in snapshots] == [False] * (len(snapshots) - 1) + [True]
    quiet = snapshots[seen + 1]  # its whole interval came after the last delivery
    for symbol in SYMBOLS:
        s = quiet["symbols"][symbol]
        assert s["delivered"] == len(times[symbol])
        assert s["rest_trades"] == rest_count[symbol]
        assert s["stream_trades"] == len(times[symbol]) - rest_count[symbol]
        assert s["gaps_filled"] == gaps[symbol] >= 1
        assert s["dead_letters"] == dlq_by_symbol[symbol]
        assert s["last_trade_ms"] == max(times[symbol])
        assert s["trades_per_s"] == 0.0 and s["lag_ms_avg"] is None and s["lag_ms_max"] is None
    assert quiet["dead_letters"] == dict(dlq_by_reason)
    assert (quiet["connects"], quiet["disconnects"]) == (connections, 1)

    # Rates: what each interval delivered, over the interval's length.
    previous_at, previous = created, {s: 0 for s in SYMBOLS}
    rest_only_intervals = 0
    stream_before = {s: 0 for s in SYMBOLS}
    for at, snapshot in out.lines:
        for symbol in SYMBOLS:
            s = snapshot["symbols"][symbol]
            assert s["last_trade_ms"] is None or s["last_trade_ms"] in times[symbol]
            delivered = s["delivered"] - previous[symbol]
            assert abs(s["trades_per_s"] * (at - previous_at) - delivered) <= 0.1 * delivered + 2
            previous[symbol] = s["delivered"]
            # Lag: local produce time minus trade time, over the stream's trades only.
            from_stream = s["stream_trades"] - stream_before[symbol]
            stream_before[symbol] = s["stream_trades"]
            if from_stream == 0:
                assert s["lag_ms_avg"] is None and s["lag_ms_max"] is None
                rest_only_intervals += delivered > 0
                continue
            low, high = wall_before - max(times[symbol]), wall_after - min(times[symbol])
            assert low <= s["lag_ms_avg"] <= s["lag_ms_max"] <= high
        previous_at = at
    assert rest_only_intervals >= 1  # REST fills came in intervals of their own: no lag there

    # The logged text says the same, per symbol and for all: one group of lines per status.
    logged = [r.getMessage() for r in caplog.records if STATUS_LINE.match(r.getMessage())]
    assert len(logged) == len(snapshots) * GROUP
    text = logged[(seen + 1) * GROUP : (seen + 2) * GROUP]
    for line, symbol in zip(text, SYMBOLS, strict=False):
        assert line.startswith(
            f"{symbol}: 0.0 trades/s, last trade {_clock(max(times[symbol]))}, lag avg/max -, "
        )
        assert (
            f"gaps filled {gaps[symbol]} ({rest_count[symbol]} trades), lost ids 0, "
            f"dlq {dlq_by_symbol[symbol]}, duplicates " in line
        )
    all_line = re.fullmatch(
        r"all: dead letters (\{.*\}), connects (\d+), disconnects 1, .*", text[-1]
    )
    assert all_line is not None, text[-1]
    assert ast.literal_eval(all_line.group(1)) == dict(dlq_by_reason)
    assert int(all_line.group(2)) == connections
    for lines, snapshot in zip(
        (logged[i : i + GROUP] for i in range(0, len(logged), GROUP)), snapshots, strict=True
    ):
        for line, symbol in zip(lines, SYMBOLS, strict=False):
            s = snapshot["symbols"][symbol]
            lag = "-" if s["lag_ms_avg"] is None else f"{s['lag_ms_avg']}/{s['lag_ms_max']} ms"
            assert line.startswith(f"{symbol}: {s['trades_per_s']:.1f} trades/s, "), line
            assert f", lag avg/max {lag}, " in line
