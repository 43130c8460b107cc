"""Two runs and a reader on the DuckDB file at once: nobody sees an error, no row is lost."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from crypto_platform.core.simulation import MarketSimulation
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_defs.expected import assert_matches, expected_analytics
from crypto_platform_tests.test_defs.workers import read_while, run_hour

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HOUR = 1_764_072_000_000  # 2025-11-25 12:00 UTC
M = 60_000


def test_two_runs_and_a_reader_at_once(platform: Platform) -> None:
    market = MarketSimulation(["btcusdt", "ethusdt"], seed=12, start_ms=HOUR - 2 * M)
    trades = [
        *market.trades_between(HOUR - 2 * M, HOUR + 2 * M),  # 11:58-12:02
        *market.trades_between(HOUR + 30 * M, HOUR + 33 * M),  # 12:30-12:33
    ]
    platform.produce(trades)
    settings = platform.settings.model_dump()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=spawn) as pool:
        reader = pool.submit(read_while, str(platform.database), 40.0, 0.15)
        runs = [
            pool.submit(run_hour, settings, platform.trades_topic, key)
            for key in ("2025-11-25-11:00", "2025-11-25-12:00")
        ]
        failures = [r.result(timeout=300) for r in runs]
        errors, counts, longest_wait = reader.result(timeout=300)
    assert failures == ["", ""]
    assert errors == [] and len(counts) > 20
    assert 0.01 < longest_wait < 10  # it did meet a writer's lock, and waited briefly
    assert set(counts) <= {0, 4, 10, 14}  # whole runs' rows or none: never half a transaction
    assert_matches(platform.analytics(), expected_analytics(trades))
