"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) on loopback.

The same main classes as Kafka's own ``bin/`` scripts: ``kafka.tools.StorageTool format`` once,
then ``kafka.Kafka server.properties``. Data, logs and the PID file live under one folder, so
``start`` is idempotent (a live broker from the PID file is reused), ``stop`` sends SIGTERM for a
controlled shutdown, and ``status`` asks the broker itself for metadata.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from crypto_platform.kafka import admin
from crypto_platform.kafka.jars import ensure_kafka_jars, require_java, resource_path
from crypto_platform.settings import Settings

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
TOOL_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.2
PORT_RELEASE_WAIT_S = 3.0  # a restart right after a stop may find the port briefly held
STARTED_MARKER = "Kafka Server started"

_SERVER_PROPERTIES = """\
# Written by crypto-platform: one combined broker+controller on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dirs}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
"""


class BrokerError(RuntimeError):
    """The local broker could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap_servers: str
    topics: dict[str, int]
    detail: str


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_free_port(port: int, within_s: float, host: str = "127.0.0.1") -> bool:
    """True once ``port`` can be bound; a port just released may linger a moment in the kernel."""
    deadline = time.monotonic() + within_s
    while not port_is_free(port, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def free_port() -> int:
    """An unused loopback port (for tests and throwaway brokers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie child counts as gone
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        return status != "Z"
    return True


class LocalBroker:
    """One broker whose files all live in ``home`` (data, logs, config, PID)."""

    def __init__(
        self,
        home: Path,
        cache_dir: Path,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "512m",
        trades_partitions: int = 6,
    ) -> None:
        self.home = home.resolve()
        self.cache_dir = cache_dir
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.trades_partitions = trades_partitions

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    def pid(self) -> int | None:
        """PID of the broker this folder started, if that process is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self) -> bool:
        """Start the broker and create the platform's topics; False if it was already running."""
        if self.pid() is not None:
            admin.create_topics(
                self.bootstrap_servers, admin.platform_topics(self.trades_partitions)
            )
            return False
        java = require_java()
        for port in (self.port, self.controller_port):
            if not wait_for_free_port(port, PORT_RELEASE_WAIT_S):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is already taken by another process; stop it, or "
                    "choose other ports (CRYPTO_PLATFORM_KAFKA_PORT / _KAFKA_CONTROLLER_PORT), or "
                    "point at a running cluster with KAFKA_BOOTSTRAP_SERVERS"
                )
        libs = ensure_kafka_jars(self.cache_dir)
        self._write_config()
        self._format_storage(java, libs)
        self._launch(java, libs)
        self._wait_until_started()
        admin.create_topics(self.bootstrap_servers, admin.platform_topics(self.trades_partitions))
        return True

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM for a controlled shutdown, SIGKILL after ``timeout_s``; False if not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not self._wait_for_exit(pid, timeout_s):
            os.kill(pid, signal.SIGKILL)
            self._wait_for_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests); the next start runs log recovery."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            self._wait_for_exit(pid, 10.0)

    def status(self) -> BrokerStatus:
        pid = self.pid()
        if pid is None:
            return BrokerStatus(False, None, self.bootstrap_servers, {}, "stopped")
        try:
            topics = admin.cluster_topics(self.bootstrap_servers, timeout_s=5.0)
        except Exception as exc:  # noqa: BLE001 - any failure means "not answering"
            return BrokerStatus(
                False,
                pid,
                self.bootstrap_servers,
                {},
                f"process {pid} alive but not answering metadata requests: {exc}",
            )
        return BrokerStatus(True, pid, self.bootstrap_servers, topics, "running")

    def last_log_lines(self, count: int = 30) -> str:
        lines: list[str] = []
        for name in ("server.log", "stdout.log"):
            path = self.log_dir / name
            if path.exists():
                lines += [f"--- {path}", *path.read_text(errors="replace").splitlines()[-count:]]
        return "\n".join(lines) or "(no log written)"

    def _write_config(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            _SERVER_PROPERTIES.format(
                port=self.port, controller_port=self.controller_port, log_dirs=self.data_dir
            )
        )

    def _format_storage(self, java: str, libs: Path) -> None:
        """Format the KRaft log dir once; a formatted dir is skipped (``--ignore-formatted``)."""
        if (self.data_dir / "meta.properties").exists():
            return
        tool = [
            java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={resource_path('tools-log4j2.properties')}",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
        ]
        cluster_id = subprocess.run(
            [*tool, "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
            timeout=TOOL_TIMEOUT_S,
        ).stdout.strip()
        result = subprocess.run(
            [
                *tool,
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting {self.data_dir} failed:\n{result.stdout}{result.stderr}")

    def _launch(self, java: str, libs: Path) -> None:
        (self.log_dir / "server.log").unlink(missing_ok=True)
        cmd = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j2.configurationFile={resource_path('log4j2.properties')}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self.config_file),
        ]
        with open(self.log_dir / "stdout.log", "wb") as out:
            process = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))

    def _wait_until_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        server_log = self.log_dir / "server.log"
        while time.monotonic() < deadline:
            if self.pid() is None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"the Kafka broker exited during start-up:\n{self.last_log_lines()}"
                )
            if server_log.exists() and STARTED_MARKER in server_log.read_text(errors="replace"):
                return
            time.sleep(POLL_INTERVAL_S)
        self.stop(timeout_s=10.0)
        raise BrokerError(
            f"the Kafka broker did not start within {START_TIMEOUT_S:.0f}s:\n"
            f"{self.last_log_lines()}"
        )

    @staticmethod
    def _wait_for_exit(pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap if it is our child
            if not _pid_alive(pid):
                return True
            time.sleep(POLL_INTERVAL_S)
        return False


def broker_from_settings(settings: Settings) -> LocalBroker:
    """The local broker that the settings describe: files under ``<data_dir>/kafka``."""
    return LocalBroker(
        home=settings.data_dir / "kafka",
        cache_dir=settings.cache_dir,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        heap=settings.kafka_heap,
        trades_partitions=settings.trades_partitions,
    )
