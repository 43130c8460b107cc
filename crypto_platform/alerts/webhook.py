"""POSTing alerts to a webhook: a bounded number of tries, each with a timeout, then give up.

A 2xx answer is delivery. A timeout, a refused connection, a 429 or a 5xx is tried again after
a short pause (0.5 s, 1 s, 2 s, ...); any other answer (a 4xx: the receiver rejects the request)
fails at once, since sending the same thing again cannot help. A whole run also has a time
budget, so a dead receiver delays nothing by more than that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

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


def redact_url(url: str) -> str:
    """The URL as it may be logged: scheme, host and port only.

    Webhook URLs often carry their credential in the path or query (Slack, Teams, Discord) or as
    user info; none of those may reach the logs or the alerts table.
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/***" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


def redact(text: str, url: str) -> str:
    """``text`` with every secret-bearing piece of ``url`` replaced by ``***``."""
    parts = urlsplit(url)
    secrets = [
        url,
        parts.path + ("?" + parts.query if parts.query else ""),
        parts.path,
        parts.query,
        parts.username or "",
        parts.password or "",
    ]
    for secret in sorted((s for s in secrets if s and s != "/"), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


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
            error = redact(f"{type(exc).__name__}: {exc}", config.url)[:500]
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
