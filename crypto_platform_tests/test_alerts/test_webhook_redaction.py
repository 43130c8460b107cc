"""A webhook URL's credential (path, query, user info) never reaches an error or a log line."""

from __future__ import annotations

import time

import pytest
import requests

from crypto_platform.alerts.webhook import WebhookConfig, post, redact_url
from crypto_platform.kafka.broker import free_port

SECRET = "T0KEN-s3cr3t"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hooks.example.com/services/{SECRET}", "https://hooks.example.com/***"),
        (f"http://127.0.0.1:9000/hook?token={SECRET}", "http://127.0.0.1:9000/***"),
        (f"http://user:{SECRET}@127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
    ],
)
def test_redacted_urls_keep_only_scheme_host_and_port(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_failing_post_reports_no_secret() -> None:
    url = f"http://user:{SECRET}@127.0.0.1:{free_port()}/hook/{SECRET}?key={SECRET}"
    config = WebhookConfig(url=url, timeout_s=1.0, attempts=2, budget_s=5.0)
    with requests.Session() as session:
        result = post(session, config, {"text": "x"}, time.monotonic() + 5.0)
    assert not result.ok and result.attempts == 2
    assert result.error and "ConnectionError" in result.error
    assert SECRET not in result.error
