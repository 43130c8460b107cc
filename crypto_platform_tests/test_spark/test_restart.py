"""SIGKILL the Spark job mid-stream, restart it from its checkpoint: the same table.

The job runs as a user runs it (``python -m crypto_platform spark``, a real subprocess with its
own JVM) continuously over a topic it reads a few hundred records per micro-batch. Once a few
batches are committed, the whole process group (Python driver and JVM) is killed with SIGKILL,
as a crash would. The restart (``--available-now``) must finish the stream so that the table
equals the Dagster path's rows and, bit for bit, the table of a run that was never interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_platform.core.progress import MINUTE_MS
from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.spark.options import JobOptions
from crypto_platform_tests.conftest import REPO_ROOT
from crypto_platform_tests.helpers import pids_with_env, wait_for
from crypto_platform_tests.test_spark.helpers import (
    KEEP_FOREVER,
    LATENESS_S,
    assert_same_rows,
    closing_trade,
    dagster_path_rows,
    decimal_rows,
    differences,
    duckdb_table_rows,
    produce,
    run_to_end,
    with_duplicates,
)

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow, pytest.mark.faults]

START_MS = 1_764_079_200_000  # 2025-11-25 14:00 UTC
MINUTES = 6
RECORDS_PER_BATCH = 250
BATCHES_BEFORE_KILL = 4
CLI_TIMEOUT_S = 240.0


def _env(tmp_path: Path, bootstrap: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTO_PLATFORM_")}
    env.update(
        {
            "CRYPTO_PLATFORM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CRYPTO_PLATFORM_DATA_DIR": str(tmp_path / "data"),
            "CRYPTO_PLATFORM_CACHE_DIR": str(REPO_ROOT / ".cache"),
            "CRYPTO_PLATFORM_GRACE_SECONDS": str(LATENESS_S),
        }
    )
    return env


def _batches(checkpoint: Path, log: str) -> int:
    """How many micro-batches the checkpoint's ``offsets`` (planned) or ``commits`` log holds."""
    folder = checkpoint / log
    return sum(1 for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else 0


def _in_flight(checkpoint: Path) -> bool:
    """A batch is planned but not committed, after a few committed ones: the moment to kill."""
    committed = _batches(checkpoint, "commits")
    return committed >= BATCHES_BEFORE_KILL and _batches(checkpoint, "offsets") > committed


def test_sigkill_mid_stream_then_restart_gives_the_same_table(
    spark_session, connector_jars, bootstrap: str, topic_factory, tmp_path: Path
) -> None:
    market = MarketSimulation(
        ["btcusdt", "ethusdt", "solusdt"], seed=5, start_ms=START_MS, rate_scale=0.15
    )
    trades = list(market.trades_between(START_MS, START_MS + MINUTES * MINUTE_MS))
    sent = with_duplicates(trades, every=40, lag=25)
    topic = topic_factory("spark-kill", partitions=3, config=KEEP_FOREVER)
    produce(bootstrap, topic, [*sent, closing_trade(trades[-1], LATENESS_S)])
    env = _env(tmp_path, bootstrap)
    checkpoint = tmp_path / "data" / "spark" / "checkpoints" / "duckdb"
    database = tmp_path / "data" / "analytics.duckdb"
    command = [sys.executable, "-m", "crypto_platform", "spark", "--topic", topic]
    log = tmp_path / "spark-job.log"

    with open(log, "ab") as out:  # the child keeps its own copy of the file descriptor
        job = subprocess.Popen(
            [*command, "--max-offsets-per-trigger", str(RECORDS_PER_BATCH),
             "--trigger-seconds", "0.5"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(
            lambda: _in_flight(checkpoint) or job.poll() is not None,
            timeout_s=CLI_TIMEOUT_S,
            interval_s=0.02,
            what=f"a micro-batch in flight after {BATCHES_BEFORE_KILL} committed ones",
        )
        assert job.poll() is None, log.read_text()[-3000:]
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the driver and its JVM, in the middle of a batch
        job.wait(timeout=30)
    # Killed between planning a batch and committing it: the restart must replay that batch.
    assert _batches(checkpoint, "offsets") == _batches(checkpoint, "commits") + 1
    expected = dagster_path_rows(sent)
    at_kill = duckdb_table_rows(database) if database.exists() else {}
    assert len(at_kill) < len(expected), "the job had finished before it was killed"

    with open(log, "ab") as out:
        restart = subprocess.run(
            [*command, "--available-now"], cwd=REPO_ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT, timeout=CLI_TIMEOUT_S,
        )  # fmt: skip
    assert restart.returncode == 0, log.read_text()[-3000:]

    rows = duckdb_table_rows(database)
    assert len(rows) == 3 * MINUTES
    assert_same_rows(rows, expected, "restarted job vs the Dagster path")
    assert_same_rows(rows, decimal_rows(sent), "restarted job vs pandas/Decimal")
    assert all(at_kill[key] == rows[key] for key in at_kill)  # rows written before the kill

    uninterrupted = JobOptions(
        bootstrap_servers=bootstrap,
        checkpoint_dir=tmp_path / "uninterrupted-checkpoint",
        lateness_seconds=LATENESS_S,
        output=tmp_path / "uninterrupted.duckdb",
        topic=topic,
        available_now=True,
    )
    run_to_end(spark_session, uninterrupted)
    # The same table: identical values, except the sample standard deviation, the one float
    # aggregate (all others are exact decimal sums), whose last bits depend on how the minute's
    # trades were split into micro-batches.
    same = differences(rows, duckdb_table_rows(uninterrupted.output), {"volatility": 1e-12})
    assert same == []


def test_sigterm_stops_the_job_cleanly_and_leaves_no_process(
    connector_jars, bootstrap: str, topic_factory, tmp_path: Path
) -> None:
    market = MarketSimulation(["btcusdt"], seed=3, start_ms=START_MS, rate_scale=0.1)
    trades = list(market.trades_between(START_MS, START_MS + 2 * MINUTE_MS))
    topic = topic_factory("spark-term", partitions=1, config=KEEP_FOREVER)
    produce(bootstrap, topic, [*trades, closing_trade(trades[-1], LATENESS_S)])
    marker = f"spark-term-{tmp_path.name}"
    env = _env(tmp_path, bootstrap) | {"SPARK_TEST_MARKER": marker}
    checkpoint = tmp_path / "data" / "spark" / "checkpoints" / "duckdb"
    job = subprocess.Popen(
        [sys.executable, "-m", "crypto_platform", "spark", "--topic", topic],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        # the data batch, then the batch with no data that writes both minutes
        wait_for(lambda: _batches(checkpoint, "commits") >= 2 or job.poll() is not None, 180)
        job.send_signal(signal.SIGTERM)
        output = job.communicate(timeout=90)[0].decode(errors="replace")
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 0, output[-3000:]
    assert "stopping the Spark job after its current micro-batch" in output
    assert _batches(checkpoint, "offsets") == _batches(checkpoint, "commits")  # between batches
    assert len(duckdb_table_rows(tmp_path / "data" / "analytics.duckdb")) == 2
    wait_for(lambda: not pids_with_env(marker), 30, what="the job's JVM to exit")
