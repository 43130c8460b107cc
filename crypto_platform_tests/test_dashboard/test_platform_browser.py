"""The acceptance test: `crypto-platform run --source sim`, then the dashboard in Chromium.

The whole platform runs as a user starts it (a local Kafka broker, the exchange simulator and
ingestion, Dagster with its sensors, the dashboard), on free ports in a temporary folder. The
page shows the first closed minutes, then a new minute arrives without a reload, and an alert
fired by the platform appears on the page and reaches a webhook receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_platform.kafka.broker import free_port
from crypto_platform_tests.helpers import pids_with_env, wait_for
from crypto_platform_tests.test_alerts.receiver import webhook_receiver
from crypto_platform_tests.test_dashboard.conftest import ARTIFACTS
from crypto_platform_tests.test_dashboard.server import REPO_ROOT, get

pytestmark = [pytest.mark.browser, pytest.mark.kafka, pytest.mark.slow]
FIRST_MINUTE_S = 300  # broker and Dagster start, one minute closes, its run and the sensor's
NEXT_MINUTE_S = 180
# Fires on nearly every simulated ETHUSDT minute (its volatility is about 1 to 3).
RULES = [{"name": "eth_busy", "kind": "volatility", "symbol": "ethusdt", "above": 0.01}]


def _env(tmp_path: Path, hook_url: str, dashboard_port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CRYPTO_PLATFORM_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env.update(
        {
            "CRYPTO_PLATFORM_DATA_DIR": str(tmp_path / "data"),
            "CRYPTO_PLATFORM_CACHE_DIR": str(REPO_ROOT / ".cache"),
            "CRYPTO_PLATFORM_KAFKA_PORT": str(free_port()),
            "CRYPTO_PLATFORM_KAFKA_CONTROLLER_PORT": str(free_port()),
            "CRYPTO_PLATFORM_KAFKA_HEAP": "256m",
            "CRYPTO_PLATFORM_SYMBOLS": "btcusdt,ethusdt",
            "CRYPTO_PLATFORM_DASHBOARD_PORT": str(dashboard_port),
            "CRYPTO_PLATFORM_DASHBOARD_REFRESH_SECONDS": "2",
            "CRYPTO_PLATFORM_ALERT_RULES": json.dumps(RULES),
            "CRYPTO_PLATFORM_ALERT_WEBHOOK_URL": hook_url,
        }
    )
    return env


def test_the_live_platform_on_the_simulator_in_chromium(browser, tmp_path: Path) -> None:
    dashboard_port = free_port()
    url = f"http://127.0.0.1:{dashboard_port}"
    log_path = tmp_path / "run.log"
    marker = str((tmp_path / "data" / "dagster_home").resolve())
    with webhook_receiver() as receiver, open(log_path, "wb") as log:
        command = [sys.executable, "-m", "crypto_platform", "run", "--source", "sim"]
        process = subprocess.Popen(
            [*command, "--dagster-port", str(free_port())],
            cwd=REPO_ROOT,
            env=_env(tmp_path, receiver.url, dashboard_port),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:

            def first_minutes() -> bool:
                assert process.poll() is None, log_path.read_text(errors="replace")[-5000:]
                try:
                    status, body = get(f"{url}/api/symbols")
                except OSError:
                    return False
                return status == 200 and len(body["symbols"]) == 2

            wait_for(first_minutes, FIRST_MINUTE_S, interval_s=2, what="the first closed minute")
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{url}/#symbol=ETHUSDT&range=15", wait_until="load")
            page.wait_for_function(
                "Number(document.querySelector('#chart').dataset.points) > 0", timeout=30_000
            )
            first = page.locator("#chart").get_attribute("data-latest")
            points = int(page.locator("#chart").get_attribute("data-points"))
            assert page.locator("#chart .trace.boxes path").count() >= points
            page.evaluate("window.__sameDocument = true")

            page.wait_for_function(
                "(first) => document.querySelector('#chart').dataset.latest > first",
                arg=first,
                timeout=NEXT_MINUTE_S * 1000,
            )
            assert page.evaluate("window.__sameDocument") is True
            assert int(page.locator("#chart").get_attribute("data-points")) > points
            page.wait_for_function(
                "document.querySelector('#alerts').innerText.includes('[eth_busy] ETHUSDT')",
                timeout=NEXT_MINUTE_S * 1000,
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-live-platform.png"), full_page=True)
            wait_for(lambda: receiver.received, 60, what="an alert POSTed to the webhook")
            posted = receiver.received[0]
            assert posted["rule"] == "eth_busy" and posted["symbol"] == "ETHUSDT"
            assert posted["value"] > 0.01 and posted["text"].startswith("[eth_busy] ETHUSDT")
        finally:
            os.killpg(process.pid, signal.SIGTERM)  # what Ctrl-C or `kill` does to `make run`
            code = process.wait(timeout=180)
    assert code == 0, log_path.read_text(errors="replace")[-5000:]
    wait_for(lambda: not pids_with_env(marker), 60, what="no platform process left")
