"""Window computation: one hour of trades, from Kafka to per-minute analytics in DuckDB.

The same topic (10 symbols, 60 minutes, >= 5M trades by default, produced as ingestion does:
key = symbol, value = Binance's event JSON, timestamp = trade time, ``received_at_ms`` header)
is read by, one after the other, each in its own process:

- ``consume``: the ceiling: every message read with the platform reader's consumer settings,
  its value touched, nothing computed;
- ``dagster``: the platform: ``raw_trades`` + ``trade_analytics_1m`` over the hour, one backfill
  run (``trade_minutes_job`` over a partition range, as the UI launches it), in-process;
- ``naive``: the seed's simple processor: ``poll()`` one message at a time, ``json.loads``,
  Python lists per (symbol, window), ``statistics.stdev``, one DuckDB INSERT per closed window;
- ``spark``: ``crypto-platform spark --available-now --max-offsets-per-trigger 500000``
  (local[2]) when pyspark is installed.

    python -m bench.windows            # 5M trades
    python -m bench.windows --quick    # 500k trades
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench._common import (
    ROOT,
    bench_broker,
    emit,
    machine,
    new_topic,
    run_worker,
    table,
    temp_dir,
    write_results,
)
from crypto_platform.core.simulation import MarketSimulation, default_profile, units_to_str
from crypto_platform.core.topics import RECEIVED_AT_HEADER

SYMBOLS = [
    "BTCUSDT",
    "ETHUSDT",
    "BNBUSDT",
    "SOLUSDT",
    "XRPUSDT",
    "ADAUSDT",
    "DOGEUSDT",
    "LTCUSDT",
    "DOTUSDT",
    "LINKUSDT",
]
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
PARTITIONS = 6
SEED = 7
ACTIVITY_MEAN = 1.046  # E[exp(N(0, 0.3))]: the simulation's mean activity factor
MARGIN = 1.02
SPARK_MAX_OFFSETS = 500_000  # all 5M in one micro-batch killed Spark's JVM (driver 1g) here


# -- the data ---------------------------------------------------------------------------------


def bench_hour_ms() -> int:
    """A recent whole hour (three hours ago), so the hourly partition exists and is closed."""
    now = int(time.time() * 1000)
    return now - now % HOUR_MS - 3 * HOUR_MS


def rate_scale_for(trades: int) -> float:
    """The simulation's rate multiplier that gives at least ``trades`` trades in the hour (with
    seed 7: 4.96M asked 5M without the margin)."""
    per_hour = sum(default_profile(s).trades_per_second for s in SYMBOLS) * 3600 * ACTIVITY_MEAN
    return trades * MARGIN / per_hour


def minute_messages(sim: MarketSimulation, minute: int) -> list[tuple[int, str, bytes]]:
    """(trade time, symbol, Binance event JSON) of one minute of every symbol, by time."""
    rows: list[tuple[int, str, bytes]] = []
    for symbol in SYMBOLS:
        block = sim.symbol(symbol).block(minute)
        first = block.first_id
        for i, (t, p, q, m) in enumerate(
            zip(
                block.times_ms.tolist(),
                block.price_units.tolist(),
                block.qty_units.tolist(),
                block.buyer_is_maker.tolist(),
                strict=True,
            )
        ):
            value = (
                f'{{"e":"trade","E":{t},"s":"{symbol}","t":{first + i},"p":"{units_to_str(p)}",'
                f'"q":"{units_to_str(q)}","T":{t},"m":{"true" if m else "false"},"M":true}}'
            )
            rows.append((t, symbol, value.encode()))
    rows.sort(key=lambda row: row[0])
    return rows


def load(bootstrap: str, topic: str, hour_ms: int, scale: float) -> dict:
    """Produce the hour into ``topic`` with the platform's producer; count and time it."""
    from crypto_platform.kafka.producer import KafkaProducer

    sim = MarketSimulation(SYMBOLS, SEED, hour_ms, scale)
    producer = KafkaProducer(bootstrap, delivery_timeout_s=300.0)
    count = 0
    started = time.monotonic()
    for minute in range(60):
        for t, symbol, value in minute_messages(sim, minute):
            producer.produce(topic, value, symbol, t, [(RECEIVED_AT_HEADER, str(t + 40).encode())])
            count += 1
            if count % 20_000 == 0:
                producer.poll(0)
    left = producer.flush(300.0)
    if left or sum(producer.stats.failed.values()):
        raise RuntimeError(f"{left} messages not delivered, {producer.stats.failed} failed")
    elapsed = time.monotonic() - started
    return {"trades": count, "seconds": round(elapsed, 2), "trades_per_s": round(count / elapsed)}


# -- the pipelines (each in its own worker process) ------------------------------------------


def consume_only(bootstrap: str, topic: str) -> dict:
    """Read every message of ``topic`` (value touched), nothing computed: the ceiling."""
    from confluent_kafka import Consumer, TopicPartition

    from crypto_platform.kafka.reader import _CONSUMER_CONFIG  # the platform's reader settings

    consumer = Consumer({"bootstrap.servers": bootstrap, **_CONSUMER_CONFIG})
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in partitions}
    started = time.monotonic()
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    count = size = 0
    deadline = started + 600
    while count < sum(highs.values()) and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=10_000, timeout=0.5)
        values = [m.value() for m in batch if m.error() is None]
        count += len(values)
        size += sum(map(len, values))
    elapsed = time.monotonic() - started
    consumer.close()
    return {"trades": count, "seconds": round(elapsed, 2), "bytes": size}


def dagster_backfill(bootstrap: str, topic: str, hour_ms: int, data_dir: str) -> dict:
    """One backfill run of ``raw_trades`` + ``trade_analytics_1m`` over the hour, in-process."""
    import_started = time.monotonic()
    import dagster as dg
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from crypto_platform import warehouse
    from crypto_platform.definitions import build_definitions
    from crypto_platform.defs.partitions import hour_partition_key
    from crypto_platform.settings import Settings

    settings = Settings(
        data_dir=Path(data_dir),
        kafka_bootstrap_servers=bootstrap,
        symbols=[s.lower() for s in SYMBOLS],
        partitions_start=datetime.fromtimestamp(hour_ms / 1000, tz=UTC).date(),
    )
    defs = build_definitions(settings, trades_topic=topic)
    job = defs.resolve_job_def("trade_minutes_job")
    key = hour_partition_key(hour_ms)
    tags = {ASSET_PARTITION_RANGE_START_TAG: key, ASSET_PARTITION_RANGE_END_TAG: key}
    setup_s = time.monotonic() - import_started
    with dg.instance_for_test() as instance:
        started = time.monotonic()
        result = job.execute_in_process(instance=instance, tags=tags)
        run_s = time.monotonic() - started
        steps = _step_seconds(instance, result.run_id)
    with warehouse.connection(settings.resolved_duckdb_path, read_only=True) as conn:
        rows, trades = conn.execute(
            "SELECT count(*), sum(trade_count) FROM trade_analytics_1m"
        ).fetchone()
    return {
        "trades": int(trades or 0),
        "analytics_rows": rows,
        "seconds": round(steps["raw_trades"] + steps["trade_analytics_1m"], 2),
        "steps_with_checks_seconds": steps["all_steps"],
        "run_seconds": round(run_s, 2),
        "import_and_definitions_seconds": round(setup_s, 2),
        "steps": steps,
    }


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds per step (start to success) and from the first start to the last success."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            ends[event.step_key] = entry.timestamp
    found = {k: round(ends[k] - starts[k], 2) for k in starts if k in ends}
    found["all_steps"] = round(max(ends.values()) - min(starts.values()), 2)
    return found


def naive(bootstrap: str, topic: str, database: str) -> dict:
    """The seed's simple processor: one message at a time, Python lists, one INSERT per window."""
    import duckdb
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "naive", "auto.offset.reset": "earliest"}
    )
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    total = sum(consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in partitions)
    conn = duckdb.connect(database)
    conn.execute(
        "CREATE TABLE analytics (symbol VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, "
        "avg_price DOUBLE, price_change_pct DOUBLE, volatility DOUBLE, trade_count INTEGER)"
    )
    started = time.monotonic()
    consumer.subscribe([topic])
    windows: dict[str, tuple[int, list[float]]] = {}  # symbol -> (window start, prices)
    count = written = 0
    deadline = started + 1800
    while count < total and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error() is not None:
            continue
        trade = json.loads(message.value())
        count += 1
        symbol, trade_time, price = trade["s"], trade["T"], float(trade["p"])
        window_start = trade_time - trade_time % MINUTE_MS
        current = windows.get(symbol)
        if current is not None and trade_time >= current[0] + MINUTE_MS:
            written += _write_window(conn, symbol, *current)
            current = None
        if current is None:
            current = windows[symbol] = (window_start, [])
        current[1].append(price)
    for symbol, (start, prices) in windows.items():
        written += _write_window(conn, symbol, start, prices)
    elapsed = time.monotonic() - started
    trades = conn.execute("SELECT sum(trade_count) FROM analytics").fetchone()[0]
    conn.close()
    consumer.close()
    return {"trades": count, "trades_in_db": trades, "analytics_rows": written, "seconds": elapsed}


def _write_window(conn, symbol: str, start_ms: int, prices: list[float]) -> int:
    low, high = min(prices), max(prices)
    conn.execute(
        "INSERT INTO analytics VALUES (?, make_timestamp(? * 1000), make_timestamp(? * 1000), "
        "?, ?, ?, ?)",
        [
            symbol,
            start_ms,
            start_ms + MINUTE_MS,
            sum(prices) / len(prices),
            (high - low) / low * 100,
            statistics.stdev(prices) if len(prices) > 1 else None,
            len(prices),
        ],
    )
    return 1


def spark(bootstrap: str, topic: str, data_dir: str, max_offsets: int) -> dict:
    """``crypto-platform spark --available-now`` into a DuckDB file; Spark's JVM is a child."""
    import duckdb

    output = Path(data_dir) / "spark.duckdb"
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CRYPTO_PLATFORM_DATA_DIR": data_dir,
            "CRYPTO_PLATFORM_CACHE_DIR": str(ROOT / ".cache"),
        }
    )
    command = [sys.executable, "-m", "crypto_platform", "spark", "--available-now"]
    command += ["--topic", topic, "--output", str(output)]
    if max_offsets:
        command += ["--max-offsets-per-trigger", str(max_offsets)]
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        causes = [
            line for line in done.stderr.splitlines() if "Error" in line or "Exception" in line
        ]
        raise RuntimeError("the Spark job failed:\n" + "\n".join(causes[:15]))
    with duckdb.connect(str(output), read_only=True) as conn:
        rows, trades = conn.execute(
            "SELECT count(*), sum(trade_count) FROM trade_analytics_1m"
        ).fetchone()
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "trades": int(trades or 0),
        "analytics_rows": rows,
        "seconds": round(elapsed, 2),
        "largest_child_rss_mb": round(children_mb, 1),
        "max_offsets_per_trigger": max_offsets or None,
        "note": "wall time of the whole command (JVM start, Spark session, job); rows are "
        "emitted once the watermark passes a minute, so the last minutes may be missing",
    }


def worker(args: list[str]) -> None:
    kind, *rest = args
    result = {
        "load": lambda: load(rest[0], rest[1], int(rest[2]), float(rest[3])),
        "consume": lambda: consume_only(rest[0], rest[1]),
        "dagster": lambda: dagster_backfill(rest[0], rest[1], int(rest[2]), rest[3]),
        "naive": lambda: naive(rest[0], rest[1], rest[2]),
        "spark": lambda: spark(rest[0], rest[1], rest[2], int(rest[3])),
    }[kind]()
    emit(result)


# -- the run ------------------------------------------------------------------------------------


def spark_available() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def measure(trades: int, skip: set[str], spark_max_offsets: int = 0) -> dict:
    hour_ms = bench_hour_ms()
    scale = rate_scale_for(trades)
    results: dict = {"benchmark": "windows", "machine": machine(), "hour_ms": hour_ms}
    with temp_dir("bench-windows-") as tmp, bench_broker(tmp) as broker:
        bootstrap = broker.bootstrap_servers
        topic = new_topic(bootstrap, "bench-trades", PARTITIONS)
        print(f"loading ~{trades:,} trades into {topic} ...", flush=True)
        results["load"] = run_worker(
            "windows", ["load", bootstrap, topic, str(hour_ms), str(scale)]
        )
        print(f"loaded: {results['load']}", flush=True)
        plans = {
            "consume": ["consume", bootstrap, topic],
            "dagster": ["dagster", bootstrap, topic, str(hour_ms), str(tmp / "dagster")],
            "naive": ["naive", bootstrap, topic, str(tmp / "naive.duckdb")],
            "spark": ["spark", bootstrap, topic, str(tmp / "spark"), str(spark_max_offsets)],
        }
        if not spark_available():
            skip = skip | {"spark"}
        for name, args in plans.items():
            if name in skip:
                continue
            print(f"running {name} ...", flush=True)
            try:
                results[name] = run_worker("windows", args)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                results[name] = {"error": str(exc)[-2000:]}
            print(f"{name}: {results[name]}", flush=True)
    return results


def _rate(result: dict | None, key: str = "seconds") -> float | None:
    if not result or "error" in result or not result.get(key):
        return None
    return result["trades"] / result[key]


def _rss(result: dict | None) -> float | None:
    """Peak RSS of the process under test (for Spark: its largest process, the JVM)."""
    if not result:
        return None
    return result.get("largest_child_rss_mb", result.get("peak_rss_mb"))


def report(results: dict) -> str:
    consume, dag = results.get("consume"), results.get("dagster")
    naive_r, spark_r = results.get("naive"), results.get("spark")
    rows = []
    ceiling = _rate(consume)
    for label, result, key in (
        ("consume-only ceiling (nothing computed)", consume, "seconds"),
        ("platform: raw_trades + trade_analytics_1m steps", dag, "seconds"),
        ("platform: all steps incl. the 8 asset checks", dag, "steps_with_checks_seconds"),
        ("platform: same run, incl. Dagster run start", dag, "run_seconds"),
        ("platform: whole process (imports, definitions, run)", dag, "process_wall_s"),
        ("naive per-message baseline (seed's processor)", naive_r, "seconds"),
        ("Spark --available-now, local[2], whole command", spark_r, "seconds"),
    ):
        rate = _rate(result, key)
        rows.append(
            [
                label,
                None if not result or "error" in result else result.get("trades"),
                None if rate is None else round(result[key], 2),
                rate,
                None if rate is None or not ceiling else f"{rate / ceiling:.2f}",
                _rss(result),
            ]
        )
    text = table(["pipeline", "trades", "seconds", "trades/s", "x ceiling", "peak RSS MB"], rows)
    steps_rate, naive_rate = _rate(dag), _rate(naive_r)
    if steps_rate and naive_rate:
        text += f"\n\nplatform (steps) / naive baseline: {steps_rate / naive_rate:.1f}x"
    if dag and "error" not in dag:
        text += f"\nplatform steps: {dag['steps']}; analytics rows {dag['analytics_rows']}"
    for name in ("dagster", "naive", "spark"):
        if results.get(name, {}).get("error"):
            text += f"\n{name} FAILED: {results[name]['error'][-500:]}"
    return text


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500k trades instead of 5M")
    parser.add_argument("--trades", type=int, default=None)
    parser.add_argument("--skip", default="", help="comma-separated: consume,dagster,naive,spark")
    parser.add_argument(
        "--spark-max-offsets",
        type=int,
        default=SPARK_MAX_OFFSETS,
        help="Spark's --max-offsets-per-trigger (0 = the job's default: all in one batch)",
    )
    args = parser.parse_args()
    trades = args.trades or (500_000 if args.quick else 5_000_000)
    skip = {s for s in args.skip.split(",") if s}
    results = measure(trades, skip, args.spark_max_offsets)
    results["spark_max_offsets_per_trigger"] = args.spark_max_offsets or None
    print(report(results))
    print(f"written: {write_results('windows', results)}")


if __name__ == "__main__":
    main()
