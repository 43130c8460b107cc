"""The commands as `run --source sim` starts them: real processes, the session broker, `trades`.

One story: the supervisor starts the exchange simulator and the ingestion service; the service
is killed (SIGKILL, a crash) while trades flow and started again, and resumes from the end of
the topic; then SIGTERM flushes it and it exits 0 within a few seconds. The topic holds every id
of each symbol, contiguous, equal to what the exchange's REST endpoint says those trades are.
And ``ingest --stats-json FILE`` appends its statuses to FILE as JSON lines (``-`` = stdout).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.topics import TRADES_TOPIC
from crypto_platform.ingest.cli import spawn_ingestion
from crypto_platform.ingest.exchange_sim import ExchangeSimulator
from crypto_platform.ingest.sim_sources import SimulatedSource, wall_ms
from crypto_platform.runner import Supervisor
from crypto_platform_tests.conftest import LOOPBACK_NOWHERE, REPO_ROOT
from crypto_platform_tests.test_ingest.conftest import read_topic, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CLI = [sys.executable, "-m", "crypto_platform"]


def _ids_in_topic(bootstrap: str, symbols: list[str]) -> dict[str, dict[int, bytes]]:
    found: dict[str, dict[int, bytes]] = {s: {} for s in symbols}
    for msg in read_topic(bootstrap, TRADES_TOPIC):
        key = msg.key().decode()
        if key in found:
            found[key][json.loads(msg.value())["t"]] = msg.value()
    return found


def _rest(base_url: str, symbol: str, from_id: int) -> list[dict]:
    url = f"{base_url}/api/v3/historicalTrades?symbol={symbol}&fromId={from_id}&limit=1000"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_sim_and_ingest_processes_survive_a_crash_and_stop_cleanly_on_sigterm(
    bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:6]
    symbols = [f"a{tag}usdt", f"b{tag}usdt"]  # unique: `trades` is shared by the session
    for key in [k for k in os.environ if k.startswith("CRYPTO_PLATFORM_")]:
        monkeypatch.delenv(key)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CRYPTO_PLATFORM_SYMBOLS": ",".join(symbols),
        "CRYPTO_PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "CRYPTO_PLATFORM_INGEST_RECONNECT_MIN_SECONDS": "0.1",
        "CRYPTO_PLATFORM_INGEST_STATS_INTERVAL_SECONDS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(REPO_ROOT)
    upper = [s.upper() for s in symbols]
    supervisor = Supervisor()
    try:
        spawn_ingestion(supervisor, "sim")
        (_name, simulator), (_name2, first) = supervisor.processes
        port = next(arg for arg in simulator.args if arg.isdigit())
        base_url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: all(len(ids) >= 3 for ids in _ids_in_topic(bootstrap, upper).values()),
            60,
            "trades from the first service",
        )
        first.send_signal(signal.SIGKILL)  # a crash: no flush, no goodbye
        first.wait(10)
        time.sleep(3)  # trades go on at the exchange meanwhile
        log_path = tmp_path / "ingest.log"
        with open(log_path, "wb") as log:
            second = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "crypto_platform",
                    "ingest",
                    "--base-url",
                    base_url,
                    "--stats-json",
                    "-",  # stdout
                ],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        time.sleep(6)
        latest = {s: _rest(base_url, s, 0)[-1]["id"] for s in upper}  # exchange's latest now
        time.sleep(1)
        second.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        stdout, _ = second.communicate(timeout=30)
        assert second.returncode == 0, log_path.read_text()
        assert time.monotonic() - stopped < 5.0
        found = _ids_in_topic(bootstrap, upper)
        truth = {s: _rest(base_url, s, min(found[s])) for s in upper}  # the exchange's record
    finally:
        supervisor.shutdown()

    log_text = log_path.read_text()
    assert "resuming after trade id" in log_text
    assert "every trade handed to Kafka was acknowledged" in log_text
    snapshots = [json.loads(line) for line in stdout.decode().splitlines()]
    assert snapshots[-1]["final"] is True
    assert set(snapshots[-1]["symbols"]) == set(upper)
    for symbol in upper:
        ids = sorted(found[symbol])
        assert ids == list(range(ids[0], ids[-1] + 1)), f"{symbol}: a hole in {ids}"
        assert ids[-1] >= latest[symbol]
        for row in truth[symbol]:
            if row["id"] in found[symbol]:
                event = json.loads(found[symbol][row["id"]])
                assert (event["s"], event["p"], event["q"], event["T"], event["m"]) == (
                    symbol,
                    row["price"],
                    row["qty"],
                    row["time"],
                    row["isBuyerMaker"],
                )


def _json_lines(path: Path) -> list[dict]:
    """The complete lines of a file another process is appending to, parsed."""
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


def test_stats_json_appends_each_status_to_the_file_it_names(
    bootstrap: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    symbols = [f"c{tag}usdt", f"d{tag}usdt"]  # unique: `trades` is shared by the session
    upper = [s.upper() for s in symbols]
    start = wall_ms() - 120_000  # within the topic's retention
    simulation = MarketSimulation(symbols, seed=5, start_ms=start)
    expected = list(simulation.trades_between(start, start + 60_000))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTO_PLATFORM_")}
    env |= LOOPBACK_NOWHERE | {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CRYPTO_PLATFORM_SYMBOLS": ",".join(symbols),
        "CRYPTO_PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "CRYPTO_PLATFORM_INGEST_STATS_INTERVAL_SECONDS": "1",
    }
    stats = tmp_path / "ingest-stats.jsonl"
    stats.write_text('{"earlier": "run"}\n')  # a file that already holds lines is appended to
    source = SimulatedSource(simulation, speed=None, end_ms=start + 60_000)
    with ExchangeSimulator(source) as sim, open(tmp_path / "ingest.log", "wb") as log:
        process = subprocess.Popen(
            [*CLI, "ingest", "--base-url", sim.base_url, "--stats-json", str(stats)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:

            def delivered() -> int:
                assert process.poll() is None, (tmp_path / "ingest.log").read_text()
                lines = _json_lines(stats)[1:]
                return lines and sum(s["delivered"] for s in lines[-1]["symbols"].values())

            wait_until(lambda: delivered() == len(expected), 90, "a status with every trade")
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0, (tmp_path / "ingest.log").read_text()
    assert stdout == b""  # the statuses went to the file, not to stdout
    earlier, *statuses = _json_lines(stats)
    assert earlier == {"earlier": "run"}
    assert len(statuses) >= 2 and [s["final"] for s in statuses][-2:] == [False, True]
    final = statuses[-1]["symbols"]
    assert set(final) == set(upper)
    for symbol in upper:
        times = [t.trade_time_ms for t in expected if t.symbol == symbol]
        assert final[symbol]["delivered"] == len(times) > 0
        assert final[symbol]["last_trade_ms"] == max(times)
    in_topic = _ids_in_topic(bootstrap, upper)
    assert {s: len(ids) for s, ids in in_topic.items()} == {s: final[s]["delivered"] for s in upper}
