"""Run ``crypto-platform dashboard`` as a real process on a free loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crypto_platform.kafka.broker import free_port
from crypto_platform_tests.helpers import http_ok, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def dashboard_env(db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTO_PLATFORM_")}
    env["CRYPTO_PLATFORM_DUCKDB_PATH"] = str(db)
    env.update(extra)
    return env


@contextmanager
def dashboard(db: Path, refresh_seconds: float = 5.0) -> Iterator[str]:
    """The dashboard serving ``db``; yields its base URL and stops it afterwards."""
    port = free_port()
    env = dashboard_env(db, CRYPTO_PLATFORM_DASHBOARD_REFRESH_SECONDS=str(refresh_seconds))
    process = subprocess.Popen(
        [sys.executable, "-m", "crypto_platform", "dashboard", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: process.poll() is not None or http_ok(f"{url}/api/config"),
            timeout_s=30,
            what="the dashboard answering",
        )
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def get(url: str) -> tuple[int, dict | bytes]:
    """GET ``url``: (status, parsed JSON or raw bytes), also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, body, kind = response.status, response.read(), response.headers["content-type"]
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read(), error.headers["content-type"]
    return status, json.loads(body) if kind == "application/json" else body
