"""Faults on the way out: a run killed mid-write, late and out-of-order trades.

Each test ends with the identical-results property against the undisturbed reference.
"""

from __future__ import annotations

import json
import random
import signal

import pytest

from crypto_platform.core.windows import minute_label
from crypto_platform_tests.test_defs.expected import assert_matches, expected_analytics
from crypto_platform_tests.test_faults.conftest import (
    START,
    M,
    assert_identical,
    materialise,
    simulated_trades,
)
from crypto_platform_tests.test_faults.workers import spawn
from crypto_platform_tests.test_ingest.conftest import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow]


def _kill_when(process, condition, what: str) -> None:
    try:
        wait_until(lambda: condition() or process.poll() is not None, 120, what)
        assert process.poll() is None, f"the run ended before {what}"
        process.send_signal(signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_a_run_killed_mid_write_leaves_no_partial_output_and_a_rerun_heals(
    platform_factory, reference, tmp_path
) -> None:
    trades = simulated_trades(40, seed=43, scale=2.0)
    expected = reference(trades)
    platform = platform_factory("faulted")
    platform.produce(trades)
    materialise(platform, expected.minutes[:5])  # what was there before the killed runs
    files_before, rows_before = platform.lake_bytes(), platform.analytics()
    settings = json.dumps(platform.settings.model_dump(mode="json"))
    labels = [minute_label(m) for m in expected.minutes]
    log_path = tmp_path / "run.log"

    # 1. killed while raw_trades writes its Parquet files
    process = spawn("run", settings, platform.trades_topic, *labels, log_path=log_path)
    _kill_when(process, lambda: len(platform.lake_bytes()) > len(files_before) + 10, "files")
    partial = platform.lake_bytes()
    assert len(files_before) < len(partial) < len(expected.files), "not killed mid-write"
    assert {n: b for n, b in partial.items() if expected.files.get(n) != b} == {}  # whole files
    assert platform.analytics() == rows_before  # DuckDB unchanged

    # 2. killed right after the Parquet is complete: in (or before) the DuckDB transaction
    process = spawn("run", settings, platform.trades_topic, *labels, log_path=log_path)
    _kill_when(process, lambda: len(platform.lake_bytes()) == len(expected.files), "all files")
    assert platform.lake_bytes() == expected.files
    assert platform.analytics() in (rows_before, expected.rows)  # all or nothing

    materialise(platform, expected.minutes)  # the rerun heals
    assert_identical(platform, expected)


def test_late_and_out_of_order_trades_give_identical_results(platform_factory, reference) -> None:
    """The topic holds the trades shuffled (out of order within and across minutes); a tenth of
    minute 12:02's trades arrive only after that minute materialised, as a gap fill would
    deliver them; the rerun the late notice asks for includes them, nothing twice."""
    trades = simulated_trades(6, seed=44)
    expected = reference(trades)
    platform = platform_factory("faulted")
    late_minute = START + 2 * M
    in_minute = [t for t in trades if late_minute <= t.trade_time_ms < late_minute + M]
    late = set(random.Random(7).sample(in_minute, len(in_minute) // 10))
    on_time = [t for t in trades if t not in late]
    random.Random(8).shuffle(on_time)
    platform.produce(on_time)
    materialise(platform, expected.minutes)
    assert platform.analytics() != expected.rows  # the late trades are missing so far
    platform.produce(sorted(late, key=lambda t: t.trade_id, reverse=True))  # late, backwards
    platform.produce(random.Random(9).sample(trades, 200))  # and some redelivered duplicates
    assert platform.run_minutes([late_minute], read_until_ms=START + 7 * M).success
    assert_matches(platform.analytics(), expected_analytics(trades))
    assert_identical(platform, expected)
