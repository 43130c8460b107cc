"""Late trades through the real path: ingestion acknowledges trades behind the progress mark it
already published, says so with a ``late`` notice, and ``closed_minutes_sensor`` requests the
minute again; that run ends with the reference's result.

Ingestion (the real service, fed by the exchange simulator) gets every trade but ETHUSDT's last
half minute; the sensor (driven with ``build_sensor_context`` against the real progress topic)
requests the minutes as they close, and they are run. Only then does the exchange send the
missing ETHUSDT trades, as a delayed stream would: their ids follow on, so no gap is seen, but
their times are behind ETHUSDT's published mark.
"""

from __future__ import annotations

import time

import dagster as dg
import pytest

from crypto_platform.core.trades import trade_to_event
from crypto_platform.core.windows import minute_label
from crypto_platform.ingest import sim_protocol
from crypto_platform.ingest.exchange_sim import ExchangeSimulator
from crypto_platform.ingest.service import IngestService
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_faults.conftest import (
    START,
    SYMBOLS,
    M,
    assert_identical,
    replay_source,
    simulated_trades,
)
from crypto_platform_tests.test_ingest.conftest import (
    Topics,
    delivered_through,
    make_config,
    read_topic,
    running,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow]
LATE_SYMBOL = "ETHUSDT"
LATE_MINUTE = START + 2 * M
SENSOR_WAIT_S = 90.0


class Sensor:
    """``closed_minutes_sensor`` evaluated by hand, its cursor kept, its requests run."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.cursor: str | None = None
        self.requests: list[dg.RunRequest] = []

    def tick(self) -> list[dg.RunRequest]:
        sensor = self.platform.defs.resolve_sensor_def("closed_minutes_sensor")
        context = dg.build_sensor_context(
            instance=self.platform.instance,
            cursor=self.cursor,
            definitions=self.platform.defs,
            resources=self.platform.defs.resources,
        )
        result = sensor(context)
        self.cursor = result.cursor
        for request in result.run_requests:
            assert self.platform.run_request(request).success
        self.requests += result.run_requests
        return result.run_requests

    def tick_until(self, done, what: str) -> None:
        deadline = time.monotonic() + SENSOR_WAIT_S
        while not done(self.tick()):
            assert time.monotonic() < deadline, f"the sensor did not request {what}"
            time.sleep(0.5)

    def requested(self) -> set[str]:
        return {m for r in self.requests for m in minutes(r)}


def minutes(request: dg.RunRequest) -> list[str]:
    return request.run_config["ops"]["raw_trades"]["config"]["minutes"]


def trade_counts(platform: Platform) -> dict[tuple[str, int], int]:
    return {(r["symbol"], r["window_start"].minute): r["trade_count"] for r in platform.analytics()}


def test_late_trades_are_noticed_by_ingestion_and_rerun_by_the_sensor_with_identical_results(
    platform_factory, reference, topic_factory, bootstrap: str
) -> None:
    trades = simulated_trades(3, seed=48)
    expected = reference(trades)
    late = [
        t for t in trades if t.symbol == LATE_SYMBOL and t.trade_time_ms >= LATE_MINUTE + 30_000
    ]
    late_ids = {t.trade_id for t in late}
    on_time = [t for t in trades if not (t.symbol == LATE_SYMBOL and t.trade_id in late_ids)]
    assert late and max(t.trade_id for t in on_time if t.symbol == LATE_SYMBOL) < min(late_ids)
    platform = platform_factory("faulted")
    topics = Topics(platform.trades_topic, topic_factory("dlq", 1), platform.progress_topic)
    sensor = Sensor(platform)
    label = minute_label(LATE_MINUTE)

    with ExchangeSimulator(replay_source(on_time, speed=12.0)) as sim:
        service = IngestService(make_config(bootstrap, topics, sim, SYMBOLS))
        with running(service):
            wait_until(lambda: sim.source.finished, 60, "the on-time feed sent")
            last_on_time = {t.symbol: t.trade_id for t in on_time}
            wait_until(lambda: delivered_through(service, last_on_time), 60, "delivery")
            sensor.tick_until(lambda _new: label in sensor.requested(), f"{label} closed")
            counts = trade_counts(platform)
            want = {
                (r["symbol"], r["window_start"].minute): r["trade_count"] for r in expected.rows
            }
            assert counts[(LATE_SYMBOL, 2)] == want[(LATE_SYMBOL, 2)] - len(late)
            assert {k: v for k, v in counts.items() if k != (LATE_SYMBOL, 2)} == {
                k: v for k, v in want.items() if k != (LATE_SYMBOL, 2)
            }
            assert service.stats.symbols[LATE_SYMBOL].late_notices == 0

            for trade in late:  # the delayed stream: next ids, times behind the mark
                event_text = sim_protocol.event_json(trade_to_event(trade))
                sim.send_raw(sim_protocol.combined_frame(trade.symbol, event_text))
            last = {t.symbol: t.trade_id for t in trades}
            wait_until(lambda: delivered_through(service, last), 60, "the late trades delivered")
            wait_until(
                lambda: service.stats.symbols[LATE_SYMBOL].late_notices > 0, 30, "a late notice"
            )
            assert service.gaps_log == []  # no gap: they came on the stream, in id order

            before = len(sensor.requests)
            sensor.tick_until(
                lambda new: any(r.tags["crypto_platform/reason"] == "late" for r in new),
                f"{label} again",
            )
    (rerun,) = [r for r in sensor.requests[before:] if r.tags["crypto_platform/reason"] == "late"]
    assert label in minutes(rerun)
    assert all(m > label for m in minutes(rerun) if m != label)  # at most newly closed ones
    assert read_topic(bootstrap, topics.dlq) == []
    assert_identical(platform, expected)
