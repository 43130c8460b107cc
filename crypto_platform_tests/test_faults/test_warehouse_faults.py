"""A reader holding the DuckDB file while runs write: the runs wait for the lock and succeed,
the reader only ever sees whole minutes, and the end result is the reference's."""

from __future__ import annotations

import json
import time

import duckdb
import pytest

from crypto_platform_tests.test_faults.conftest import (
    assert_identical,
    materialise,
    simulated_trades,
)
from crypto_platform_tests.test_faults.workers import row_text, spawn
from crypto_platform_tests.test_ingest.conftest import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow]
HOLD_S = 1.0  # each read-only hold of the file; the writers' lock bound is 60 s


def _holds(out_file) -> list[dict]:
    if not out_file.exists():
        return []
    return [json.loads(line) for line in out_file.read_text().splitlines() if line.strip()]


def test_a_reader_holding_the_database_while_runs_write_gives_identical_results(
    platform_factory, reference, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = simulated_trades(6, seed=47)
    expected = reference(trades)
    platform = platform_factory("faulted")
    platform.produce(trades)
    materialise(platform, expected.minutes[:1])  # the file exists before the reader opens it
    first_rows = {row_text(r) for r in platform.analytics()}

    writer_waits: list[str] = []
    connect = duckdb.connect

    def counting_connect(*args, **kwargs):
        try:
            return connect(*args, **kwargs)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower() and not kwargs.get("read_only", False):
                writer_waits.append(str(exc))
            raise

    monkeypatch.setattr(duckdb, "connect", counting_connect)
    out_file, stop_file = tmp_path / "holds.jsonl", tmp_path / "stop"
    reader = spawn(
        "hold",
        str(platform.database),
        str(HOLD_S),
        str(stop_file),
        str(out_file),
        log_path=tmp_path / "reader.log",
    )
    try:
        wait_until(lambda: _holds(out_file) or reader.poll() is not None, 60, "a first hold")
        assert reader.poll() is None, (tmp_path / "reader.log").read_text()[-2000:]
        started = time.time()
        for minute in expected.minutes[1:]:  # one run per minute: five writes to meet the reader
            assert platform.run_minutes([minute]).success
        finished = time.time()
        stop_file.touch()
        assert reader.wait(60) == 0, (tmp_path / "reader.log").read_text()[-2000:]
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait(10)

    holds = _holds(out_file)
    during = [h for h in holds if h["closed"] > started and h["opened"] < finished]
    assert len(during) >= 3, f"the reader held the file only {len(during)} times during the runs"
    assert writer_waits, "no run met the reader's lock: the fault did not happen"
    # The reader saw whole minutes: the first one, plus complete minutes of the reference.
    reference_rows = {row_text(r) for r in expected.rows}
    minute_of = {text: json.loads(text)["window_start"] for text in reference_rows}
    for hold in holds:
        seen = set(hold["rows"])
        assert first_rows <= seen and seen <= reference_rows | first_rows
        minutes_seen = {minute_of[text] for text in seen - first_rows}
        assert seen == first_rows | {t for t in reference_rows if minute_of[t] in minutes_seen}
    assert_identical(platform, expected)
