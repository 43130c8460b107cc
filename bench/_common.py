"""What the benchmarks share: a throwaway broker, workers in their own processes, results.

Every measured pipeline runs in its own Python process (``python -m bench.<name> --worker ...``),
so its peak RSS is its own and one pipeline's garbage does not slow the next. The orchestrating
process starts the broker, runs the workers one after the other, prints a table and writes JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crypto_platform.kafka import admin
from crypto_platform.kafka.broker import LocalBroker, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
KEEP_FOREVER = {"retention.ms": "-1"}  # message timestamps are trade times, possibly old
BROKER_HEAP = "512m"
WORKER_TIMEOUT_S = 1800.0


@contextlib.contextmanager
def bench_broker(home: Path) -> Iterator[LocalBroker]:
    """A real Kafka broker on free loopback ports under ``home``; stopped on exit."""
    broker = LocalBroker(
        home=home / "kafka",
        cache_dir=ROOT / ".cache",
        port=free_port(),
        controller_port=free_port(),
        heap=BROKER_HEAP,
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as path:
        yield Path(path)


def new_topic(bootstrap: str, prefix: str, partitions: int) -> str:
    """A fresh topic that keeps every message (no time retention)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin.create_topics(bootstrap, [admin.TopicSpec(name, partitions, KEEP_FOREVER)])
    return name


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_worker(module: str, args: list[str], timeout_s: float = WORKER_TIMEOUT_S) -> dict:
    """Run ``python -m bench.<module> --worker <args>``; its last stdout line is its JSON."""
    command = [sys.executable, "-m", f"bench.{module}", "--worker", *args]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"worker {' '.join(args[:1])} failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(time.monotonic() - started, 2)
    return result


def emit(result: dict) -> None:
    """A worker's answer: one JSON line on stdout, with its peak RSS."""
    result["peak_rss_mb"] = peak_rss_mb()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def machine() -> dict[str, Any]:
    """The conditions: CPU, cores, memory, load when the benchmark started, versions."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "kafka_heap": BROKER_HEAP,
        "note": "2 shared cores; other work was running: figures are noisy, ratios count",
    }


def write_results(name: str, results: dict) -> Path:
    """``bench/results/<name>-<UTC time>.json`` (git-ignored); returns the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-markdown table (what docs/benchmarks.md shows)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def percentiles(values: list[float], points: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (and the max) of ``values``; empty -> {}."""
    if not values:
        return {}
    ordered = sorted(values)
    found = {
        f"p{p:g}": ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]
        for p in points
    }
    found["max"] = ordered[-1]
    return found
