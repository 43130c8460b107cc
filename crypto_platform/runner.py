"""Run several long-lived processes as one platform, and stop all of them on Ctrl-C.

Each child gets its own process group, so stopping it also stops what it spawned (``dagster dev``
starts a webserver, a daemon and code servers). Stopping is SIGTERM, then SIGKILL after a bound.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.5


@dataclass
class Supervisor:
    """Starts named commands, watches them, and tears everything down in reverse order."""

    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    cleanups: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        log.info("starting %s: %s", name, " ".join(cmd))
        process = subprocess.Popen(cmd, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        self.processes.append((name, process))

    def on_stop(self, name: str, cleanup: Callable[[], object]) -> None:
        """Register something to undo at shutdown (e.g. stopping the broker we started)."""
        self.cleanups.append((name, cleanup))

    def wait(self) -> int:
        """Block until Ctrl-C/SIGTERM or until a child exits; return the exit code to use."""
        stop = {"signal": False}

        def _handler(signum: int, _frame: object) -> None:
            stop["signal"] = True

        # Our own handlers for both: a process started from a non-interactive shell's
        # background job inherits SIGINT as *ignored*, and Python keeps it so (Ctrl-C and
        # `kill -INT` would do nothing).
        previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop["signal"]:
                for name, process in self.processes:
                    if process.poll() is not None:
                        log.error(
                            "%s exited with code %s; stopping the platform",
                            name,
                            process.returncode,
                        )
                        return 1
                time.sleep(POLL_INTERVAL_S)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def shutdown(self) -> None:
        for name, process in reversed(self.processes):
            _stop_group(name, process)
        for name, cleanup in reversed(self.cleanups):
            log.info("stopping %s", name)
            try:
                cleanup()
            except Exception:
                log.exception("stopping %s failed", name)


def _stop_group(name: str, process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        log.info("stopping %s (pid %s)", name, process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", name, STOP_TIMEOUT_S)
    # Whatever is left in the group (grandchildren) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
