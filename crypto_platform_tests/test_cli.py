"""The ``crypto-platform`` command as a user runs it: real processes, real broker, real Dagster."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
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


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a process from /proc, or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 onwards
    return fields[0], int(fields[1]), fields[19]  # state, ppid, starttime (field 22)


def _cmdline(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return cmdline.replace(b"\0", b" ").decode(errors="replace").strip()


def _show(processes: dict[tuple[int, str], str]) -> str:
    """One line per process, its command line cut short (Dagster's run on for kilobytes)."""
    return "".join(f"\n  {pid}: {cmdline[:200]}" for (pid, _t), cmdline in processes.items())


def _process_tree(root: int) -> dict[tuple[int, str], str]:
    """{(pid, start time): command line} of ``root`` and every live process below it."""
    parent_of: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) and stat[0] != "Z":
            parent_of[int(entry.name)] = (stat[1], stat[2])
    tree = {root} if root in parent_of else set()
    while grown := {p for p, (ppid, _t) in parent_of.items() if ppid in tree} - tree:
        tree |= grown
    return {(pid, parent_of[pid][1]): _cmdline(pid) for pid in tree}


def _still_running(processes: dict[tuple[int, str], str]) -> dict[tuple[int, str], str]:
    """Those of ``processes`` still alive: same pid and start time (a reused pid is not them),
    and not a zombie."""
    alive = {}
    for (pid, started), cmdline in processes.items():
        stat = _proc_stat(pid)
        if stat is not None and stat[2] == started and stat[0] != "Z":
            alive[(pid, started)] = cmdline
    return alive


def _wait_or_fail(
    condition: Callable[[], object], timeout_s: float, show: Callable[[], str]
) -> None:
    try:
        wait_for(condition, timeout_s)
    except TimeoutError:
        raise AssertionError(show()) from None


DASHBOARD_LINE = re.compile(r"^Dashboard: (http://\S+)$", re.MULTILINE)  # what `run` prints
# What `run --source sim` starts, by a piece of each command line: every one must be found in
# the process tree while it runs (so the tree is complete) and be gone after Ctrl-C.
RUN_PARTS = {
    "Kafka broker": "kafka.Kafka",
    "exchange simulator": "crypto_platform exchange-sim",
    "ingestion": "crypto_platform ingest --base-url http://127.0.0.1:",
    "dashboard": "crypto_platform dashboard",
    "dagster dev": "-m dagster dev -w",
    "Dagster webserver": "-m dagster_webserver ",
    "Dagster daemon": "-m dagster._daemon run ",
    "Dagster code server": "-m dagster code-server start ",
}


@pytest.mark.kafka
@pytest.mark.slow
def test_run_brings_up_kafka_and_dagster_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    ui_port, dashboard_port = free_port(), free_port()
    env = _env(
        tmp_path,
        CRYPTO_PLATFORM_KAFKA_PORT=str(free_port()),
        CRYPTO_PLATFORM_KAFKA_CONTROLLER_PORT=str(free_port()),
        CRYPTO_PLATFORM_DASHBOARD_PORT=str(dashboard_port),
        CRYPTO_PLATFORM_KAFKA_HEAP="256m",
    )
    log_path = tmp_path / "run.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [*CLI, "run", "--source", "sim", "--dagster-port", str(ui_port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,  # its own group, as a terminal's foreground job: Ctrl-C goes to it
        # As under a non-interactive shell's background job (CI): SIGINT arrives ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    marker = str((tmp_path / "data" / "dagster_home").resolve())
    started: dict[tuple[int, str], str] = {}  # every process the run started, while it ran
    dashboard_url = f"http://127.0.0.1:{dashboard_port}"
    try:

        def up(url: str) -> bool:
            if process.poll() is not None:
                raise AssertionError(f"run exited early: {log_path.read_text()}")
            started.update(_process_tree(process.pid))
            return http_ok(url)

        wait_for(lambda: up(f"http://127.0.0.1:{ui_port}/server_info"), 240, what="Dagster UI")
        printed = wait_for(
            lambda: DASHBOARD_LINE.search(log_path.read_text(errors="replace")),
            60,
            what="the dashboard's URL printed",
        )
        assert printed.group(1) == dashboard_url  # type: ignore[union-attr]
        wait_for(lambda: up(dashboard_url), 60, what="dashboard answering")
        with urllib.request.urlopen(dashboard_url, timeout=5) as response:
            assert "<title>crypto-platform" in response.read().decode()

        def whole_platform() -> bool:
            started.update(_process_tree(process.pid))
            return all(any(part in c for c in started.values()) for part in RUN_PARTS.values())

        _wait_or_fail(whole_platform, 60, lambda: f"not every part found in:{_show(started)}")
        broker_pid = int((tmp_path / "data" / "kafka" / "broker.pid").read_text())
        assert pids_with_env(marker), "dagster processes should carry DAGSTER_HOME"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the group
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        finally:
            log.close()
    assert code == 0, log_path.read_text(errors="replace")
    assert broker_pid in {pid for pid, _t in started}
    _wait_or_fail(
        lambda: not _still_running(started),
        30,
        lambda: f"left running after Ctrl-C:{_show(_still_running(started))}",
    )
    data_dir = f"CRYPTO_PLATFORM_DATA_DIR={tmp_path / 'data'}\0"  # the whole value
    assert not pids_with_env(data_dir), "a process started later is left behind"
    assert not pids_with_env(marker)
    assert not (tmp_path / "data" / "kafka" / "broker.pid").exists()
    assert not http_ok(dashboard_url) and not http_ok(f"http://127.0.0.1:{ui_port}/server_info")


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


def test_fetch_without_maven_is_a_clear_error(tmp_path: Path) -> None:
    cache = tmp_path / "empty-cache"  # no jars cached, so Maven is needed
    cache.mkdir()
    env = _env(
        tmp_path,
        PATH=str(Path(sys.executable).parent),  # the venv only: no mvn on PATH
        CRYPTO_PLATFORM_CACHE_DIR=str(cache),
    )
    result = _cli(["kafka", "fetch"], env, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: 'mvn' was not found on PATH. Kafka's jars are not in ")
    assert str(cache.resolve() / "kafka-") in result.stderr  # where they would have gone
    assert "apt-get install maven" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert list(cache.iterdir()) == []  # nothing half-made
