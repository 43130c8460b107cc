"""trade_trends_1m against pandas on a time index, on a real DuckDB file: across hour
boundaries, gaps, an hour-by-hour pipeline, a minute-by-minute one and one backfill."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from crypto_platform import derived, warehouse
from crypto_platform.core.analytics import ANALYTICS_COLUMNS
from crypto_platform.core.trends import TREND_BAND, TRENDS_TABLE, ema_decay, trend_sql
from crypto_platform.definitions import build_definitions

M = 60_000
H = 60 * M
START = 1_735_603_200_000  # 2024-12-31 00:00 UTC
HOURS = 11
FLOATS = (
    "close", "log_return", "sma_5", "sma_15", "sma_60", "ema_12", "ema_26", "macd",
    "volatility_60m", "volatility_60m_annualised", "vwap_60m", "volume_60m", "quote_volume_60m",
)  # fmt: skip


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def minute_rows(seed: int = 7) -> pa.Table:
    """Analytics-shaped minutes of two symbols over 11 hours, with random and planted gaps
    (a whole hour's first minute, a 90-minute hole)."""
    rng = np.random.default_rng(seed)
    rows = []
    for symbol, price in (("BTCUSDT", 93_000.0), ("ETHUSDT", 3_400.0)):
        for i in range(HOURS * 60):
            minute = START + i * M
            planted = minute == START + 3 * H or START + 5 * H <= minute < START + 6 * H + 30 * M
            if planted or rng.random() < 0.15:
                continue
            price *= math.exp(rng.normal(0, 0.0008))
            volume = float(rng.uniform(0.1, 5))
            rows.append(_row(symbol, minute, price, volume))
    return pa.Table.from_pylist(rows).select(list(ANALYTICS_COLUMNS))


def _row(symbol: str, minute: int, close: float, volume: float) -> dict:
    return {
        "symbol": symbol, "window_start": _utc(minute), "window_end": _utc(minute + M),
        "avg_price": close, "price_change_pct": 0.01, "volatility": 1.0, "trade_count": 3,
        "open": close, "high": close * 1.0001, "low": close * 0.9999, "close": close,
        "volume": volume, "quote_volume": volume * close * 1.00001, "vwap": close * 1.00001,
        "taker_buy_volume": volume / 2, "taker_sell_volume": volume / 2,
        "first_trade_id": minute // M, "last_trade_id": minute // M + 2, "is_complete": True,
    }  # fmt: skip


def expected(rows: pa.Table) -> dict[tuple[str, int], dict]:
    """pandas, from the definitions: rolling windows on a time index, ewm with times."""
    frame = rows.to_pandas()
    result = {}
    for symbol, group in frame.groupby("symbol"):
        s = group.set_index(group["window_start"].dt.tz_convert(None)).sort_index()
        close = s["close"]
        log_return = np.log(close / close.shift(freq="1min").reindex(close.index))
        out = pd.DataFrame({"close": close, "log_return": log_return})
        for n in (5, 15, 60):
            out[f"sma_{n}"] = close.rolling(f"{n}min").mean()
        # On a dense minute grid with NaN for the gaps, ignore_na=False weighs each close by
        # (1 - alpha) ** (minutes since it): the definition, with alpha exact (ewm's
        # ``times=`` would round the half-life to whole nanoseconds, ~1e-12 off).
        dense = close.asfreq("1min")
        for span in (12, 26):
            smoothed = dense.ewm(alpha=1 - ema_decay(span), ignore_na=False).mean()
            out[f"ema_{span}"] = smoothed.reindex(close.index)
        out["macd"] = out["ema_12"] - out["ema_26"]
        out["volatility_60m"] = log_return.rolling("60min").std()
        out["volatility_60m_annualised"] = out["volatility_60m"] * math.sqrt(365 * 24 * 60)
        out["volume_60m"] = s["volume"].rolling("60min").sum()
        out["quote_volume_60m"] = s["quote_volume"].rolling("60min").sum()
        out["vwap_60m"] = out["quote_volume_60m"] / out["volume_60m"]
        out["minutes_60m"] = close.rolling("60min").count()
        for at, values in out.iterrows():
            result[(symbol, int(at.timestamp() * 1000))] = values.to_dict()
    return result


def assert_equal_pandas(rows: list[dict], want: dict[tuple[str, int], dict]) -> None:
    got = {(r["symbol"], int(r["window_start"].timestamp() * 1000)): r for r in rows}
    assert sorted(got) == sorted(want)
    for key, values in want.items():
        row = got[key]
        assert row["minutes_60m"] == values["minutes_60m"], key
        for column in FLOATS:
            if pd.isna(values[column]):
                assert row[column] is None, (key, column, row[column])
            else:
                assert math.isclose(row[column], values[column], rel_tol=1e-9, abs_tol=1e-12), (
                    key, column, row[column], values[column],
                )  # fmt: skip


def _database(tmp_path: Path, rows: pa.Table, name: str = "analytics.duckdb") -> Path:
    path = tmp_path / name
    with warehouse.connection(path) as conn:
        minutes = [int(t.timestamp() * 1000) for t in rows["window_start"].to_pylist()]
        warehouse.replace_minutes(conn, rows, minutes)
    return path


def _trends(path: Path) -> list[dict]:
    with warehouse.connection(path, read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return (
            conn.sql(f"SELECT * FROM {TRENDS_TABLE} ORDER BY symbol, window_start")
            .to_arrow_table()
            .to_pylist()
        )


def test_hourly_runs_and_one_backfill_equal_pandas_over_gaps_and_hour_boundaries(
    tmp_path: Path,
) -> None:
    rows = minute_rows()
    want = expected(rows)
    path = _database(tmp_path, rows)
    with warehouse.connection(path) as conn:
        for hour in range(START, START + HOURS * H, H):  # what the hourly partitions do
            derived.rebuild_trends(conn, hour, hour + H)
    hourly = _trends(path)
    assert_equal_pandas(hourly, want)
    with warehouse.connection(path) as conn:
        conn.execute(f"DELETE FROM {TRENDS_TABLE}")
        derived.rebuild_trends(conn, START, START + HOURS * H)  # one backfill
    backfill = _trends(path)
    assert_equal_pandas(backfill, want)
    assert [r["trend"] for r in backfill] == [r["trend"] for r in hourly]
    assert {r["trend"] for r in backfill} == {"up", "down", "flat"}
    # the planted gaps: 03:00 missing, so 03:01 has no return; 06:30 after a 90-minute hole
    after_gap = {(r["symbol"], r["window_start"]): r for r in backfill}
    first = after_gap[("BTCUSDT", _utc(START + 3 * H + M))]
    assert first["log_return"] is None
    resumed = after_gap[("BTCUSDT", _utc(START + 6 * H + 30 * M))]
    assert resumed["minutes_60m"] == 1 and resumed["volatility_60m"] is None


def test_minute_by_minute_runs_across_an_hour_boundary_equal_one_backfill(tmp_path: Path) -> None:
    """As the pipeline does it: each closed minute lands, the hour's trends are rebuilt."""
    rows = minute_rows(seed=3)
    cut = START + 8 * H - 10 * M
    times = np.array([int(t.timestamp() * 1000) for t in rows["window_start"].to_pylist()])
    early = rows.filter(pa.array(times < cut))
    path = _database(tmp_path, early)
    with warehouse.connection(path) as conn:
        for minute in range(cut, START + 8 * H + 10 * M, M):
            arriving = rows.filter(pa.array(times == minute))
            warehouse.replace_minutes(conn, arriving, [minute])
            hour = minute - minute % H
            derived.rebuild_trends(conn, hour, hour + H)
    live = {(r["symbol"], r["window_start"]): r for r in _trends(path)}
    other = _database(tmp_path, rows.filter(pa.array(times < START + 8 * H + 10 * M)), "b.duckdb")
    with warehouse.connection(other) as conn:
        derived.rebuild_trends(conn, cut, START + 8 * H + 10 * M)
    backfill = _trends(other)
    assert len(backfill) >= 30
    for row in backfill:
        twin = live[(row["symbol"], row["window_start"])]
        for column in FLOATS:
            if row[column] is None:
                assert twin[column] is None
            else:
                # macd subtracts two EMAs: its last bits are the price's (1e-16 of ~1e5)
                close = abs(row["close"]) if column == "macd" else 1.0
                assert math.isclose(twin[column], row[column], rel_tol=1e-12, abs_tol=1e-15 * close)


def test_a_hand_checked_series() -> None:
    """Closes 100, 102, 104, (gap), 110, 106 in minutes 0-5 of an hour."""
    closes = {0: 100.0, 1: 102.0, 2: 104.0, 4: 110.0, 5: 106.0}
    rows = pa.Table.from_pylist(
        [_row("BTCUSDT", START + m * M, c, 1.0) for m, c in closes.items()]
    ).select(list(ANALYTICS_COLUMNS))
    conn = duckdb.connect()
    derived.prepare(conn)
    conn.register("new", rows)
    conn.execute("INSERT INTO trade_analytics_1m SELECT * FROM new")
    got = derived.trend_rows(conn, START, START + H).to_pylist()
    by_minute = {int(r["window_start"].timestamp() * 1000 - START) // M: r for r in got}
    assert by_minute[4]["sma_5"] == pytest.approx(104.0, abs=1e-12)  # (100+102+104+110)/4
    assert by_minute[5]["sma_5"] == pytest.approx(105.5, abs=1e-12)  # (102+104+110+106)/4
    assert by_minute[4]["log_return"] is None  # minute 3 has no trades: a gap, not a shift
    assert by_minute[5]["log_return"] == pytest.approx(math.log(106 / 110), rel=1e-15)
    q = 11 / 13
    assert by_minute[1]["ema_12"] == pytest.approx((102 + 100 * q) / (1 + q), rel=1e-15)
    weights = {m: q ** (4 - m) for m in (0, 1, 2, 4)}
    ema4 = sum(w * closes[m] for m, w in weights.items()) / sum(weights.values())
    assert by_minute[4]["ema_12"] == pytest.approx(ema4, rel=1e-15)
    returns = [math.log(102 / 100), math.log(104 / 102), math.log(106 / 110)]
    assert by_minute[5]["volatility_60m"] == pytest.approx(np.std(returns, ddof=1), rel=1e-12)
    assert by_minute[5]["minutes_60m"] == 5 and by_minute[5]["trade_count_60m"] == 15


@pytest.mark.parametrize(
    ("sma_5", "sma_15", "sma_60", "label"),
    [
        (103.0, 102.0, 101.0, "up"),
        (101.0, 102.0, 103.0, "down"),
        (103.0, 101.0, 102.0, "flat"),  # not in order
        (100.005, 100.0, 99.0, "flat"),  # 0.5 bp apart: inside the band
        (100.02, 100.0, 99.0, "up"),  # 2 bp
        (100.0, 100.0, 100.0, "flat"),
    ],
)
def test_the_trend_rule(sma_5: float, sma_15: float, sma_60: float, label: str) -> None:
    sql = f"SELECT {trend_sql()} FROM (SELECT ? AS sma_5, ? AS sma_15, ? AS sma_60)"
    assert duckdb.execute(sql, [sma_5, sma_15, sma_60]).fetchone()[0] == label


def test_the_asset_states_the_trend_rule(settings_factory) -> None:
    """The UI's description of trade_trends_1m is its docstring: the rule, with the band the
    SQL uses (1 basis point), not a pointer to the code."""
    defs = build_definitions(settings_factory())
    text = " ".join(
        defs.resolve_assets_def(TRENDS_TABLE).descriptions_by_key[dg.AssetKey(TRENDS_TABLE)].split()
    )
    band = f"{TREND_BAND:.4f}"
    assert TREND_BAND == 1e-4 and band == "0.0001"
    assert f"``up`` when sma_5 > sma_15 * (1 + {band}) and sma_15 > sma_60 * (1 + {band})" in text
    assert f"``down`` when sma_5 < sma_15 * (1 - {band}) and sma_15 < sma_60 * (1 - {band})" in text
    assert "otherwise ``flat``" in text and "1 basis point" in text
