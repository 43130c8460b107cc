"""The ``crypto-platform`` command as a user runs it: real processes, real broker, real Dagster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_platform.kafka.broker import LocalBroker, free_port
from crypto_platform_tests.conftest import LOOPBACK_NOWHERE
from crypto_platform_tests.helpers import http_ok, pids_with_env, wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "crypto_platform"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CRYPTO_PLATFORM_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env.update(
        {
            "CRYPTO_PLATFORM_DATA_DIR": str(tmp_path / "data"),
            "CRYPTO_PLATFORM_CACHE_DIR": str(REPO_ROOT / ".cache"),
            **LOOPBACK_NOWHERE,
        }
    )
    env.update(extra)
    return env


def _cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.kafka
def test_status_against_an_external_cluster(bootstrap: str, tmp_path: Path) -> None:
    result = _cli(["kafka", "status"], _env(tmp_path, KAFKA_BOOTSTRAP_SERVERS=bootstrap))
    assert result.returncode == 0, result.stderr
    assert "running (external cluster)" in result.stdout
    assert "topic trades: 3 partition(s)" in result.stdout


def test_status_of_an_unreachable_cluster_exits_3(tmp_path: Path) -> None:
    env = _env(tmp_path, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    result = _cli(["kafka", "status"], env, timeout=60)
    assert result.returncode == 3
    assert "not answering" in result.stdout


def test_bad_setting_exits_2_naming_it(tmp_path: Path) -> None:
    result = _cli(["kafka", "status"], _env(tmp_path, CRYPTO_PLATFORM_SYMBOLS="not a symbol"))
    assert result.returncode == 2
    assert "CRYPTO_PLATFORM_SYMBOLS" in result.stderr


@pytest.mark.kafka
@pytest.mark.slow
def test_start_twice_status_stop_and_taken_port(tmp_path: Path, kafka_broker: LocalBroker) -> None:
    env = _env(
        tmp_path,
        CRYPTO_PLATFORM_KAFKA_PORT=str(free_port()),
        CRYPTO_PLATFORM_KAFKA_CONTROLLER_PORT=str(free_port()),
        CRYPTO_PLATFORM_KAFKA_HEAP="256m",
    )
    first = _cli(["kafka", "start"], env)
    assert first.returncode == 0, first.stderr
    assert "started" in first.stdout
    try:
        second = _cli(["kafka", "start"], env)
        assert second.returncode == 0 and "already running" in second.stdout
        pids = {line.split("pid ")[1].split(")")[0] for line in (first.stdout, second.stdout)}
        assert len(pids) == 1  # one broker, not two
        status = _cli(["kafka", "status"], env)
        assert status.returncode == 0 and ": running" in status.stdout
        taken = dict(
            env,
            CRYPTO_PLATFORM_KAFKA_PORT=str(kafka_broker.port),
            CRYPTO_PLATFORM_DATA_DIR=str(tmp_path / "other"),
        )
        clash = _cli(["kafka", "start"], taken)
        assert clash.returncode == 1
        assert f"port {kafka_broker.port} on 127.0.0.1 is already taken" in clash.stderr
    finally:
        stop = _cli(["kafka", "stop"], env)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    after = _cli(["kafka", "status"], env)
    assert after.returncode == 3 and ": stopped" in after.stdout


@pytest.mark.kafka
@pytest.mark.slow
def test_run_brings_up_kafka_and_dagster_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    ui_port = free_port()
    env = _env(
        tmp_path,
        CRYPTO_PLATFORM_KAFKA_PORT=str(free_port()),
        CRYPTO_PLATFORM_KAFKA_CONTROLLER_PORT=str(free_port()),
        CRYPTO_PLATFORM_DASHBOARD_PORT=str(free_port()),
        CRYPTO_PLATFORM_KAFKA_HEAP="256m",
    )
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [*CLI, "run", "--source", "sim", "--dagster-port", str(ui_port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        # As under a non-interactive shell's background job (CI): SIGINT arrives ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    marker = str((tmp_path / "data" / "dagster_home").resolve())
    try:

        def ui_up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"run exited early: {(tmp_path / 'run.log').read_text()}")
            return http_ok(f"http://127.0.0.1:{ui_port}/server_info")

        wait_for(ui_up, 240, what="Dagster UI answering")
        broker_pid = int((tmp_path / "data" / "kafka" / "broker.pid").read_text())
        assert pids_with_env(marker), "dagster processes should carry DAGSTER_HOME"
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=120)
        log.close()
    output = (tmp_path / "run.log").read_text(errors="replace")
    assert code == 0, output
    wait_for(lambda: not pids_with_env(marker), 30, what="no dagster process left")
    assert (
        not Path(f"/proc/{broker_pid}").exists()
        or Path(f"/proc/{broker_pid}/stat").read_text().split()[2] == "Z"
    )
    assert not (tmp_path / "data" / "kafka" / "broker.pid").exists()


def test_missing_java_is_a_clear_error(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        PATH=str(Path(sys.executable).parent),  # the venv only: no java on PATH
        CRYPTO_PLATFORM_KAFKA_PORT=str(free_port()),
        CRYPTO_PLATFORM_KAFKA_CONTROLLER_PORT=str(free_port()),
    )
    result = _cli(["kafka", "start"], env, timeout=60)
    assert result.returncode == 1
    assert "'java' was not found on PATH" in result.stderr
    assert "Java 17" in result.stderr
    assert not (tmp_path / "data" / "kafka" / "broker.pid").exists()
