"""The dashboard in headless Chromium (Debian's): chart drawn, a new minute appears unreloaded.

The page is served by a real ``crypto-platform dashboard`` process reading a DuckDB file that
minutes of the seeded market simulation are written into the pipeline's way while the page is
open. A screenshot lands in ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crypto_platform.alerts.engine import run_alerts
from crypto_platform.core.alerts import AlertRule
from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.trades import datetime_to_ms
from crypto_platform_tests.test_dashboard.conftest import ARTIFACTS, CHROMIUM
from crypto_platform_tests.test_dashboard.server import dashboard
from crypto_platform_tests.test_query.analytics_db import fill_analytics

pytestmark = pytest.mark.browser

SYMBOLS = ["btcusdt", "ethusdt", "xrpusdt"]
MINUTES = 45


def test_the_chart_draws_and_a_new_minute_appears_without_reload(browser, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=MINUTES)
    market = MarketSimulation(SYMBOLS, seed=3, start_ms=datetime_to_ms(start))

    def minute_trades(index: int):
        begin = datetime_to_ms(start + timedelta(minutes=index))
        return market.trades_between(begin, begin + 60_000)

    db = tmp_path / "analytics.duckdb"
    fill_analytics(db, (t for i in range(MINUTES - 1) for t in minute_trades(i)))
    rules = [AlertRule("btc_busy", "volatility", symbol="btcusdt", above=60.0)]
    fired = run_alerts(db, rules, start, now).new
    assert fired  # the seeded market has such minutes
    last_shown = (start + timedelta(minutes=MINUTES - 2)).strftime("%Y-%m-%dT%H:%M:%S")
    new_minute = (start + timedelta(minutes=MINUTES - 1)).strftime("%Y-%m-%dT%H:%M:%S")

    with dashboard(db, refresh_seconds=1.0) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{url}/#symbol=BTCUSDT&range=60", wait_until="load")

        chart = page.locator("#chart")
        page.wait_for_function(
            "(latest) => document.querySelector('#chart').dataset.latest === latest",
            arg=last_shown,
            timeout=20_000,
        )
        assert chart.get_attribute("data-points") == str(MINUTES - 1)
        # Plotly drew one candle per minute, and the volatility and volume panels
        assert page.locator("#chart .trace.boxes path").count() >= MINUTES - 1
        assert page.locator("#chart .barlayer .point").count() == MINUTES - 1
        assert page.locator("#latest-window").inner_text() == last_shown[:16].replace("T", " ")
        shown = page.locator("#alerts li").all_inner_texts()
        assert len(shown) == len(fired) and all("[btc_busy] BTCUSDT volatility" in t for t in shown)

        page.evaluate("window.__sameDocument = true")
        fill_analytics(db, minute_trades(MINUTES - 1))  # the pipeline closes one more minute
        page.wait_for_function(
            "(latest) => document.querySelector('#chart').dataset.latest === latest",
            arg=new_minute,
            timeout=20_000,
        )
        assert page.evaluate("window.__sameDocument") is True  # no reload happened
        assert chart.get_attribute("data-points") == str(MINUTES)
        assert page.locator("#latest-window").inner_text() == new_minute[:16].replace("T", " ")
        assert "live · updated" in page.locator("#status").inner_text()

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        page.select_option("#symbol", "XRPUSDT")
        page.wait_for_function(
            "(latest) => document.querySelector('#chart').dataset.latest === latest"
            " && location.hash.includes('XRPUSDT')",
            arg=new_minute,
            timeout=20_000,
        )
        page.click("#ranges button[data-range='15']")
        page.wait_for_function(
            "document.querySelector('#chart').dataset.points === '15'", timeout=20_000
        )
        assert page.evaluate("window.__sameDocument") is True
        page.screenshot(path=str(ARTIFACTS / "dashboard-xrpusdt-15m.png"), full_page=True)
        assert errors == []


def test_chromium_is_debians(browser) -> None:
    assert shutil.which("chromium") == str(CHROMIUM)
    assert browser.version.split(".")[0].isdigit()
