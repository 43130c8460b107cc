"""Processes for the concurrency test: a run of the real job, and a DuckDB reader."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import duckdb
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from crypto_platform import warehouse
from crypto_platform.definitions import build_definitions
from crypto_platform.settings import Settings


def run_hour(settings: dict, trades_topic: str, hour_key: str) -> str:
    """Backfill one hour in this process (ephemeral instance); '' on success, else the error."""
    try:
        defs = build_definitions(Settings(**settings), trades_topic=trades_topic)
        job = defs.resolve_job_def("trade_minutes_job")
        tags = {ASSET_PARTITION_RANGE_START_TAG: hour_key, ASSET_PARTITION_RANGE_END_TAG: hour_key}
        result = job.execute_in_process(tags=tags, raise_on_error=False)
        return "" if result.success else f"run of {hour_key} failed"
    except Exception:  # noqa: BLE001 - report anything to the test
        return traceback.format_exc()


def read_while(path: str, seconds: float, hold_s: float) -> tuple[list[str], list[int], float]:
    """Query the file read-only over and over (holding it ``hold_s`` each time), as a dashboard
    would; returns the errors seen, the row counts observed and the longest wait for the lock."""
    errors: list[str] = []
    counts: list[int] = []
    longest_wait = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            started = time.monotonic()
            with warehouse.connection(Path(path), read_only=True) as conn:
                longest_wait = max(longest_wait, time.monotonic() - started)
                counts.append(conn.execute("SELECT count(*) FROM trade_analytics_1m").fetchone()[0])
                time.sleep(hold_s)
        except duckdb.CatalogException:
            counts.append(0)  # created, table not yet there
        except duckdb.IOException as exc:
            if "does not exist" not in str(exc):
                errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - every other error is a failure to report
            errors.append(repr(exc))
        time.sleep(0.02)
    return errors, counts, longest_wait
