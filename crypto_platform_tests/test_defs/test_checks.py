"""Asset checks fail on deliberately corrupted inputs, name what is wrong, block where needed."""

import json
import time
from decimal import Decimal

import pytest

from crypto_platform import warehouse
from crypto_platform.core import lake
from crypto_platform.core.trades import Trade, trade_to_event
from crypto_platform.core.windows import minute_label
from crypto_platform_tests.test_core.test_lake import table
from crypto_platform_tests.test_defs.conftest import Platform, check_results
from crypto_platform_tests.test_defs.helpers import produce_raw

pytestmark = pytest.mark.kafka

HOUR = 1_764_072_000_000  # 2025-11-25 12:00 UTC
M = 60_000


def trades(first_id: int, count: int, minute: int, symbol: str = "BTCUSDT") -> list[Trade]:
    return [
        Trade(
            symbol,
            first_id + i,
            Decimal(100 + i % 3),
            Decimal("0.1"),
            minute + 500 * i,
            minute + 500 * i,
            i % 2 == 0,
        )
        for i in range(count)
    ]


def analytics_materialised(result) -> bool:
    return bool(result.asset_materializations_for_node("trade_analytics_1m"))


def test_clean_data_passes_every_check(platform: Platform) -> None:
    platform.produce(trades(1, 20, HOUR) + trades(500, 10, HOUR + M, "ETHUSDT"))
    checks = check_results(platform.run_minutes([HOUR, HOUR + M]))
    assert sorted(name for name, e in checks.items() if not e.passed) == ["latest_minute_is_fresh"]
    assert len(checks) == 8


def test_a_negative_price_blocks_the_analytics(platform: Platform) -> None:
    platform.produce(trades(1, 5, HOUR))
    bad = trade_to_event(trades(6, 1, HOUR + 10_000)[0]) | {"p": "-5.00000000"}
    produce_raw(
        platform.bootstrap,
        platform.trades_topic,
        "BTCUSDT",
        json.dumps(bad).encode(),
        HOUR + 10_000,
    )
    result = platform.run_minutes([HOUR], raise_on_error=False)
    checks = check_results(result)
    assert not checks["prices_and_quantities_positive"].passed
    assert checks["prices_and_quantities_positive"].metadata["examples"].value == [
        "BTCUSDT 6 price=-5.00000000 qty=0.10000000"
    ]
    assert not analytics_materialised(result)
    kept = lake.read_trades(platform.lake, HOUR, HOUR + M)  # recorded as it came: nothing lost
    assert kept["trade_id"].to_pylist() == [1, 2, 3, 4, 5, 6]
    assert not platform.database.exists()


def test_duplicate_ids_across_minutes_block_the_analytics(platform: Platform) -> None:
    platform.produce(trades(1, 5, HOUR))
    assert platform.run_minutes([HOUR]).success
    # A corrupt source: trade 3 again, with another trade time, in the next minute.
    platform.produce(trades(3, 1, HOUR + M + 1000) + trades(6, 2, HOUR + M + 2000))
    result = platform.run_minutes([HOUR + M], raise_on_error=False)
    check = check_results(result)["no_duplicate_trade_ids"]
    assert not check.passed and check.metadata["examples"].value == ["BTCUSDT 3 x2"]
    assert not analytics_materialised(result)
    assert [r["window_start"].minute for r in platform.analytics()] == [0]


def test_a_gap_is_reported_with_the_missing_range_but_does_not_block(platform: Platform) -> None:
    platform.produce(trades(1, 10, HOUR) + trades(15, 6, HOUR + 5_000))
    result = platform.run_minutes([HOUR])
    check = check_results(result)["trade_ids_contiguous"]
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["missing_ranges"].value == ["BTCUSDT 11-14"]
    assert check.metadata["missing_trades"].value == 4
    (row,) = platform.analytics()
    assert row["is_complete"] is False and row["trade_count"] == 16


def test_a_trade_filed_under_the_wrong_minute_is_found(platform: Platform) -> None:
    platform.produce(trades(1, 5, HOUR))
    assert platform.run_minutes([HOUR]).success
    wrong = lake.minute_file(platform.lake, "BTCUSDT", HOUR + 7 * M)
    lake.write_parquet_atomic(table(trades(6, 2, HOUR + 3 * M)), wrong)
    check = platform.run_checks("raw_trades", HOUR)["trades_inside_their_window"]
    assert not check.passed
    assert check.metadata["examples"].value == [
        "raw_trades/symbol=BTCUSDT/date=2025-11-25/hour=12/minute=07.parquet: ids [6, 7]"
    ]


def test_analytics_checks_catch_rows_that_disagree_with_raw(platform: Platform) -> None:
    platform.produce(trades(1, 9, HOUR) + trades(20, 4, HOUR + M) + trades(40, 3, HOUR + 2 * M))
    assert platform.run_minutes([HOUR, HOUR + M, HOUR + 2 * M]).success
    with warehouse.connection(platform.database) as conn:
        conn.execute("UPDATE trade_analytics_1m SET trade_count = 8 WHERE trade_count = 9")
        conn.execute("UPDATE trade_analytics_1m SET high = low - 1 WHERE trade_count = 4")
        conn.execute("DELETE FROM trade_analytics_1m WHERE trade_count = 3")
    checks = platform.run_checks("trade_analytics_1m", HOUR)
    assert checks["trade_count_matches_raw"].metadata["examples"].value == [
        "BTCUSDT 2025-11-25T12:00: raw 9, trade_count 8"
    ]
    assert checks["prices_within_high_low"].metadata["examples"].value == [
        "BTCUSDT 2025-11-25T12:01"
    ]
    assert checks["one_row_per_symbol_minute"].metadata["examples"].value == [
        "BTCUSDT 2025-11-25T12:02: missing row"
    ]
    assert not checks["latest_minute_is_fresh"].passed  # 2025 data: far from fresh
    assert checks["latest_minute_is_fresh"].severity.value == "WARN"


def test_the_minute_that_just_closed_is_fresh(platform_factory) -> None:
    """The latest minute ended under grace + 60 s ago: the freshness check passes and says so.
    (A grace of 30 s, so that the minute's age plus the run's own time stay well inside.)"""
    platform = platform_factory(grace_seconds=30)
    now_ms = int(time.time() * 1000)
    minute = now_ms - now_ms % M - M  # the last minute that has ended
    platform.produce(trades(1, 20, minute))
    ran_at = time.time()
    checks = check_results(platform.run_minutes([minute]))
    done_at = time.time()
    fresh = checks["latest_minute_is_fresh"]
    assert fresh.passed, fresh.metadata
    assert fresh.metadata["latest_window_end"].value == minute_label(minute + M)
    assert fresh.metadata["limit_seconds"].value == 90.0
    age = fresh.metadata["lag_seconds"].value
    assert ran_at - (minute + M) / 1000 - 0.1 <= age <= done_at - (minute + M) / 1000 + 0.1
    assert all(e.passed for e in checks.values()), {n: e.passed for n, e in checks.items()}
