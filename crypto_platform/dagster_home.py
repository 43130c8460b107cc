"""The DAGSTER_HOME that ``make run`` uses: instance storage plus the run-queue settings.

Runs that write the DuckDB file must not overlap (DuckDB allows one writing process per file),
so the instance queues runs and limits the ``duckdb`` concurrency pool to one at a time.
"""

from __future__ import annotations

from pathlib import Path

DAGSTER_YAML = """\
# Written by crypto-platform; edit freely, it is only rewritten when missing.
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    default_limit: 1
    granularity: run
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
"""


def ensure_dagster_home(home: Path) -> Path:
    """Create ``home`` with a ``dagster.yaml`` if it has none; return its absolute path."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home
