"""Alert rules and the webhook in settings: TOML, environment JSON, and clear refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crypto_platform.core.alerts import DEFAULT_RULES, AlertRule
from crypto_platform.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("CRYPTO_PLATFORM_") or key == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.alert_rules == list(DEFAULT_RULES)
    assert settings.alert_webhook_url is None
    assert (settings.dashboard_host, settings.dashboard_port) == ("127.0.0.1", 8050)


def test_rules_from_toml(tmp_path: Path) -> None:
    (tmp_path / "crypto-platform.toml").write_text(
        """
alert_webhook_url = "http://127.0.0.1:9999/hook"

[[alert_rules]]
name = "btc_100k"
kind = "price_cross"
symbol = "btcusdt"
level = 100000
direction = "up"

[[alert_rules]]
name = "quiet"
kind = "no_trades"
minutes = 10
"""
    )
    settings = load_settings()
    assert settings.alert_rules == [
        AlertRule("btc_100k", "price_cross", symbol="BTCUSDT", level=100000.0, direction="up"),
        AlertRule("quiet", "no_trades", minutes=10),
    ]
    assert settings.alert_webhook_url == "http://127.0.0.1:9999/hook"


def test_rules_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CRYPTO_PLATFORM_ALERT_RULES", '[{"name": "v", "kind": "volatility", "above": 50}]'
    )
    assert load_settings().alert_rules == [AlertRule("v", "volatility", above=50.0)]
    monkeypatch.setenv("CRYPTO_PLATFORM_ALERT_RULES", "[]")
    assert load_settings().alert_rules == []


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        (
            "CRYPTO_PLATFORM_ALERT_RULES",
            '[{"name": "v", "kind": "volatility"}]',
            "needs a positive",
        ),
        ("CRYPTO_PLATFORM_ALERT_RULES", "not json", "alert_rules"),
        (
            "CRYPTO_PLATFORM_ALERT_RULES",
            '[{"name": "a", "kind": "no_trades"}, {"name": "a", "kind": "no_trades"}]',
            "must be unique",
        ),
        ("CRYPTO_PLATFORM_ALERT_WEBHOOK_URL", "ftp://x", "must start with http"),
        ("CRYPTO_PLATFORM_DASHBOARD_PORT", "80", "dashboard_port"),
    ],
)
def test_bad_values_stop_with_the_setting_named(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert expected in str(info.value)
