"""Alerts end to end on a real DuckDB file and a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from crypto_platform.alerts.engine import run_alerts
from crypto_platform.alerts.webhook import WebhookConfig
from crypto_platform_tests.test_alerts.crafted import EXPECTED, RULES, all_trades, at, minute_trades
from crypto_platform_tests.test_alerts.receiver import webhook_receiver
from crypto_platform_tests.test_query.analytics_db import fill_analytics

LONG_AGO = timedelta(days=36500)  # the crafted minutes are in 2025: never "stale" here


def stored(path: Path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            """SELECT rule, symbol, window_start, window_end, value, delivery, attempts, last_error
            FROM alerts ORDER BY window_start, rule"""
        ).fetchall()
    finally:
        con.close()


def as_expected(rows: list[tuple]) -> set[tuple]:
    """Stored rows in the form of ``EXPECTED`` (value of the silence left out)."""
    out = set()
    for rule, symbol, start, end, value, *_ in rows:
        minutes = (
            int((start - at(0)).total_seconds() // 60),
            int((end - at(0)).total_seconds() // 60),
        )
        out.add((rule, symbol, *minutes, None if rule == "quiet" else value))
    return out


def approx_equal(got: set[tuple], expected: set[tuple]) -> bool:
    def norm(rows):
        return sorted((r[:4], round(r[4], 9) if r[4] is not None else None) for r in rows)

    return norm(got) == norm(expected)


def test_minutes_arriving_one_by_one_fire_each_alert_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "analytics.duckdb"
    with webhook_receiver() as receiver:
        hook = WebhookConfig(receiver.url, timeout_s=2, attempts=3)
        for minute in range(13):  # as the pipeline would: one closed minute at a time
            fill_analytics(db, minute_trades(minute))
            run_alerts(db, RULES, at(0), at(60), webhook=hook, max_age=LONG_AGO)
        rows = stored(db)
        assert approx_equal(as_expected(rows), EXPECTED)
        assert len(rows) == len(EXPECTED) == 6
        assert {r[5] for r in rows} == {"sent"} and {r[6] for r in rows} == {1}
        assert len(receiver.received) == 6 and receiver.attempts == 6
        # The silence was first seen complete when ETH's 10:09 minute arrived: 5 silent minutes.
        quiet = next(r for r in rows if r[0] == "quiet")
        assert quiet[4] == 5.0

        # A backfill of the same minutes, and a re-run over a wider range: nothing fires again.
        fill_analytics(db, all_trades())
        summary = run_alerts(db, RULES, at(-60), at(120), webhook=hook, max_age=LONG_AGO)
        assert summary.new == [] and summary.sent == 0
        assert stored(db) == rows and receiver.attempts == 6


def test_one_backfill_over_the_range_gives_the_same_alerts(tmp_path: Path) -> None:
    db = tmp_path / "analytics.duckdb"
    fill_analytics(db, all_trades())
    summary = run_alerts(db, RULES, at(0), at(60))
    assert summary.by_rule() == {"jump": 1, "jump5": 1, "vol": 1, "quiet": 1, "cross": 2}
    rows = stored(db)
    assert approx_equal(as_expected(rows), EXPECTED)
    assert {r[5] for r in rows} == {"none"}  # no webhook configured
    # hourly partitions evaluated one by one after the fact: no duplicates, nothing new
    for hour in range(-1, 2):
        assert run_alerts(db, RULES, at(60 * hour), at(60 * hour + 60)).new == []


def test_a_webhook_that_fails_twice_gets_the_alert_on_the_third_try(tmp_path: Path) -> None:
    db = tmp_path / "analytics.duckdb"
    fill_analytics(db, all_trades())
    rule = [r for r in RULES if r.name == "vol"]
    with webhook_receiver(statuses=[503, 500]) as receiver:
        hook = WebhookConfig(receiver.url, timeout_s=2, attempts=3)
        summary = run_alerts(db, rule, at(0), at(60), webhook=hook, max_age=LONG_AGO)
    assert (summary.sent, summary.failed) == (1, 0)
    assert receiver.attempts == 3 and len(receiver.received) == 1
    assert receiver.received[0]["rule"] == "vol" and receiver.received[0]["symbol"] == "BTCUSDT"
    assert receiver.received[0]["value"] == pytest.approx(2**0.5, rel=1e-12)
    assert stored(db)[0][5:7] == ("sent", 3)


def test_a_dead_webhook_is_retried_logged_and_the_run_still_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "analytics.duckdb"
    fill_analytics(db, all_trades())
    with webhook_receiver(statuses=[500] * 50) as receiver:
        hook = WebhookConfig(receiver.url, timeout_s=2, attempts=3)
        with caplog.at_level(logging.WARNING):
            summary = run_alerts(db, RULES, at(0), at(60), webhook=hook, max_age=LONG_AGO)
    assert (summary.sent, summary.failed) == (0, 6)
    assert receiver.attempts == 18  # 3 tries for each of the 6 alerts
    rows = stored(db)
    assert {(r[5], r[6]) for r in rows} == {("failed", 3)}
    assert all(r[7].startswith("HTTP 500") for r in rows)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 6 and "after 3 tries" in errors[0].getMessage()
    assert sum("alert: [" in r.getMessage() for r in caplog.records) == 6
    # A failed delivery is not retried forever: the next run leaves it alone.
    assert run_alerts(db, RULES, at(0), at(60), webhook=hook, max_age=LONG_AGO).failed == 0


def test_a_refused_connection_fails_fast_and_alerts_stay_stored(tmp_path: Path) -> None:
    db = tmp_path / "analytics.duckdb"
    fill_analytics(db, all_trades())
    with webhook_receiver() as receiver:
        url = receiver.url  # the port is closed once the receiver stops
    hook = WebhookConfig(url, timeout_s=1, attempts=2)
    started = time.monotonic()
    summary = run_alerts(db, RULES[:1], at(0), at(60), webhook=hook, max_age=LONG_AGO)
    assert time.monotonic() - started < 5
    assert summary.failed == 1 and stored(db)[0][5:7] == ("failed", 2)
    assert "ConnectionError" in stored(db)[0][7]


def test_a_hanging_webhook_holds_no_lock_and_is_cut_off_by_the_budget(tmp_path: Path) -> None:
    """While the receiver hangs, another process writes the database; the run ends on time."""
    db = tmp_path / "analytics.duckdb"
    fill_analytics(db, all_trades())
    with webhook_receiver(delay_s=3.0) as receiver:
        hook = WebhookConfig(receiver.url, timeout_s=1.0, attempts=2, budget_s=2.5)
        result = {}

        def run() -> None:
            started = time.monotonic()
            result["summary"] = run_alerts(db, RULES, at(0), at(60), webhook=hook, max_age=LONG_AGO)
            result["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 10
        while receiver.attempts == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.attempts >= 1  # the run is now waiting on the webhook
        writer = subprocess.run(
            [
                sys.executable,
                "-c",
                "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                "c.execute('CREATE TABLE pipeline_was_here AS SELECT 1 AS x'); c.close()",
                str(db),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert writer.returncode == 0, writer.stderr
        thread.join(timeout=30)
    summary = result["summary"]
    assert result["seconds"] < 2.5 + 1.5  # the budget, plus the store's own milliseconds
    assert summary.sent == 0 and summary.left_pending + summary.failed == 6
    assert summary.left_pending >= 4  # out of time: they wait for the next run
    assert {r[5] for r in stored(db)} <= {"pending", "failed"}


def test_alerts_on_old_minutes_are_stored_but_not_sent(tmp_path: Path) -> None:
    db = tmp_path / "analytics.duckdb"
    fill_analytics(db, all_trades())
    with webhook_receiver() as receiver:
        hook = WebhookConfig(receiver.url)
        summary = run_alerts(db, RULES, at(0), at(60), webhook=hook, max_age=timedelta(hours=1))
    assert len(summary.new) == 6 and receiver.attempts == 0
    assert {r[5] for r in stored(db)} == {"stale"}
