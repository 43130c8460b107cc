"""`crypto-platform query` on real DuckDB files, checked against pandas over the same trades."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from crypto_platform.cli import main
from crypto_platform.core.trades import Trade
from crypto_platform_tests.test_query.expected import minutes_frame


def query(db: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    env = {"CRYPTO_PLATFORM_DUCKDB_PATH": str(db)}
    result = runner.invoke(main, ["query", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def as_json(db: Path, *args: str) -> list[dict]:
    code, out, err = query(db, *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_recent_on_real_trades_matches_the_official_minutes(
    real_db: Path, real_trades: list[Trade]
) -> None:
    rows = as_json(real_db, "recent", "--symbol", "btcusdt", "--last", "5")
    assert [r["window_start"] for r in rows] == [
        "2024-12-31T00:01:00+00:00",  # newest first
        "2024-12-31T00:00:00+00:00",
    ]
    # trade counts and volumes of Binance's official klines (PROVENANCE.md)
    assert [r["trade_count"] for r in rows] == [2552, 1660]
    assert [r["volume"] for r in rows] == [8.44271, 6.45789]
    first_minute = [t.price for t in real_trades if t.trade_time_ms < 1735603260000]
    assert rows[1]["avg_price"] == float(sum(first_minute, Decimal(0))) / len(first_minute)
    assert rows[1]["avg_price"] == pytest.approx(92806.94421084, abs=1e-8)


def test_recent_gives_the_latest_n_of_each_symbol(sim_db: Path, sim_trades: list[Trade]) -> None:
    rows = as_json(sim_db, "recent", "-n", "3")
    expected = minutes_frame(sim_trades).sort_values(["symbol", "window_start"])
    latest = (
        expected.groupby("symbol")
        .tail(3)
        .sort_values(["symbol", "window_start"], ascending=[True, False])
    )
    assert [(r["symbol"], r["window_start"]) for r in rows] == [
        (s, w.isoformat()) for s, w in zip(latest["symbol"], latest["window_start"], strict=True)
    ]
    for row, (_, want) in zip(rows, latest.iterrows(), strict=True):
        assert row["trade_count"] == want["trade_count"]
        assert row["avg_price"] == pytest.approx(want["avg_price"], rel=1e-12)
        assert row["volatility"] == pytest.approx(want["volatility"], rel=1e-9)
        assert row["volume"] == pytest.approx(want["volume"], rel=1e-12)


def test_trends_since_one_hour_lists_every_minute_of_the_last_hour(
    sim_db: Path, sim_trades: list[Trade]
) -> None:
    before = datetime.now(UTC)
    code, out, err = query(sim_db, "trends", "--since", "1h", "-s", "ETHUSDT", "--format", "csv")
    after = datetime.now(UTC)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    frame = minutes_frame(sim_trades)
    eth = frame[frame["symbol"] == "ETHUSDT"].sort_values("window_start")
    candidates = [
        [w.isoformat() for w in eth["window_start"] if w >= now - timedelta(hours=1)]
        for now in (before, after)
    ]
    assert [r["window_start"] for r in rows] in candidates
    assert 59 <= len(rows) <= 60 and {r["symbol"] for r in rows} == {"ETHUSDT"}
    by_start = {
        w.isoformat(): a for w, a in zip(eth["window_start"], eth["avg_price"], strict=True)
    }
    for row in rows:  # CSV carries the full double
        assert float(row["avg_price"]) == pytest.approx(by_start[row["window_start"]], rel=1e-12)


def test_trends_since_a_time_and_volatile_above_a_threshold(
    sim_db: Path, sim_trades: list[Trade]
) -> None:
    frame = minutes_frame(sim_trades)
    btc = frame[frame["symbol"] == "BTCUSDT"]
    since = btc["window_start"].iloc[-10]
    rows = as_json(sim_db, "trends", "--since", since.strftime("%Y-%m-%dT%H:%M"), "-s", "btcusdt")
    assert [r["window_start"] for r in rows] == [w.isoformat() for w in btc["window_start"][-10:]]

    threshold = float(btc["volatility"].median())
    rows = as_json(sim_db, "volatile", "--above", str(threshold), "--symbol", "btcusdt")
    want = btc[btc["volatility"] > threshold].sort_values("window_start", ascending=False)
    assert [r["window_start"] for r in rows] == [w.isoformat() for w in want["window_start"]]
    assert all(r["volatility"] > threshold for r in rows)
    assert len(rows) == len(btc) // 2  # above the median: half the minutes (no ties)


def test_volatile_over_all_symbols_is_newest_first(sim_db: Path, sim_trades: list[Trade]) -> None:
    rows = as_json(sim_db, "volatile", "--above", "0.5")
    frame = minutes_frame(sim_trades)
    assert len(rows) == int((frame["volatility"] > 0.5).sum()) > 0
    starts = [r["window_start"] for r in rows]
    assert starts == sorted(starts, reverse=True)


def test_free_sql_counts_every_trade(sim_db: Path, sim_trades: list[Trade]) -> None:
    rows = as_json(
        sim_db,
        "--sql",
        "SELECT symbol, sum(trade_count) AS trades FROM trade_analytics_1m GROUP BY 1 ORDER BY 1",
    )
    counts = {
        s: sum(1 for t in sim_trades if t.symbol == s) for s in {t.symbol for t in sim_trades}
    }
    assert rows == [{"symbol": s, "trades": counts[s]} for s in sorted(counts)]


def test_the_table_is_aligned_with_a_row_count(real_db: Path) -> None:
    code, out, _ = query(real_db, "recent")
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "(2 rows)"
    header, rule, *body = lines[:-1]
    assert header.split() == [
        "symbol", "window_start", "window_end", "avg_price", "price_change_pct", "volatility",
        "trade_count", "volume",
    ]  # fmt: skip
    assert len({len(line) for line in (header, rule, *body)}) == 1  # every line equally wide
    assert body[0].split()[:2] == ["BTCUSDT", "2024-12-31T00:01:00+00:00"]
    assert body[0].split()[3] == "92773.79727273"  # 8 decimals, right-aligned numbers
    assert body[0].split()[6:] == ["2552", "8.44271"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recent", "--symbol", "dogeusdt"], "unknown symbol DOGEUSDT: the database has BTCUSDT"),
        (["--sql", "SELEC 1"], "the SQL failed: Parser Error"),
        (["--sql", "SELECT nope FROM trade_analytics_1m"], 'Referenced column "nope"'),
        (["--sql", "DELETE FROM trade_analytics_1m"], "read-only mode"),
        (["--sql", "DROP TABLE trade_analytics_1m"], "read-only mode"),
        (["--sql", "COPY trade_analytics_1m TO 'out.csv'"], "disabled by configuration"),
        (["--sql", "ATTACH 'other.duckdb'"], "disabled by configuration"),
        (["--sql", "SELECT * FROM read_csv('/etc/hostname')"], "disabled by configuration"),
        (["trends", "--since", "yesterday"], "neither a duration"),
        (["recent", "--last", "0"], "--last must be at least 1"),
    ],
)
def test_bad_input_fails_clearly_and_changes_nothing(
    real_db: Path, args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = fingerprint(real_db)
    code, out, err = query(real_db, *args)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and message in err
    assert fingerprint(real_db) == before
    assert list(tmp_path.iterdir()) == []  # no file written next to us either


def test_a_missing_database_or_table_is_explained(tmp_path: Path) -> None:
    code, _, err = query(tmp_path / "nope.duckdb", "recent")
    assert code == 1 and "no analytics database at" in err
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    code, _, err = query(empty, "recent")
    assert code == 1 and "no trade_analytics_1m table yet" in err


def test_usage_errors_exit_2(real_db: Path) -> None:
    assert query(real_db)[0] == 2  # no subcommand: help
    assert query(real_db, "--sql", "SELECT 1", "recent")[0] == 2
    assert query(real_db, "recent", "--format", "xml")[0] == 2


def _hold_write_lock(db: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', "
            "flush=True); time.sleep(float(sys.argv[2]))",
            str(db),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_writer_holding_the_file_is_waited_for_then_named(real_db: Path) -> None:
    holder = _hold_write_lock(real_db, 1.5)
    try:
        started = time.monotonic()
        code, out, err = query(real_db, "--wait", "10", "recent", "-n", "1")
        assert code == 0, err  # the lock cleared within the wait: the answer came
        assert time.monotonic() - started >= 1.0 and "(1 row)" in out
    finally:
        holder.wait(timeout=30)

    holder = _hold_write_lock(real_db, 20)
    try:
        started = time.monotonic()
        code, out, err = query(real_db, "--wait", "1", "recent")
        assert code == 3 and out == ""
        assert f"PID {holder.pid}" in err and "still locked" in err
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait(timeout=30)
