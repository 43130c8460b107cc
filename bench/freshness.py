"""Freshness: how long after a minute ends its analytics row is readable in DuckDB.

The platform runs as ``make run SOURCE=sim`` starts it (``crypto-platform run --source sim``:
exchange simulator in real time, ingestion, ``dagster dev`` with its daemon and the minutes
sensor, the dashboard), on a data folder of its own and a broker this script starts. Every
``POLL_S`` the script opens the DuckDB file read-only (as any reader would) and notes when each
(symbol, minute) row first appears. Lag = first seen - window end; the configured grace and the
sensor interval are part of it and are reported beside it.

    python -m bench.freshness            # 10 minutes of closed windows
    python -m bench.freshness --quick    # 3 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench._common import ROOT, bench_broker, machine, percentiles, table, temp_dir, write_results
from crypto_platform import warehouse
from crypto_platform.core.analytics import ANALYTICS_TABLE
from crypto_platform.core.windows import parse_minute_label
from crypto_platform.kafka.broker import free_port
from crypto_platform.settings import Settings

POLL_S = 0.5
MINUTE_MS = 60_000
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0
PLATFORM_COMMAND = [sys.executable, "-m", "crypto_platform", "run", "--source", "sim"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _platform_env(data_dir: Path, bootstrap: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CRYPTO_PLATFORM_DATA_DIR": str(data_dir),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CRYPTO_PLATFORM_DASHBOARD_PORT": str(free_port()),
            "CRYPTO_PLATFORM_PARTITIONS_START": datetime.now(UTC).date().isoformat(),
        }
    )
    return env


def _seen_rows(database: Path) -> set[tuple[str, int]]:
    """(symbol, window start ms) of every row readable now; empty while the file is missing."""
    if not database.exists():
        return set()
    try:
        with warehouse.connection(database, read_only=True, timeout_s=2.0) as conn:
            rows = conn.execute(
                f"SELECT symbol, epoch_ms(window_start) FROM {ANALYTICS_TABLE}"
            ).fetchall()
    except Exception:  # noqa: BLE001 - table not created yet, or the writer holds the lock
        return set()
    return {(symbol, int(ms)) for symbol, ms in rows}


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C as a user would (SIGINT to the supervisor), SIGKILL of its group after a bound."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def measure(minutes: int) -> dict:
    with temp_dir("bench-fresh-") as tmp, bench_broker(tmp) as broker:
        data_dir = tmp / "data"
        settings = Settings(data_dir=data_dir, kafka_bootstrap_servers=broker.bootstrap_servers)
        log_path = tmp / "platform.log"
        started_ms = _now_ms()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [*PLATFORM_COMMAND, "--dagster-port", str(free_port())],
                cwd=ROOT,
                env=_platform_env(data_dir, broker.bootstrap_servers),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            first_seen = _watch(process, settings.resolved_duckdb_path, started_ms, minutes)
            runs = _run_timings(data_dir / "dagster_home")
        finally:
            _stop(process)
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
    result = _summary(first_seen, started_ms, minutes, settings, tail)
    result["runs"] = runs
    return result


def _run_timings(dagster_home: Path) -> dict:
    """Where a minute's lag goes, from Dagster's own run records: window end -> run created
    (grace, progress marks, sensor tick), created -> started (launching the run's process),
    started -> ended (the steps: raw_trades, trade_analytics_1m and their checks)."""
    import dagster as dg

    parts: dict[str, list[float]] = {"decide_s": [], "launch_s": [], "execute_s": []}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in instance.get_run_records(limit=500):
            ops = (record.dagster_run.run_config or {}).get("ops", {})
            labels = ops.get("raw_trades", {}).get("config", {}).get("minutes") or []
            if not labels or record.start_time is None or record.end_time is None:
                continue
            last_end = max(parse_minute_label(label) for label in labels) + MINUTE_MS
            created = record.create_timestamp.timestamp()
            parts["decide_s"].append(created - last_end / 1000)
            parts["launch_s"].append(record.start_time - created)
            parts["execute_s"].append(record.end_time - record.start_time)
    summary = {k: {p: round(v, 2) for p, v in percentiles(vs).items()} for k, vs in parts.items()}
    summary["runs"] = len(parts["launch_s"])
    return summary


def _watch(
    process: subprocess.Popen, database: Path, started_ms: int, minutes: int
) -> dict[tuple[str, int], int]:
    """Poll until ``minutes`` full minutes closed after the first row appeared (+ a margin)."""
    first_seen: dict[tuple[str, int], int] = {}
    deadline = time.monotonic() + START_TIMEOUT_S
    end_ms: int | None = None
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the platform exited with code {process.returncode}")
        now = _now_ms()
        for key in _seen_rows(database) - first_seen.keys():
            first_seen[key] = now
        if end_ms is None:
            if first_seen:
                first_minute = (min(first_seen.values()) // MINUTE_MS + 1) * MINUTE_MS
                end_ms = first_minute + minutes * MINUTE_MS + 30_000  # last window's lag
                print(f"first row after {(now - started_ms) / 1000:.0f}s; measuring", flush=True)
            elif time.monotonic() > deadline:
                raise RuntimeError(f"no analytics row within {START_TIMEOUT_S:.0f}s of starting")
        elif now >= end_ms:
            return first_seen
        time.sleep(POLL_S)


def _summary(
    first_seen: dict[tuple[str, int], int],
    started_ms: int,
    minutes: int,
    settings: Settings,
    log_tail: list[str],
) -> dict:
    ready_ms = min(first_seen.values())
    steady_from = (ready_ms // MINUTE_MS + 1) * MINUTE_MS
    steady_to = steady_from + minutes * MINUTE_MS
    lags = {
        key: (seen - (key[1] + MINUTE_MS)) / 1000
        for key, seen in first_seen.items()
        if steady_from <= key[1] < steady_to
    }
    windows = sorted({minute for _symbol, minute in lags})
    symbols = sorted({symbol for symbol, _minute in lags})
    return {
        "benchmark": "freshness",
        "machine": machine(),
        "minutes_measured": len(windows),
        "symbols": symbols,
        "rows_measured": len(lags),
        "grace_seconds": settings.grace_seconds,
        "sensor_interval_seconds": settings.sensor_interval_seconds,
        "poll_interval_seconds": POLL_S,
        "first_row_after_start_s": round((ready_ms - started_ms) / 1000, 1),
        "lag_s": {k: round(v, 2) for k, v in percentiles(list(lags.values())).items()},
        "missing_rows": len(symbols) * len(windows) - len(lags),
        "platform_log_tail": log_tail,
    }


def report(result: dict) -> str:
    lag = result["lag_s"]
    target = 10 + result["grace_seconds"]
    rows = [
        ["p50", lag.get("p50")],
        ["p95", lag.get("p95")],
        ["p99", lag.get("p99")],
        ["max", lag.get("max")],
    ]
    return (
        table(["lag after window end (s)", "value"], rows)
        + f"\n\n{result['rows_measured']} rows ({len(result['symbols'])} symbols x "
        f"{result['minutes_measured']} minutes), grace {result['grace_seconds']} s, sensor "
        f"interval {result['sensor_interval_seconds']} s, poll {result['poll_interval_seconds']} "
        f"s; missing rows {result['missing_rows']}; first row {result['first_row_after_start_s']} "
        f"s after start.\ntarget p95 < {target:g} s (10 s + grace): "
        f"{'met' if lag.get('p95', 1e9) < target else 'MISSED'}"
        f"\nwhere it goes (per run, p50/max s): {_breakdown(result.get('runs') or {})}"
    )


def _breakdown(runs: dict) -> str:
    names = {"decide_s": "window end -> run created", "launch_s": "created -> started"}
    names["execute_s"] = "started -> ended"
    return "; ".join(
        f"{label} {runs[key].get('p50')}/{runs[key].get('max')}"
        for key, label in names.items()
        if runs.get(key)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 minutes instead of 10")
    parser.add_argument("--minutes", type=int, default=None)
    args = parser.parse_args()
    minutes = args.minutes or (3 if args.quick else 10)
    result = measure(minutes)
    print(report(result))
    print(f"written: {write_results('freshness', result)}")


if __name__ == "__main__":
    main()
