"""Soak: the exchange simulator at 5k trades/s over 10 symbols, the ingestion service for a
long time; memory must stay flat (RSS growth under 10% after warm-up) and lag must not grow.

Lag is measured at the far end: wall clock minus the newest trade time in the topic (the
simulator publishes in real time, so a service falling behind shows as a growing lag).

    python -m bench.soak                 # 10 minutes (the issue's soak)
    python -m bench.soak --seconds 3600  # longer
The fault suite runs :func:`soak` for 75 s (crypto_platform_tests/test_faults/test_soak.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench._common import ROOT, bench_broker, emit, new_topic, temp_dir, write_results
from bench.ingest import _rate_per_scale, simulator
from crypto_platform.ingest.cli import urls_from_base
from crypto_platform.kafka import admin

SAMPLE_S = 5.0
WARMUP_S = 20.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def newest_trade_ms(consumer: Consumer, topic: str, partitions: list[int]) -> tuple[int, int]:
    """(messages in the topic, newest message timestamp = trade time) over all partitions."""
    total, newest, wanted = 0, 0, []
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - low
        if high > low:
            wanted.append(TopicPartition(topic, p, high - 1))
    if wanted:
        consumer.assign(wanted)
        deadline = time.monotonic() + 10
        seen: set[int] = set()
        while len(seen) < len(wanted) and time.monotonic() < deadline:
            for msg in consumer.consume(len(wanted), 0.5):
                if msg.error() is None:
                    seen.add(msg.partition())
                    newest = max(newest, msg.timestamp()[1])
    return total, newest


def soak(bootstrap: str, seconds: float, rate: float = 5000.0, log_path: Path | None = None):
    """Run the service against a paced simulator for ``seconds``; the samples and a verdict."""
    from crypto_platform.ingest.config import IngestConfig

    trades = new_topic(bootstrap, "soak-trades", 6)
    dlq, progress = new_topic(bootstrap, "soak-dlq", 1), new_topic(bootstrap, "soak-progress", 1)
    scale = rate / _rate_per_scale()
    samples: list[dict] = []
    with simulator("1", scale, seconds + 60) as base:
        ws, rest = urls_from_base(base)
        config = IngestConfig(
            bootstrap,
            _symbols(),
            ws,
            rest,
            trades_topic=trades,
            dlq_topic=dlq,
            progress_topic=progress,
            stats_interval_s=30.0,
        )
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        fields.pop("stats_json")
        out = open(log_path or "/dev/null", "ab")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.soak", "--worker", json.dumps(fields)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
        try:
            started = time.monotonic()
            partitions = sorted(consumer.list_topics(trades, timeout=10).topics[trades].partitions)
            while time.monotonic() - started < seconds:
                time.sleep(SAMPLE_S)
                if process.poll() is not None:
                    raise RuntimeError(f"the service exited with {process.returncode}")
                count, newest = newest_trade_ms(consumer, trades, partitions)
                samples.append(
                    {
                        "t_s": round(time.monotonic() - started, 1),
                        "rss_mb": round(rss_mb(process.pid), 1),
                        "messages": count,
                        "lag_ms": time.time_ns() // 1_000_000 - newest if newest else None,
                    }
                )
        finally:
            consumer.close()
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            out.close()
            admin.delete_topics(bootstrap, [trades, dlq, progress])
    return verdict(samples, seconds)


def _symbols() -> list[str]:
    from bench.ingest import _symbols as symbols

    return symbols()


def verdict(samples: list[dict], seconds: float) -> dict:
    """RSS growth after warm-up and lag in the first vs the last third of the run."""
    warm = [s for s in samples if s["t_s"] >= WARMUP_S]
    third = max(1, len(warm) // 3)
    first, last = warm[:third], warm[-third:]
    base_rss = first[0]["rss_mb"]
    lag_first = max(s["lag_ms"] or 0 for s in first)
    lag_last = max(s["lag_ms"] or 0 for s in last)
    span = warm[-1]["t_s"] - warm[0]["t_s"]
    return {
        "seconds": seconds,
        "trades_per_s": round((warm[-1]["messages"] - warm[0]["messages"]) / max(span, 1e-3)),
        "rss_after_warmup_mb": base_rss,
        "rss_max_mb": max(s["rss_mb"] for s in warm),
        "rss_growth_pct": round((max(s["rss_mb"] for s in last) / base_rss - 1) * 100, 1),
        "lag_first_third_max_ms": lag_first,
        "lag_last_third_max_ms": lag_last,
        "samples": samples,
    }


def _worker(config_json: str) -> None:
    import signal

    from crypto_platform.ingest.config import IngestConfig
    from crypto_platform.ingest.service import IngestService

    service = IngestService(IngestConfig(**json.loads(config_json)))
    signal.signal(signal.SIGTERM, lambda _s, _f: service.request_stop())
    service.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker)
        return
    with temp_dir("soak-") as home, bench_broker(home) as broker:
        result = soak(broker.bootstrap_servers, args.seconds, args.rate, home / "ingest.log")
    emit({k: v for k, v in result.items() if k != "samples"})
    write_results("soak", result)


if __name__ == "__main__":
    main()
