"""The assets through real Kafka, Parquet and DuckDB: exact numbers, idempotence, late trades."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crypto_platform.core import lake
from crypto_platform.core.archive import read_klines, read_trades
from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.trades import Trade
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_defs.expected import assert_matches, expected_analytics
from crypto_platform_tests.test_defs.helpers import seed_trades

pytestmark = pytest.mark.kafka

M = 60_000
H = 3_600_000
SIM_HOUR = 1_764_072_000_000  # 2025-11-25 12:00 UTC
BTC_DAY = 1_735_603_200_000  # 2024-12-31 00:00 UTC


def simulated(minutes: int, start_ms: int = SIM_HOUR, seed: int = 11) -> list[Trade]:
    market = MarketSimulation(["btcusdt", "ethusdt"], seed=seed, start_ms=start_ms)
    return list(market.trades_between(start_ms, start_ms + minutes * M))


def materialisations(result, key: str) -> list:
    return [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key.path == [key]
    ]


def test_the_seed_example(platform: Platform) -> None:
    minute = SIM_HOUR + 30 * M
    platform.produce(seed_trades(minute))
    result = platform.run_minutes([minute])
    assert result.success
    (row,) = platform.analytics()
    assert row["symbol"] == "BTCUSDT" and row["trade_count"] == 3
    assert row["avg_price"] == pytest.approx(114401.66666666667, rel=1e-12)
    assert row["price_change_pct"] == pytest.approx(0.013112461208968923, rel=1e-12)
    assert row["volatility"] == pytest.approx(7.637626158259733, rel=1e-12)
    assert (row["open"], row["high"], row["low"], row["close"]) == (114400, 114410, 114395, 114395)
    assert row["taker_buy_volume"] == 1.0 and row["taker_sell_volume"] == 0.5
    stored = pq.read_table(lake.minute_file(platform.lake, "BTCUSDT", minute))
    assert stored["price"].to_pylist() == [Decimal("114400"), Decimal("114410"), Decimal("114395")]
    (raw,) = materialisations(result, "raw_trades")
    assert raw.metadata["minutes"].value == ["2025-11-25T12:30"]
    assert raw.metadata["rows_per_symbol"].value == {"BTCUSDT": 3}
    assert raw.metadata["complete_through"].value == "2025-11-25T12:00"  # 12:00-12:29 not done


def _xrpeth_trades(shared_binance: Path) -> list[Trade]:
    """The XRPETH aggTrades as trades (aggTrade id as the id; contiguous, real prices)."""
    path = shared_binance / "xrpeth_2019-10-11" / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv"
    trades = []
    for line in path.read_text().splitlines():
        agg_id, price, qty, _first, _last, time_ms, maker, _best = line.split(",")
        trades.append(
            Trade(
                "XRPETH",
                int(agg_id),
                Decimal(price),
                Decimal(qty),
                int(time_ms),
                int(time_ms),
                maker == "True",
            )
        )
    return trades


@pytest.mark.slow
def test_real_recorded_trades_equal_an_independent_computation(
    platform: Platform, shared_binance: Path
) -> None:
    btc = list(
        read_trades(
            shared_binance / "btcusdt_2024-12-31" / "BTCUSDT-trades-2024-12-31_00-00_00-01.csv"
        )
    )
    btc_2025 = list(
        read_trades(shared_binance / "btcusdt_2025-01-02" / "BTCUSDT-trades-2025-01-02.head32.csv")
    )
    xrp = _xrpeth_trades(shared_binance)[:4000]  # ~13 hours of 2019-10-11
    # In trade-time order, as ingestion delivers them; 100 trades twice (duplicates to drop).
    platform.produce(sorted(btc + btc_2025 + xrp + btc[:100], key=lambda t: t.trade_time_ms))
    for trades in (btc, btc_2025, xrp):
        first, last = trades[0].trade_time_ms, trades[-1].trade_time_ms
        assert platform.backfill(first - first % H, last - last % H).success
    assert_matches(platform.analytics(), expected_analytics(btc + btc_2025 + xrp))


def test_a_seeded_simulation_equals_an_independent_computation(platform: Platform) -> None:
    trades = simulated(6)
    platform.produce(trades + trades[::50])  # every 50th trade twice
    for minute in range(SIM_HOUR, SIM_HOUR + 6 * M, 2 * M):
        assert platform.run_minutes([minute, minute + M]).success
    rows = platform.analytics()
    assert len(rows) == 12
    assert_matches(rows, expected_analytics(trades))


def test_the_two_btcusdt_minutes_equal_binance_klines(
    platform: Platform, shared_binance: Path
) -> None:
    folder = shared_binance / "btcusdt_2024-12-31"
    platform.produce(read_trades(folder / "BTCUSDT-trades-2024-12-31_00-00_00-01.csv"))
    assert platform.run_minutes([BTC_DAY, BTC_DAY + M]).success
    klines = {k.open_time_ms: k for k in read_klines(folder / "BTCUSDT-1m-2024-12-31.head32.csv")}
    rows = platform.analytics()
    assert len(rows) == 2
    for row in rows:
        kline = klines[int(row["window_start"].timestamp() * 1000)]
        assert (row["open"], row["high"], row["low"], row["close"]) == tuple(
            float(v) for v in (kline.open, kline.high, kline.low, kline.close)
        )
        assert row["trade_count"] == kline.trade_count
        assert math.isclose(row["volume"], float(kline.volume), rel_tol=1e-12)
        assert math.isclose(row["quote_volume"], float(kline.quote_volume), rel_tol=1e-12)
        assert math.isclose(row["taker_buy_volume"], float(kline.taker_buy_volume), rel_tol=1e-12)


def test_every_way_of_materialising_gives_the_same_bytes_and_rows(platform: Platform) -> None:
    trades = simulated(4)
    platform.produce(trades)
    for minute in range(SIM_HOUR, SIM_HOUR + 4 * M, M):  # the sensor's way: minute by minute
        assert platform.run_minutes([minute]).success
    files, rows = platform.lake_bytes(), platform.analytics()
    assert len(files) == 8 and len(rows) == 8
    assert platform.run_minutes([SIM_HOUR + M]).success  # the same minute again
    assert platform.lake_bytes() == files and platform.analytics() == rows
    result = platform.backfill(SIM_HOUR, SIM_HOUR)  # a whole-hour backfill afterwards
    assert result.success
    assert platform.lake_bytes() == files and platform.analytics() == rows
    (raw,) = materialisations(result, "raw_trades")
    assert raw.metadata["minute_count"].value == 60
    assert raw.metadata["complete_through"].value == "2025-11-25T13:00"


def test_complete_through_advances_only_over_contiguous_minutes(platform: Platform) -> None:
    platform.produce(simulated(4))
    first = platform.run_minutes([SIM_HOUR, SIM_HOUR + M])
    assert materialisations(first, "raw_trades")[0].metadata["complete_through"].value == (
        "2025-11-25T12:02"
    )
    gap = platform.run_minutes([SIM_HOUR + 3 * M])  # 12:02 not done yet
    assert materialisations(gap, "raw_trades")[0].metadata["complete_through"].value == (
        "2025-11-25T12:02"
    )
    fill = platform.run_minutes([SIM_HOUR + 2 * M])
    assert materialisations(fill, "raw_trades")[0].metadata["complete_through"].value == (
        "2025-11-25T12:03"
    )


def test_late_trades_are_included_by_the_rerun_and_by_later_backfills(platform: Platform) -> None:
    trades = simulated(10)
    minute = SIM_HOUR + 2 * M
    late = [t for t in trades if t.symbol == "ETHUSDT" and minute <= t.trade_time_ms < minute + M][
        5:8
    ]
    on_time = [t for t in trades if t not in late]
    platform.produce(on_time)
    assert platform.run_minutes([minute]).success
    before = {(r["symbol"]): r["trade_count"] for r in platform.analytics()}
    platform.produce(late)  # a gap fill: delivered after eight minutes of newer trades
    rerun = platform.run_minutes([minute], read_until_ms=SIM_HOUR + 11 * M)
    assert rerun.success
    after = {(r["symbol"]): r["trade_count"] for r in platform.analytics()}
    assert after["ETHUSDT"] == before["ETHUSDT"] + 3 and after["BTCUSDT"] == before["BTCUSDT"]
    assert_matches(
        platform.analytics(),
        expected_analytics(t for t in trades if minute <= t.trade_time_ms < minute + M),
    )
    files = platform.lake_bytes()
    assert platform.backfill(SIM_HOUR, SIM_HOUR).success  # stops early by time, but not before
    minute_files = {k: v for k, v in platform.lake_bytes().items() if "minute=02" in k}
    assert minute_files == {k: v for k, v in files.items() if "minute=02" in k}
