"""Run the Spark job to the end: session, connector jars, sink, progress logs, clean stop.

Started two ways: by ``crypto-platform spark`` (pyspark launches Spark itself: local[2] by
default, the connector jars from the cache as ``spark.jars``) or by ``spark-submit`` on
``crypto_platform/spark/__main__.py`` (then the master and ``--jars`` are spark-submit's).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crypto_platform.spark.connector import check_pyspark_version, ensure_connector_jars
from crypto_platform.spark.options import JobOptions

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[2]"
POLL_INTERVAL_S = 1.0
STOP_GRACE_S = 60.0

# The job hands no data to pandas (batches travel as Arrow), so pyspark's pandas-3 notice is noise.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


class JobTimeoutError(RuntimeError):
    """The job did not finish within the time it was given; it has been stopped."""


def launched_by_spark_submit() -> bool:
    """True inside ``spark-submit``: its JVM is already running and tells pyspark its port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_launch(master: str | None, cache_dir: Path) -> tuple[str | None, list[Path] | None]:
    """The master and jars to start Spark with; (None, None) under spark-submit."""
    if launched_by_spark_submit():
        if master is not None:
            log.warning("--master %s ignored: spark-submit's --master applies", master)
        return None, None
    check_pyspark_version()
    return master or DEFAULT_MASTER, ensure_connector_jars(cache_dir)


def _progress_line(progress: Any) -> tuple[int, str]:
    """(log level, message) for one finished micro-batch."""
    metrics = progress.observedMetrics.get("input")
    rejected = metrics["rejected"] if metrics is not None else 0
    operators = progress.stateOperators
    late = sum(op.numRowsDroppedByWatermark for op in operators)
    duplicates = sum(op.customMetrics.get("numDroppedDuplicateRows", 0) for op in operators)
    message = (
        f"batch {progress.batchId}: {progress.numInputRows} record(s) read, "
        f"{duplicates} duplicate(s) and {late} late row(s) dropped"
    )
    if not rejected:
        return logging.INFO, message
    first = metrics["first_rejected"]
    return logging.WARNING, (
        f"{message}; {rejected} record(s) are not valid trades and were skipped, the first "
        f"at partition {first['partition']} offset {first['offset']}"
    )


def log_progress(query: Any, after_batch: int) -> int:
    """Log the batches finished since ``after_batch``; return the last batch id logged."""
    for progress in query.recentProgress:
        if progress.batchId > after_batch:
            log.log(*_progress_line(progress))
            after_batch = progress.batchId
    return after_batch


def stop_between_batches(query: Any, grace_s: float = STOP_GRACE_S) -> None:
    """Let the running micro-batch finish (at most ``grace_s``), then stop the query.

    Stopping mid-batch is safe too (the checkpoint replays the batch), but it cancels Spark
    jobs under the sink's feet and fills the log with their errors.
    """
    deadline = time.monotonic() + grace_s
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.2)
    query.stop()


def await_query(
    query: Any, timeout_s: float | None = None, stop: threading.Event | None = None
) -> None:
    """Wait for the query to end (AvailableNow) or for ``stop``, logging each batch.

    Raises the query's failure as pyspark's ``StreamingQueryException``, or
    :class:`JobTimeoutError` after ``timeout_s`` (the query is stopped first).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    logged = -1
    while not query.awaitTermination(POLL_INTERVAL_S):
        logged = log_progress(query, logged)
        if stop is not None and stop.is_set():
            log.info("stopping the Spark job after its current micro-batch")
            stop_between_batches(query)
        elif deadline is not None and time.monotonic() > deadline:
            query.stop()
            raise JobTimeoutError(f"the Spark job did not finish within {timeout_s:.0f}s")
    log_progress(query, logged)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM while inside (handlers restored on exit).

    A flag, not an exception: an exception raised inside a py4j call would break the
    connection to the JVM instead of stopping the query.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda _signum, _frame: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def make_sink(options: JobOptions) -> Callable[[Any, int], None]:
    """The ``foreachBatch`` writer the options ask for."""
    from crypto_platform.spark.sink import DuckDBSink, ParquetSink

    return DuckDBSink(options.output) if options.sink == "duckdb" else ParquetSink(options.output)


def run_job(
    options: JobOptions,
    master: str | None = None,
    cache_dir: Path = Path(".cache"),
    timeout_s: float | None = None,
) -> None:
    """Start Spark and run the job until it ends; Ctrl-C/SIGTERM stop it between batches.

    Any stop, even SIGKILL mid-batch, is safe: the checkpoint replays an unfinished batch.
    """
    from crypto_platform.spark.job import build_session, start

    master, jars = spark_launch(master, cache_dir)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per callback otherwise
    spark = build_session(master, jars)
    query = None
    try:
        with stop_on_signals() as stop:
            query = start(spark, options, make_sink(options))
            log.info(
                "Spark job %s started on %s: %s -> %s %s (lateness %.1f s, checkpoint %s)",
                query.name,
                spark.sparkContext.master,
                options.topic,
                options.sink,
                options.output,
                options.lateness_seconds,
                options.checkpoint_dir,
            )
            await_query(query, timeout_s, stop)
    finally:
        if query is not None and query.isActive:
            query.stop()
        if not launched_by_spark_submit():
            spark.stop()
