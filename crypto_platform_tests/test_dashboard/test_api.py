"""The dashboard's server as a real process: its JSON against the data, its validation, no CDN."""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crypto_platform.alerts.engine import run_alerts
from crypto_platform.core.alerts import AlertRule
from crypto_platform.core.archive import read_trades
from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.trades import Trade, datetime_to_ms
from crypto_platform_tests.test_dashboard.server import dashboard, get
from crypto_platform_tests.test_query.analytics_db import fill_analytics
from crypto_platform_tests.test_query.expected import minutes_frame

REAL_CSV = "btcusdt_2024-12-31/BTCUSDT-trades-2024-12-31_00-00_00-01.csv"
START = datetime(2025, 11, 25, 12, 0, tzinfo=UTC)
# Binance's official 1m klines for the two real minutes (PROVENANCE.md): open, high, low, close.
OFFICIAL = [
    (92792.05, 92832.25, 92782.12, 92782.13, 1660),
    (92782.12, 92789.28, 92748.01, 92765.36, 2552),
]


@pytest.fixture(scope="module")
def sim_trades() -> list[Trade]:
    market = MarketSimulation(["ethusdt", "solusdt"], seed=5, start_ms=datetime_to_ms(START))
    end = START + timedelta(minutes=40)
    return list(market.trades_between(datetime_to_ms(START), datetime_to_ms(end)))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, sim_trades: list[Trade]) -> Path:
    from crypto_platform_tests.conftest import SHARED_BINANCE

    path = tmp_path_factory.mktemp("dash") / "analytics.duckdb"
    if SHARED_BINANCE.is_dir():
        fill_analytics(path, read_trades(SHARED_BINANCE / REAL_CSV))
    fill_analytics(path, sim_trades)
    rules = [AlertRule("eth_vol", "volatility", symbol="ethusdt", above=2.0)]
    run_alerts(path, rules, START, START + timedelta(hours=1))
    return path


@pytest.fixture(scope="module")
def server(db: Path):
    with dashboard(db) as url:
        yield url


def test_symbols_and_a_window_series_match_the_data(server: str, sim_trades: list[Trade]) -> None:
    status, body = get(f"{server}/api/symbols")
    assert status == 200
    eth = next(s for s in body["symbols"] if s["symbol"] == "ETHUSDT")
    assert eth == {"symbol": "ETHUSDT", "latest": "2025-11-25T12:40:00", "windows": 40}

    status, body = get(f"{server}/api/windows?symbol=ethusdt&range=15")
    assert status == 200 and body["symbol"] == "ETHUSDT" and body["range_minutes"] == 15
    assert (body["since"], body["until"]) == ("2025-11-25T12:25:00", "2025-11-25T12:40:00")
    frame = minutes_frame(sim_trades)
    want = frame[frame["symbol"] == "ETHUSDT"].tail(15)
    columns = body["columns"]
    assert columns["window_start"] == [
        w.strftime("%Y-%m-%dT%H:%M:%S") for w in want["window_start"]
    ]
    assert columns["trade_count"] == list(want["trade_count"])
    assert columns["avg_price"] == pytest.approx(list(want["avg_price"]), rel=1e-12)
    assert columns["volatility"] == pytest.approx(list(want["volatility"]), rel=1e-9)
    assert body["latest"]["window_start"] == "2025-11-25T12:39:00"
    assert body["latest"]["trade_count"] == want["trade_count"].iloc[-1]


def test_real_minutes_are_served_as_binance_reports_them(server: str, shared_binance: Path) -> None:
    status, body = get(f"{server}/api/windows?symbol=BTCUSDT&range=60")
    assert status == 200
    c = body["columns"]
    assert c["window_start"] == ["2024-12-31T00:00:00", "2024-12-31T00:01:00"]
    got = list(zip(c["open"], c["high"], c["low"], c["close"], c["trade_count"], strict=True))
    assert got == OFFICIAL


def test_alerts_are_served_newest_first(server: str, db: Path) -> None:
    status, body = get(f"{server}/api/alerts?symbol=ethusdt&limit=500")
    assert status == 200
    assert len(body["alerts"]) == volatile_eth_minutes(db) > 0
    starts = [a["window_start"] for a in body["alerts"]]
    assert starts == sorted(starts, reverse=True)
    first = body["alerts"][0]
    assert first["rule"] == "eth_vol" and first["symbol"] == "ETHUSDT" and first["value"] > 2.0
    assert first["message"].startswith("[eth_vol] ETHUSDT volatility ")
    assert get(f"{server}/api/alerts?symbol=solusdt")[1] == {"alerts": []}


def volatile_eth_minutes(db: Path) -> int:
    """How many ETH minutes had volatility above 2 (counted by DuckDB itself)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT count(*) FROM trade_analytics_1m WHERE symbol = 'ETHUSDT' AND volatility > 2"
        ).fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("/api/windows?symbol=ethusdt&range=7", 400, "range: Value error, must be one of 15, 60"),
        ("/api/windows?symbol=ethusdt&range=abc", 400, "range: Input should be a valid integer"),
        ("/api/windows?range=60", 400, "symbol: Field required"),
        ("/api/windows?symbol=eth'%20OR%201=1--", 400, "symbol: String should match pattern"),
        ("/api/windows?symbol=ethusdt&sql=drop", 400, "sql: Extra inputs are not permitted"),
        ("/api/windows?symbol=dogeusdt", 404, "no minutes for symbol DOGEUSDT"),
        ("/api/alerts?limit=100000", 400, "limit: Input should be less than or equal to 500"),
    ],
)
def test_parameters_are_validated(server: str, query: str, status: int, message: str) -> None:
    got_status, body = get(server + query)
    assert got_status == status and message in body["error"]


def test_the_page_and_its_chart_library_come_from_the_server(server: str) -> None:
    status, page = get(f"{server}/")
    assert status == 200
    sources = re.findall(rb'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith((b"/", b"data:")) for s in sources)  # nothing external
    status, script = get(f"{server}/vendor/plotly.min.js")
    assert status == 200 and b"plotly.js v" in script[:200] and len(script) > 1_000_000
    assert get(f"{server}/static/app.js")[0] == 200


def test_it_listens_on_loopback_only(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    addresses = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    outside = [a for a in addresses if not a.startswith("127.") and ":" not in a]
    if not outside:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(OSError):
        socket.create_connection((outside[0], port), timeout=2).close()


def test_it_never_writes_the_database(db: Path, server: str) -> None:
    before = hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns
    for query in ("/api/symbols", "/api/windows?symbol=solusdt&range=1440", "/api/alerts"):
        assert get(server + query)[0] == 200
    assert (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns) == before


def test_a_database_locked_too_long_answers_503_and_recovers(db: Path, server: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', "
            "flush=True); time.sleep(8)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        time.sleep(1.2)  # let the server's one-second cache expire
        status, body = get(f"{server}/api/windows?symbol=solusdt&range=60")
        assert status == 503 and f"PID {holder.pid}" in body["error"]
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert get(f"{server}/api/windows?symbol=solusdt&range=60")[0] == 200


def test_a_taken_port_is_a_clear_error(server: str, db: Path) -> None:
    from crypto_platform_tests.test_dashboard.server import REPO_ROOT, dashboard_env

    port = server.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "crypto_platform", "dashboard", "--port", port],
        cwd=REPO_ROOT,
        env=dashboard_env(db),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
