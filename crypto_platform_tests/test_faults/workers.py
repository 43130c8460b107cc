"""Processes the fault tests kill with SIGKILL: the ingestion service and a Dagster run.

``python -m crypto_platform_tests.test_faults.workers ingest '<IngestConfig fields as JSON>'``
runs the real ingestion service until SIGTERM (exit 0) or SIGKILL;
``... run '<settings JSON>' <trades topic> <minute labels...>`` runs ``trade_minutes_job`` over
those minutes (one hour partition) in this process, as the sensor's run would.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
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


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    command, *rest = argv
    if command == "ingest":
        return _ingest(rest[0])
    if command == "run":
        return _run(rest[0], rest[1], rest[2:])
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
