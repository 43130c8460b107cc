"""The query CLI's and the dashboard's trends and roll-ups, read from a real DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crypto_platform import derived, warehouse
from crypto_platform.core.archive import read_trades
from crypto_platform.dashboard.data import DashboardData
from crypto_platform.query import questions
from crypto_platform.query.database import QueryError
from crypto_platform_tests.test_trends.conftest import BTC_CSV, to_table

DAY = 1_735_603_200_000  # 2024-12-31


@pytest.fixture
def database(tmp_path: Path, shared_binance: Path) -> Path:
    """The two real BTCUSDT minutes, with their trends and roll-ups."""
    minutes = warehouse.minute_analytics(to_table(list(read_trades(shared_binance / BTC_CSV))))
    path = tmp_path / "analytics.duckdb"
    with warehouse.connection(path) as conn:
        warehouse.replace_minutes(conn, minutes, [DAY, DAY + 60_000])
        derived.rebuild_trends(conn, DAY, DAY + 3_600_000)
        derived.rebuild_rollups(conn, "hour", DAY, DAY + 3_600_000)
        derived.rebuild_rollups(conn, "day", DAY, DAY + 86_400_000)
    return path


def test_the_questions(database: Path) -> None:
    since = datetime(2024, 12, 31, tzinfo=UTC)
    with warehouse.connection(database, read_only=True) as con:
        trend = questions.indicators(con, ("btcusdt",), since)
        hourly = questions.rollups(con, "1h", (), since)
        with pytest.raises(QueryError, match="--interval"):
            questions.rollups(con, "1w", (), since)
    assert len(trend.rows) == 2 and trend.columns[-1] == "trend"
    second = dict(zip(trend.columns, trend.rows[1], strict=True))
    assert second["sma_5"] == pytest.approx((92782.13 + 92765.36) / 2, rel=1e-15)
    (hour,) = hourly.rows
    row = dict(zip(hourly.columns, hour, strict=True))
    assert (row["open"], row["close"], row["trade_count"]) == (92792.05, 92765.36, 4212)


def test_the_command_and_the_dashboard(database: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTO_PLATFORM_")}
    env["CRYPTO_PLATFORM_DUCKDB_PATH"] = str(database)
    command = [sys.executable, "-m", "crypto_platform", "query", "rollup", "--interval", "1d"]
    done = subprocess.run(
        [*command, "--since", "2024-12-31T00:00", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (day,) = json.loads(done.stdout)
    assert day["trade_count"] == 4212 and day["high"] == 92832.25
    trends = DashboardData(database).trends("BTCUSDT", 60)
    assert trends["columns"]["sma_5"][-1] == pytest.approx(92773.745, rel=1e-15)
    assert trends["columns"]["window_start"] == ["2024-12-31T00:00:00", "2024-12-31T00:01:00"]
