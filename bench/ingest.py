"""Ingestion: trades/s from the exchange simulator through the ingestion service into Kafka.

Each phase starts a fresh exchange simulator process (``crypto-platform exchange-sim``, 10
symbols) and runs the measured side in a worker process of its own:

- ``receive``: the WebSocket ceiling: websocket-client reads frames (the service's own reader
  class), nothing else: no JSON, no Kafka;
- ``memory``: the Kafka ceiling: the same trades, as the same event JSON, produced from memory
  with the platform's producer (key, trade-time timestamp, header, delivery callback), no
  WebSocket;
- ``ingest``: the ingestion service (``IngestService``) as it runs in production, the simulator
  sending as fast as it is read; sustained trades/s from the first trade received to the N-th
  acknowledged by Kafka, receive-to-delivery latency, peak RSS;
- ``paced``: the service at a steady 5k trades/s (the simulator in real time), for the
  receive-to-delivery latency under a realistic load.

    python -m bench.ingest            # 1M trades, 60 s paced
    python -m bench.ingest --quick    # 100k trades, 20 s paced
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from bench._common import (
    ROOT,
    bench_broker,
    emit,
    machine,
    new_topic,
    percentiles,
    run_worker,
    table,
    temp_dir,
    write_results,
)
from crypto_platform.core.simulation import default_profile
from crypto_platform.core.topics import RECEIVED_AT_HEADER
from crypto_platform.kafka.broker import free_port

SYMBOLS = "btcusdt,ethusdt,bnbusdt,solusdt,xrpusdt,adausdt,dogeusdt,ltcusdt,dotusdt,linkusdt"
FAST_SCALE = 50.0  # ~2,950 trades per second of trade time; sent as fast as they are read
PACED_RATE = 5_000  # trades/s for the latency phase
WARM_UP_S = 5.0
SIM_START_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 900.0


def _symbols() -> list[str]:
    return [s.upper() for s in SYMBOLS.split(",")]


def _rate_per_scale() -> float:
    return sum(default_profile(s).trades_per_second for s in _symbols())


# -- the simulator ------------------------------------------------------------------------------


@contextlib.contextmanager
def simulator(speed: str, scale: float, duration_s: float):
    """An exchange simulator process on a free port; yields its base URL; stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "crypto_platform", "exchange-sim", "--port", str(port)]
    command += ["--symbols", SYMBOLS, "--speed", speed, "--rate-scale", str(scale)]
    command += ["--duration", str(duration_s), "--wait-for-clients", "1", "--seed", "7"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/api/v3/ping", process)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_for(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SIM_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the exchange simulator exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {SIM_START_TIMEOUT_S:.0f}s")


# -- workers ------------------------------------------------------------------------------------


def receive_only(base_url: str, count: int) -> dict:
    """Read ``count`` text frames with the service's WebSocket reader; nothing else."""
    import websocket

    from crypto_platform.ingest.binance import ReadAheadWebSocket, stream_urls
    from crypto_platform.ingest.cli import urls_from_base

    ws_url, _rest = urls_from_base(base_url)
    url = stream_urls(ws_url, _symbols(), 1024)[0][0]
    ws = websocket.create_connection(
        url, timeout=30, class_=ReadAheadWebSocket, skip_utf8_validation=True
    )
    received = 0
    started = None
    cpu_before = _cpu_s()
    while received < count:
        _opcode, texts = ws.recv_texts()  # the service's reading, frames in lists as read
        if texts:
            received += len(texts)
            started = started or time.monotonic()
    elapsed = time.monotonic() - (started or time.monotonic())
    cpu = _cpu_s() - cpu_before
    ws.close(timeout=1)
    return {
        "trades": received,
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "trades_per_cpu_second": round(received / max(cpu, 1e-3)),
    }


def produce_from_memory(bootstrap: str, topic: str, count: int) -> dict:
    """The same trades' event JSON, held in memory, produced as the service produces them."""
    from functools import partial

    from crypto_platform.core.simulation import MarketSimulation
    from crypto_platform.core.trades import trade_to_event
    from crypto_platform.ingest.sim_protocol import event_json
    from crypto_platform.kafka.producer import KafkaProducer

    start_ms = time.time_ns() // 1_000_000
    simulation = MarketSimulation(_symbols(), 7, start_ms, FAST_SCALE)
    messages = []
    for trade in simulation.trades_between(start_ms, start_ms + 10**9):
        value = event_json(trade_to_event(trade)).encode()
        messages.append((trade.symbol, trade.trade_id, trade.trade_time_ms, value))
        if len(messages) == count:
            break
    producer = KafkaProducer(bootstrap, delivery_timeout_s=300.0)
    delivered = [0]

    def on_delivery(_symbol: str, _trade_id: int, err: str | None) -> None:
        if err is None:
            delivered[0] += 1

    cpu_before = _cpu_s()
    started = time.monotonic()
    for i, (symbol, trade_id, time_ms, value) in enumerate(messages):
        header = [(RECEIVED_AT_HEADER, str(time.time_ns() // 1_000_000).encode())]
        producer.produce(
            topic, value, symbol, time_ms, header, partial(on_delivery, symbol, trade_id)
        )
        if i % 2_000 == 0:
            producer.poll(0)
    producer.flush(300.0)
    elapsed = time.monotonic() - started
    cpu = _cpu_s() - cpu_before
    return {
        "trades": delivered[0],
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "trades_per_cpu_second": round(delivered[0] / max(cpu, 1e-3)),
    }


def _timed_service_class() -> Any:
    from crypto_platform.ingest.service import IngestService

    class TimedService(IngestService):
        """The production service, noting each stream trade's receive and delivery times."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.received: dict[tuple[str, int], int] = {}
            self.latencies: list[tuple[float, int]] = []  # (monotonic at delivery, ms)
            self.first_at: float | None = None
            self.delivered_total = 0
            self.target: int | None = None
            self.target_at: float | None = None

        def _produce_trade(self, symbol, trade_id, time_ms, value, received_ms, from_rest):
            self.first_at = self.first_at or time.monotonic()
            produced = super()._produce_trade(
                symbol, trade_id, time_ms, value, received_ms, from_rest
            )
            if produced and not from_rest:
                self.received[(symbol, trade_id)] = received_ms
            return produced

        def _trade_delivered(self, symbol, trade_id, time_ms, err):
            super()._trade_delivered(symbol, trade_id, time_ms, err)
            received = self.received.pop((symbol, trade_id), None)
            if err is not None:
                return
            self.delivered_total += 1
            if self.delivered_total == self.target:
                self.target_at = time.monotonic()
            if received is not None:
                self.latencies.append((time.monotonic(), time.time_ns() // 1_000_000 - received))

    return TimedService


def _run_service(base_url: str, bootstrap: str, stop_when, timeout_s: float):
    from crypto_platform.ingest.cli import urls_from_base
    from crypto_platform.ingest.config import IngestConfig

    ws_url, rest_url = urls_from_base(base_url)
    config = IngestConfig(
        bootstrap,
        _symbols(),
        ws_url,
        rest_url,
        trades_topic=new_topic(bootstrap, "bench-trades", 6),
        dlq_topic=new_topic(bootstrap, "bench-dlq", 1),
        progress_topic=new_topic(bootstrap, "bench-progress", 1),
        stats_interval_s=5.0,
    )
    service = _timed_service_class()(config)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=target, name="ingest", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not stop_when(service) and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    service.request_stop()
    thread.join(60)
    if errors:
        raise errors[0]
    return service


def ingest_fast(base_url: str, bootstrap: str, count: int) -> dict:
    """The service with the simulator sending as fast as it reads: until ``count`` delivered."""

    def reached(service: Any) -> bool:
        service.target = count
        return service.target_at is not None

    cpu_before = _cpu_s()
    service = _run_service(base_url, bootstrap, reached, PHASE_TIMEOUT_S)
    cpu = _cpu_s() - cpu_before
    if service.target_at is None or service.first_at is None:
        raise RuntimeError(f"only {service.delivered_total} of {count} trades delivered")
    elapsed = service.target_at - service.first_at
    lat = percentiles([ms for _at, ms in service.latencies])
    return {
        "trades": count,
        "seconds": round(elapsed, 2),
        "latency_ms": lat,
        "cpu_seconds": round(cpu, 2),
        "trades_per_cpu_second": round(service.delivered_total / cpu),
    }


def _cpu_s() -> float:
    """CPU seconds (user + system, all threads) this process has used."""
    times = os.times()
    return times.user + times.system


def ingest_paced(base_url: str, bootstrap: str, seconds: float) -> dict:
    """The service at a steady rate for ``seconds``; latency after a warm-up."""
    started = time.monotonic()
    service = _run_service(
        base_url, bootstrap, lambda _s: time.monotonic() - started >= seconds, seconds + 60
    )
    if service.first_at is None:
        raise RuntimeError("no trade was received")
    warm = service.first_at + WARM_UP_S
    measured = [ms for at, ms in service.latencies if at >= warm]
    window = max(1e-3, max((at for at, _ in service.latencies), default=warm) - warm)
    return {
        "trades": len(measured),
        "seconds": round(window, 2),
        "latency_ms": percentiles(measured),
        "dead_letters": sum(service.stats.dead_letters.values()),
        "disconnects": service.stats.disconnects,
    }


def worker(args: list[str]) -> None:
    kind, *rest = args
    result = {
        "receive": lambda: receive_only(rest[0], int(rest[1])),
        "memory": lambda: produce_from_memory(rest[0], rest[1], int(rest[2])),
        "ingest": lambda: ingest_fast(rest[0], rest[1], int(rest[2])),
        "paced": lambda: ingest_paced(rest[0], rest[1], float(rest[2])),
    }[kind]()
    emit(result)


# -- the run ------------------------------------------------------------------------------------


def measure(count: int, paced_s: float) -> dict:
    duration = count * 1.3 / (_rate_per_scale() * FAST_SCALE)  # trade time with room to spare
    paced_scale = PACED_RATE / _rate_per_scale()
    results: dict = {
        "benchmark": "ingest",
        "machine": machine(),
        "symbols": _symbols(),
        "trades": count,
    }
    with temp_dir("bench-ingest-") as tmp, bench_broker(tmp) as broker:
        bootstrap = broker.bootstrap_servers
        for name, speed, scale, sim_duration in (
            ("receive", "max", FAST_SCALE, duration),
            ("memory", None, None, None),
            ("ingest", "max", FAST_SCALE, duration),
            ("paced", "1", paced_scale, paced_s + 120),
        ):
            print(f"running {name} ...", flush=True)
            try:
                results[name] = _phase(name, bootstrap, count, paced_s, speed, scale, sim_duration)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                results[name] = {"error": str(exc)[-2000:]}
            print(f"{name}: {results[name]}", flush=True)
    results["paced_target_rate"] = PACED_RATE
    return results


def _phase(name, bootstrap, count, paced_s, speed, scale, sim_duration) -> dict:
    if speed is None:
        topic = new_topic(bootstrap, "bench-memory", 6)
        return run_worker("ingest", ["memory", bootstrap, topic, str(count)])
    with simulator(speed, scale, sim_duration) as base:
        if name == "receive":
            return run_worker("ingest", ["receive", base, str(count)])
        if name == "ingest":
            return run_worker("ingest", ["ingest", base, bootstrap, str(count)])
        return run_worker("ingest", ["paced", base, bootstrap, str(paced_s)])


def _rate(result: dict | None) -> float | None:
    if not result or "error" in result or not result.get("seconds"):
        return None
    return result["trades"] / result["seconds"]


def report(results: dict) -> str:
    ceilings = [r for r in (_rate(results.get("receive")), _rate(results.get("memory"))) if r]
    lower = min(ceilings) if ceilings else None
    rows = []
    for label, name in (
        ("WebSocket receive only (ceiling)", "receive"),
        ("produce from memory (ceiling)", "memory"),
        ("ingestion service, simulator as fast as read", "ingest"),
        (f"ingestion service, paced {PACED_RATE:,} trades/s", "paced"),
    ):
        result = results.get(name) or {}
        rate = _rate(result)
        latency = result.get("latency_ms") or {}
        rows.append(
            [
                label,
                result.get("trades"),
                result.get("seconds"),
                rate,
                None if rate is None or not lower else f"{rate / lower:.2f}",
                latency.get("p50"),
                latency.get("p99"),
                result.get("peak_rss_mb"),
                result.get("trades_per_cpu_second"),
            ]
        )
    headers = ["phase", "trades", "seconds", "trades/s", "x lower ceiling", "p50 ms", "p99 ms"]
    text = table([*headers, "peak RSS MB", "trades per CPU-s"], rows)
    for name in ("receive", "memory", "ingest", "paced"):
        if (results.get(name) or {}).get("error"):
            text += f"\n{name} FAILED: {results[name]['error'][-500:]}"
    return text


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k trades, 20 s paced")
    parser.add_argument("--trades", type=int, default=None)
    parser.add_argument("--paced-seconds", type=float, default=None)
    args = parser.parse_args()
    count = args.trades or (100_000 if args.quick else 1_000_000)
    paced = args.paced_seconds or (20.0 if args.quick else 60.0)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    results = measure(count, paced)
    print(report(results))
    print(f"written: {write_results('ingest', results)}")


if __name__ == "__main__":
    main()
