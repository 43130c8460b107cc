"""The dashboard offers the trends and the hourly and daily roll-ups (issue 9).

One DuckDB file holds 150 simulated minutes that cross midnight (22:00 to 00:30 UTC), with the
trends and roll-ups the pipeline derives from them. The API's hourly bars are checked against
pandas over the raw trades; the page, in headless Chromium, draws the moving averages over the
minute candles, shows the trend label, and switches to hourly and daily candles without reload.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from crypto_platform import derived, warehouse
from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.trades import Trade, datetime_to_ms
from crypto_platform_tests.test_dashboard.conftest import ARTIFACTS
from crypto_platform_tests.test_dashboard.server import dashboard, get
from crypto_platform_tests.test_query.analytics_db import fill_analytics

START = datetime(2025, 11, 25, 22, 0, tzinfo=UTC)
MINUTES = 150
END = START + timedelta(minutes=MINUTES)


@pytest.fixture(scope="module")
def trades() -> list[Trade]:
    market = MarketSimulation(["btcusdt", "ethusdt"], seed=11, rate_scale=0.1)
    return list(market.trades_between(datetime_to_ms(START), datetime_to_ms(END)))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, trades: list[Trade]) -> Path:
    path = tmp_path_factory.mktemp("dash-trends") / "analytics.duckdb"
    fill_analytics(path, trades)
    start_ms, end_ms = datetime_to_ms(START), datetime_to_ms(END)
    day_ms = 86_400_000
    with warehouse.connection(path) as conn:
        derived.rebuild_trends(conn, start_ms, end_ms)
        derived.rebuild_rollups(conn, "hour", start_ms, end_ms)
        derived.rebuild_rollups(conn, "day", start_ms // day_ms * day_ms, end_ms)
    return path


@pytest.fixture(scope="module")
def server(db: Path):
    with dashboard(db, refresh_seconds=1.0) as url:
        yield url


def hours_by_pandas(trades: list[Trade], symbol: str) -> pd.DataFrame:
    """OHLC, count and exact mean price per hour, straight from the trades."""
    frame = pd.DataFrame(
        {
            "hour": [t.trade_time_ms // 3_600_000 for t in trades if t.symbol == symbol],
            "trade_id": [t.trade_id for t in trades if t.symbol == symbol],
            "price": [t.price for t in trades if t.symbol == symbol],
        }
    ).sort_values("trade_id")
    grouped = frame.groupby("hour")["price"]
    return pd.DataFrame(
        {
            "open": grouped.first().astype(float),
            "high": grouped.max().astype(float),
            "low": grouped.min().astype(float),
            "close": grouped.last().astype(float),
            "trade_count": grouped.size(),
            "avg_price": grouped.agg(lambda p: float(sum(p) / len(p))),
        }
    )


def test_hourly_bars_equal_pandas_over_the_raw_trades(server: str, trades: list[Trade]) -> None:
    status, body = get(f"{server}/api/windows?symbol=btcusdt&interval=1h&range=1440")
    assert status == 200 and body["interval"] == "1h"
    want = hours_by_pandas(trades, "BTCUSDT")
    c = body["columns"]
    assert c["window_start"] == [
        "2025-11-25T22:00:00",
        "2025-11-25T23:00:00",
        "2025-11-26T00:00:00",
    ]
    assert len(want) == 3
    for name in ("open", "high", "low", "close", "trade_count"):
        assert c[name] == list(want[name]), name
    assert c["avg_price"] == pytest.approx(list(want["avg_price"]), rel=1e-12)
    assert body["latest"]["close"] == want["close"].iloc[-1]


def test_daily_bars_split_at_midnight_utc(server: str, trades: list[Trade]) -> None:
    status, body = get(f"{server}/api/windows?symbol=ethusdt&interval=1d")
    assert status == 200 and body["range_minutes"] == 129600  # the 1d default: 90 days
    c = body["columns"]
    assert c["window_start"] == ["2025-11-25T00:00:00", "2025-11-26T00:00:00"]
    eth = [t for t in trades if t.symbol == "ETHUSDT"]
    midnight = datetime_to_ms(datetime(2025, 11, 26, tzinfo=UTC))
    assert c["trade_count"] == [
        sum(t.trade_time_ms < midnight for t in eth),
        sum(t.trade_time_ms >= midnight for t in eth),
    ]


def test_config_offers_ranges_per_interval_and_rejects_the_rest(server: str) -> None:
    status, config = get(f"{server}/api/config")
    assert status == 200
    assert config["intervals"]["1m"] == {"ranges": [15, 60, 240, 1440, 10080], "default_range": 60}
    assert config["intervals"]["1d"]["default_range"] == 129600
    status, body = get(f"{server}/api/windows?symbol=btcusdt&interval=1h&range=15")
    assert (
        status == 400 and "must be one of 1440, 10080, 43200 (minutes) for 1h bars" in body["error"]
    )
    status, body = get(f"{server}/api/windows?symbol=btcusdt&interval=1w")
    assert status == 400 and "interval: Input should be '1m', '1h' or '1d'" in body["error"]
    status, body = get(f"{server}/api/trends?symbol=btcusdt&interval=1h")
    assert status == 400 and "interval: Input should be '1m'" in body["error"]


def latest_trend(db: Path, symbol: str) -> tuple[str, int]:
    """The newest trend label and how many trend rows the last 240 minutes hold."""
    with warehouse.connection(db, read_only=True) as con:
        label = con.execute(
            "SELECT trend FROM trade_trends_1m WHERE symbol = ? ORDER BY window_start DESC LIMIT 1",
            [symbol],
        ).fetchone()[0]
        rows = con.execute(
            "SELECT count(*) FROM trade_trends_1m WHERE symbol = ? AND window_start >= ?",
            [symbol, END - timedelta(minutes=240)],
        ).fetchone()[0]
    return label, rows


@pytest.mark.browser
def test_the_page_draws_averages_and_switches_to_hours_and_days(
    browser, server: str, db: Path, trades: list[Trade]
) -> None:
    label, trend_rows = latest_trend(db, "BTCUSDT")
    assert trend_rows == MINUTES
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server}/#symbol=BTCUSDT&interval=1m&range=240", wait_until="load")
    page.wait_for_function(
        "document.querySelector('#chart').dataset.averagePoints === '150'", timeout=20_000
    )
    assert page.locator("#chart").get_attribute("data-points") == str(MINUTES)
    legend = page.locator("#chart .legendtext").all_text_contents()
    assert {"SMA 15", "SMA 60", "EMA 12", "EMA 26"} <= set(legend)
    assert page.locator("#latest-trend").get_attribute("data-trend") == label
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-trends-1m.png"), full_page=True)

    page.evaluate("window.__sameDocument = true")
    page.click("#intervals button[data-interval='1h']")
    page.wait_for_function(
        "document.querySelector('#chart').dataset.interval === '1h'", timeout=20_000
    )
    chart = page.locator("#chart")
    assert chart.get_attribute("data-points") == "3"
    assert chart.get_attribute("data-average-points") == "0"  # trends are per minute
    assert page.locator("#chart .trace.boxes path").count() >= 3
    assert page.locator("#latest-label").inner_text() == "Latest hour (UTC)"
    assert page.locator("#latest-window").inner_text() == "2025-11-26 00:00"
    close = hours_by_pandas(trades, "BTCUSDT")["close"].iloc[-1]
    assert page.locator("#latest-close").inner_text() == f"{close:,.2f}"
    assert page.locator("#latest-trend").inner_text() == "–"
    assert page.locator("#ranges button.active").get_attribute("data-range") == "10080"
    assert "interval=1h" in page.evaluate("location.hash")
    page.screenshot(path=str(ARTIFACTS / "dashboard-rollups-1h.png"), full_page=True)

    page.click("#intervals button[data-interval='1d']")
    page.wait_for_function(
        "document.querySelector('#chart').dataset.interval === '1d'", timeout=20_000
    )
    assert chart.get_attribute("data-points") == "2"
    assert page.locator("#latest-label").inner_text() == "Latest day (UTC)"
    assert page.evaluate("window.__sameDocument") is True
    assert errors == []
