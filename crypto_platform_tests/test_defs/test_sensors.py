"""The minutes sensor against a live progress topic: exact run requests, cursor, and the runs."""

import dagster as dg
import pytest

from crypto_platform.core.minute_plan import PlanState
from crypto_platform.core.progress import LateNotice, ProgressMark
from crypto_platform.core.simulation import MarketSimulation
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_defs.helpers import marks_for, publish_progress

pytestmark = pytest.mark.kafka

HOUR = 1_764_072_000_000  # 2025-11-25 12:00 UTC
M = 60_000
GRACE = 5_000  # the platform fixture's grace_seconds
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def evaluate(platform: Platform, cursor: str | None) -> dg.SensorResult:
    return platform.evaluate_minutes_sensor(cursor)


def publish(platform: Platform, messages) -> None:
    publish_progress(platform.bootstrap, platform.progress_topic, messages)


def minutes(request: dg.RunRequest) -> list[str]:
    return request.run_config["ops"]["raw_trades"]["config"]["minutes"]


def trade_counts(platform: Platform) -> dict[tuple[str, int], int]:
    return {(r["symbol"], r["window_start"].minute): r["trade_count"] for r in platform.analytics()}


def started(platform: Platform) -> str:
    """Ingestion came up at 12:00:00.5 and said so; the sensor saw it."""
    publish(platform, marks_for(SYMBOLS, HOUR + 500))
    result = evaluate(platform, None)
    assert not result.run_requests
    return result.cursor


def test_closed_minutes_are_requested_once_and_open_ones_not(platform: Platform) -> None:
    market = MarketSimulation(SYMBOLS, seed=3, start_ms=HOUR)
    platform.produce(market.trades_between(HOUR, HOUR + 4 * M))
    cursor = started(platform)
    emitted = HOUR + 3 * M + 6000
    publish(platform, marks_for(SYMBOLS, HOUR + 3 * M + GRACE - 2, emitted_at_ms=emitted))
    first = evaluate(platform, cursor)
    (request,) = first.run_requests
    assert request.partition_key == "2025-11-25-12:00"
    assert minutes(request) == ["2025-11-25T12:00", "2025-11-25T12:01"]  # 12:02 still open
    assert request.run_config["ops"]["raw_trades"]["config"]["read_until_ms"] == emitted
    assert request.run_config["ops"]["trade_analytics_1m"]["config"]["minutes"] == minutes(request)
    assert request.run_key == "2025-11-25T12:00..2025-11-25T12:01/2/closed@0:4"
    state = PlanState.from_json(first.cursor)
    assert state.requested_through_ms == HOUR + 2 * M and state.next_offsets == {0: 4}
    assert platform.run_request(request).success
    rows = platform.analytics()
    assert sorted({r["window_start"].minute for r in rows}) == [0, 1] and len(rows) == 4

    again = evaluate(platform, first.cursor)
    assert not again.run_requests and "no new minute closed" in again.skip_reason.skip_message
    publish(platform, marks_for(SYMBOLS, HOUR + 3 * M + GRACE - 1))
    third = evaluate(platform, again.cursor)
    assert [minutes(r) for r in third.run_requests] == [["2025-11-25T12:02"]]


def test_a_quiet_symbol_or_partition_does_not_hold_minutes_open(platform: Platform) -> None:
    market = MarketSimulation(["BTCUSDT"], seed=4, start_ms=HOUR)
    platform.produce(market.trades_between(HOUR, HOUR + 3 * M))  # one of three partitions
    cursor = started(platform)
    # ETHUSDT trades nothing, but ingestion still says how far it is complete.
    publish(platform, marks_for(SYMBOLS, HOUR + 2 * M + GRACE))
    (request,) = evaluate(platform, cursor).run_requests
    assert minutes(request) == ["2025-11-25T12:00", "2025-11-25T12:01"]
    assert platform.run_request(request).success
    assert {r["symbol"] for r in platform.analytics()} == {"BTCUSDT"}


def test_a_symbol_without_marks_holds_everything_and_is_named(platform: Platform) -> None:
    publish(platform, [ProgressMark("BTCUSDT", HOUR + 30 * M, HOUR + 30 * M)])
    result = evaluate(platform, None)
    assert not result.run_requests
    assert result.skip_reason.skip_message.startswith("no progress mark yet from ETHUSDT")


def test_catch_up_after_downtime_takes_one_run_per_hour(platform: Platform) -> None:
    cursor = started(platform)
    publish(platform, [m for k in range(1, 151) for m in marks_for(SYMBOLS, HOUR + k * M + GRACE)])
    result = evaluate(platform, cursor)
    assert [(r.partition_key, len(minutes(r))) for r in result.run_requests] == [
        ("2025-11-25-12:00", 60),
        ("2025-11-25-13:00", 60),
        ("2025-11-25-14:00", 30),
    ]
    last = result.run_requests[-1]
    assert minutes(last)[-1] == "2025-11-25T14:29"
    read_until = last.run_config["ops"]["raw_trades"]["config"]["read_until_ms"]
    assert read_until == HOUR + 150 * M + GRACE + 1000  # when the last of them closed


def test_late_trades_request_their_minute_again(platform: Platform) -> None:
    market = MarketSimulation(SYMBOLS, seed=5, start_ms=HOUR)
    trades = list(market.trades_between(HOUR, HOUR + 10 * M))
    late = [
        t for t in trades if t.symbol == "ETHUSDT" and HOUR + M <= t.trade_time_ms < HOUR + 2 * M
    ]
    late = late[-4:]
    platform.produce(t for t in trades if t not in late)
    cursor = started(platform)
    publish(platform, marks_for(SYMBOLS, HOUR + 9 * M + GRACE))
    first = evaluate(platform, cursor)
    (request,) = first.run_requests
    assert platform.run_request(request).success
    counts = {
        (r["symbol"], r["window_start"].minute): r["trade_count"] for r in platform.analytics()
    }

    platform.produce(late)  # a gap fill, after eight minutes of newer trades
    notice = LateNotice(
        "ETHUSDT", (HOUR + M,), (late[0].trade_id, late[-1].trade_id), HOUR + 11 * M
    )
    publish(platform, [notice])
    second = evaluate(platform, first.cursor)
    (rerun,) = second.run_requests
    assert minutes(rerun) == ["2025-11-25T12:01"] and rerun.tags["crypto_platform/reason"] == "late"
    assert rerun.run_config["ops"]["raw_trades"]["config"]["read_until_ms"] == HOUR + 11 * M
    assert platform.run_request(rerun).success
    after = {
        (r["symbol"], r["window_start"].minute): r["trade_count"] for r in platform.analytics()
    }
    assert after[("ETHUSDT", 1)] == counts[("ETHUSDT", 1)] + 4
    assert {k: v for k, v in after.items() if k != ("ETHUSDT", 1)} == {
        k: v for k, v in counts.items() if k != ("ETHUSDT", 1)
    }
    assert not evaluate(platform, second.cursor).run_requests  # requested once
