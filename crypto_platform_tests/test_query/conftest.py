"""DuckDB files for the query tests: real Binance minutes, and an hour and a half simulated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crypto_platform.core.archive import read_trades
from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.trades import Trade, datetime_to_ms
from crypto_platform_tests.conftest import SHARED_BINANCE
from crypto_platform_tests.test_query.analytics_db import fill_analytics

REAL_CSV = "btcusdt_2024-12-31/BTCUSDT-trades-2024-12-31_00-00_00-01.csv"
SIM_SYMBOLS = ("btcusdt", "ethusdt", "solusdt")
SIM_MINUTES = 90


@pytest.fixture(scope="module")
def shared_binance_path() -> Path:
    """``shared_binance`` for module-scoped fixtures: skip where the folder is absent."""
    if not SHARED_BINANCE.is_dir():
        pytest.skip(f"{SHARED_BINANCE} is absent (it holds the real recorded Binance trades)")
    return SHARED_BINANCE


@pytest.fixture(scope="module")
def real_trades(shared_binance_path: Path) -> list[Trade]:
    return list(read_trades(shared_binance_path / REAL_CSV))


@pytest.fixture(scope="module")
def real_db(tmp_path_factory: pytest.TempPathFactory, real_trades: list[Trade]) -> Path:
    """The two complete minutes of real BTCUSDT trades (2024-12-31 00:00 and 00:01 UTC)."""
    path = tmp_path_factory.mktemp("real") / "analytics.duckdb"
    fill_analytics(path, real_trades)
    return path


@pytest.fixture(scope="module")
def sim_trades() -> list[Trade]:
    """90 minutes of three simulated symbols, ending at the last closed minute."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=SIM_MINUTES)
    market = MarketSimulation(SIM_SYMBOLS, seed=11, start_ms=datetime_to_ms(start), rate_scale=0.1)
    return list(market.trades_between(datetime_to_ms(start), datetime_to_ms(now)))


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory: pytest.TempPathFactory, sim_trades: list[Trade]) -> Path:
    path = tmp_path_factory.mktemp("sim") / "analytics.duckdb"
    fill_analytics(path, sim_trades)
    return path
