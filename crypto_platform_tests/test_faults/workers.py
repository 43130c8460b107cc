"""Processes of the fault tests: the ingestion service and a Dagster run (killed with SIGKILL),
and a reader holding the DuckDB file.

``python -m crypto_platform_tests.test_faults.workers ingest '<IngestConfig fields as JSON>'``
runs the real ingestion service until SIGTERM (exit 0) or SIGKILL;
``... run '<settings JSON>' <trades topic> <minute labels...>`` runs ``trade_minutes_job`` over
those minutes (one hour partition) in this process, as the sensor's run would;
``... hold <database> <seconds> <stop file> <out file>`` opens the database read-only again and
again (as the query CLI and the dashboard do), each time for ``seconds``, and appends what it
read (one JSON line per hold) to ``out file``, until ``stop file`` exists.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from crypto_platform_tests.conftest import REPO_ROOT

SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def spawn(*args: str, log_path: Path) -> subprocess.Popen:
    """Start this module with ``args`` in a new process, its output going to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", __name__, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=SUBPROCESS_ENV,
            cwd=REPO_ROOT,
        )


def _ingest(config_json: str) -> int:
    from crypto_platform.ingest.service import IngestConfig, IngestService

    service = IngestService(IngestConfig(**json.loads(config_json)))
    signal.signal(signal.SIGTERM, lambda _s, _f: service.request_stop())
    service.run()
    return 0


def _run(settings_json: str, trades_topic: str, labels: list[str]) -> int:
    from crypto_platform.core.windows import parse_minute_label
    from crypto_platform.definitions import build_definitions
    from crypto_platform.defs.partitions import hour_partition_key
    from crypto_platform.settings import Settings

    defs = build_definitions(Settings(**json.loads(settings_json)), trades_topic=trades_topic)
    first = parse_minute_label(labels[0])
    config = {
        "ops": {
            "raw_trades": {"config": {"minutes": labels}},
            "trade_analytics_1m": {"config": {"minutes": labels}},
        }
    }
    result = defs.resolve_job_def("trade_minutes_job").execute_in_process(
        run_config=config, partition_key=hour_partition_key(first - first % 3_600_000)
    )
    return 0 if result.success else 1


HOLD_GAP_S = 0.25  # between two holds: the lock is free this long
HOLD_FOR_AT_MOST_S = 600.0


def _hold(database: str, seconds: str, stop_file: str, out_file: str) -> int:
    from crypto_platform import warehouse

    deadline = time.monotonic() + HOLD_FOR_AT_MOST_S
    with open(out_file, "a") as out:
        while not Path(stop_file).exists() and time.monotonic() < deadline:
            with warehouse.connection(Path(database), read_only=True, timeout_s=120) as conn:
                opened = time.time()
                rows = warehouse.read_minutes(conn, 0, 4_102_444_800_000).to_pylist()
                time.sleep(float(seconds))
                closed = time.time()
            line = {"opened": opened, "closed": closed, "rows": [row_text(r) for r in rows]}
            out.write(json.dumps(line) + "\n")
            out.flush()
            time.sleep(HOLD_GAP_S)
    return 0


def row_text(row: dict) -> str:
    """An analytics row as comparable text (the same in the reader and in the test)."""
    return json.dumps(row, default=str, sort_keys=True)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    command, *rest = argv
    if command == "ingest":
        return _ingest(rest[0])
    if command == "run":
        return _run(rest[0], rest[1], rest[2:])
    if command == "hold":
        return _hold(*rest)
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
