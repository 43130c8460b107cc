"""One evaluation of the alert rules over a range of minutes, as the Dagster asset runs it.

1. Under the write lock (held for milliseconds): read the minutes, evaluate the rules, store
   the firings that are new, list the alerts waiting for the webhook.
2. Without any lock: log the new alerts and POST the waiting ones (bounded tries and time).
3. Under the write lock again: record how each delivery went.

The webhook never runs while the database is locked, so a slow receiver cannot hold up the
pipeline's writes; a failing one is tried again, then logged, and the run still succeeds.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import requests

from crypto_platform.alerts import store
from crypto_platform.alerts.webhook import WebhookConfig, post
from crypto_platform.core.alerts import AlertRule, Firing, evaluate, lookback, webhook_payload


class Log(Protocol):
    def info(self, msg: str, *args: Any) -> Any: ...
    def warning(self, msg: str, *args: Any) -> Any: ...
    def error(self, msg: str, *args: Any) -> Any: ...


@dataclass
class AlertsSummary:
    minutes_read: int = 0
    data_until: datetime | None = None
    new: list[Firing] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    left_pending: int = 0

    def by_rule(self) -> dict[str, int]:
        return dict(Counter(f.rule for f in self.new))


def _delivery_state(
    firing: Firing, webhook: WebhookConfig | None, now: datetime, max_age: timedelta | None
) -> str:
    if webhook is None:
        return "none"
    if max_age is not None and firing.window_end < now - max_age:
        return "stale"
    return "pending"


def run_alerts(
    duckdb_path: Path,
    rules: list[AlertRule],
    start: datetime,
    end: datetime,
    webhook: WebhookConfig | None = None,
    max_age: timedelta | None = None,
    log: Log | None = None,
    now: datetime | None = None,
) -> AlertsSummary:
    """Evaluate ``rules`` for the minutes anchored in ``[start, end)``; see the module doc."""
    log = log or logging.getLogger(__name__)
    now = now or datetime.now(UTC)
    summary = AlertsSummary()
    with store.writing(duckdb_path) as con:
        store.ensure_table(con)
        minutes, data_until = store.load_minutes(con, start, end, lookback(rules))
        summary.minutes_read, summary.data_until = len(minutes), data_until
        if data_until is not None and rules:
            firings = evaluate(rules, minutes, start, end, data_until)
            states = {f.key: _delivery_state(f, webhook, now, max_age) for f in firings}
            summary.new = store.record(con, firings, now, states)
        waiting = store.pending(con) if webhook else []
    for firing in summary.new:
        log.warning("alert: %s", firing.message)
    if waiting:
        deliveries = _deliver(waiting, webhook, log)
        with store.writing(duckdb_path) as con:
            store.mark_deliveries(con, deliveries)
        states = Counter(d.state for d in deliveries)
        summary.sent, summary.failed = states["sent"], states["failed"]
        summary.left_pending = states["pending"]
    return summary


def _deliver(
    waiting: list[store.PendingAlert], webhook: WebhookConfig, log: Log
) -> list[store.Delivery]:
    deadline = time.monotonic() + webhook.budget_s
    deliveries = []
    with requests.Session() as session:
        for item in waiting:
            result = post(session, webhook, webhook_payload(item.firing), deadline)
            state = "sent" if result.ok else ("pending" if result.out_of_time else "failed")
            if state == "failed":
                log.error(
                    "alert %s for %s not delivered to the webhook after %d tries: %s",
                    item.firing.rule,
                    item.firing.symbol,
                    result.attempts,
                    result.error,
                )
            elif state == "pending":
                log.warning("webhook out of time; alert %s waits for the next run", item.firing.key)
            at = datetime.now(UTC)
            deliveries.append(
                store.Delivery(item.firing.key, state, result.attempts, result.error, at)
            )
    return deliveries
