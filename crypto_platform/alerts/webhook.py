"""POSTing alerts to a webhook: a bounded number of tries, each with a timeout, then give up.

A 2xx answer is delivery. A timeout, a refused connection, a 429 or a 5xx is tried again after
a short pause (0.5 s, 1 s, 2 s, ...); any other answer (a 4xx: the receiver rejects the request)
fails at once, since sending the same thing again cannot help. A whole run also has a time
budget, so a dead receiver delays nothing by more than that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
FIRST_PAUSE_S = 0.5


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    timeout_s: float = 5.0
    attempts: int = 3
    budget_s: float = 30.0


@dataclass(frozen=True)
class PostResult:
    ok: bool
    attempts: int
    error: str | None
    out_of_time: bool = False


def post(
    session: requests.Session, config: WebhookConfig, payload: dict, deadline: float
) -> PostResult:
    """Try to deliver one payload; never raises, never runs past ``deadline`` (monotonic)."""
    error = "no attempt made"
    for attempt in range(1, config.attempts + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return PostResult(False, attempt - 1, f"out of time; last error: {error}", True)
        try:
            response = session.post(
                config.url, json=payload, timeout=min(config.timeout_s, remaining)
            )
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        else:
            if 200 <= response.status_code < 300:
                return PostResult(True, attempt, None)
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code not in RETRY_STATUSES:
                return PostResult(False, attempt, error)
        if attempt < config.attempts:
            time.sleep(
                min(FIRST_PAUSE_S * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic()))
            )
    return PostResult(False, config.attempts, error)
