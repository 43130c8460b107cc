"""The DAGSTER_HOME that ``make run`` uses: instance storage plus the run-queue settings.

Runs that write the lake or the DuckDB file must not overlap (DuckDB allows one writing process
per file). The instance queues runs (``QueuedRunCoordinator``), counts pools per run
(``granularity: run``), and the writers' pool ``lake_writer`` (``WRITER_POOL`` in
``crypto_platform.defs.assets.common``) gets a limit of one run at a time, set explicitly in
the instance's storage when it has none. Dagster's ``default_limit: 1`` alone would apply to it
too, but only from the second dequeue pass on: the pass that first meets a pool initialises
its limit after reading the limits, so two writer runs queued together on a fresh home could
both start. A limit set later in the UI or with ``dagster instance concurrency set`` is kept.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from crypto_platform.defs.assets.common import WRITER_POOL

WRITER_POOL_LIMIT = 1

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
    """Create ``home`` with a ``dagster.yaml`` if it has none, and the writer pool's limit if
    its storage has none; return its absolute path."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    _ensure_writer_pool(home)
    return home


def _ensure_writer_pool(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        if all(limit.name != WRITER_POOL for limit in storage.get_pool_limits()):
            storage.set_concurrency_slots(WRITER_POOL, WRITER_POOL_LIMIT)
