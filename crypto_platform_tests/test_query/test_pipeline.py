"""Every query command on a DuckDB file filled by the real pipeline (Kafka -> Parquet -> DuckDB).

Real Binance trades (BTCUSDT, 2024-12-31 00:00-00:02) and ten simulated ETHUSDT minutes of the
same hour go into a real Kafka topic; the ``raw_trades`` and ``trade_analytics_1m`` assets of
the real definitions build the minutes; the commands' answers are checked against Binance's
official klines and an independent pandas/Decimal computation over the same trades.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from crypto_platform.cli import main
from crypto_platform.core.archive import read_trades
from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.definitions import build_definitions
from crypto_platform.settings import Settings
from crypto_platform_tests.test_defs.helpers import produce_trades
from crypto_platform_tests.test_query.conftest import REAL_CSV
from crypto_platform_tests.test_query.expected import minutes_frame

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
HOUR_MS = 1_735_603_200_000  # 2024-12-31 00:00 UTC


@pytest.fixture
def pipeline_db(
    settings_factory: Callable[..., Settings],
    topic_factory: Callable[..., str],
    shared_binance: Path,
):
    real = list(read_trades(shared_binance / REAL_CSV))
    sim = list(
        MarketSimulation(["ethusdt"], seed=2, start_ms=HOUR_MS, rate_scale=0.2).trades_between(
            HOUR_MS, HOUR_MS + 10 * 60_000
        )
    )
    trades_topic = topic_factory("trades", 3)
    settings = settings_factory(partitions_start=date(2024, 12, 31))
    assert produce_trades(settings.bootstrap_servers, trades_topic, real + sim) == len(real + sim)
    defs = build_definitions(
        settings, trades_topic=trades_topic, progress_topic=topic_factory("progress")
    )
    keys = [dg.AssetKey("raw_trades"), dg.AssetKey("trade_analytics_1m")]
    result = dg.materialize(
        [defs.resolve_assets_def(k) for k in keys],
        instance=dg.DagsterInstance.ephemeral(),
        partition_key="2024-12-31-00:00",
    )
    assert result.success
    return settings.resolved_duckdb_path, real, sim


def ask(db: Path, *args: str) -> list[dict]:
    result = CliRunner().invoke(
        main,
        ["query", *args, "--format", "json"],
        env={"CRYPTO_PLATFORM_DUCKDB_PATH": str(db)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_each_query_command_on_the_pipelines_database(pipeline_db) -> None:
    db, real, sim = pipeline_db
    first = [t.price for t in real if t.trade_time_ms < HOUR_MS + 60_000]
    second = [t.price for t in real if t.trade_time_ms >= HOUR_MS + 60_000]

    recent = ask(db, "recent", "--symbol", "btcusdt")
    assert [(r["window_start"], r["trade_count"], r["volume"]) for r in recent] == [
        ("2024-12-31T00:01:00+00:00", 2552, 8.44271),  # Binance's official klines
        ("2024-12-31T00:00:00+00:00", 1660, 6.45789),
    ]
    assert recent[1]["avg_price"] == float(sum(first, Decimal(0))) / len(first)
    assert recent[0]["avg_price"] == float(sum(second, Decimal(0))) / len(second)

    eth = minutes_frame(sim)
    recent_eth = ask(db, "recent", "-s", "ethusdt", "-n", "3")
    assert [r["trade_count"] for r in recent_eth] == list(eth["trade_count"][::-1][:3])

    trends = ask(db, "trends", "--since", "2024-12-31T00:05")
    assert [(r["symbol"], r["window_start"][11:16]) for r in trends] == [
        ("ETHUSDT", f"00:0{m}") for m in range(5, 10)
    ]  # BTCUSDT has no minutes after 00:01
    for row, (_, want) in zip(trends, eth.iloc[5:].iterrows(), strict=True):
        assert row["avg_price"] == pytest.approx(want["avg_price"], rel=1e-12)
        assert row["volatility"] == pytest.approx(want["volatility"], rel=1e-9)

    # volatility of the real minutes: 13.685 at 00:00 and 11.303 at 00:01
    volatile = ask(db, "volatile", "--above", "12", "-s", "BTCUSDT")
    assert [r["window_start"] for r in volatile] == ["2024-12-31T00:00:00+00:00"]
    assert volatile[0]["volatility"] == pytest.approx(13.68505268, abs=1e-8)

    counts = ask(
        db,
        "--sql",
        "SELECT symbol, sum(trade_count) AS n FROM trade_analytics_1m GROUP BY 1 ORDER BY 1",
    )
    assert counts == [{"symbol": "BTCUSDT", "n": 4212}, {"symbol": "ETHUSDT", "n": len(sim)}]
