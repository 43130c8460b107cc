from pathlib import Path

import pytest

from crypto_platform.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("CRYPTO_PLATFORM_") or key == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_use_a_local_broker() -> None:
    settings = load_settings()
    assert settings.uses_local_broker
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.symbols_upper[0] == "BTCUSDT"
    assert settings.resolved_duckdb_path == Path("data/analytics.duckdb")


def test_env_vars_set_symbols_and_external_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTO_PLATFORM_SYMBOLS", " BTCUSDT, ethusdt ")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    settings = load_settings()
    assert settings.symbols == ["btcusdt", "ethusdt"]
    assert not settings.uses_local_broker
    assert settings.bootstrap_servers == "broker-1:9092,broker-2:9092"


def test_toml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "crypto-platform.toml").write_text(
        'symbols = ["solusdt"]\ngrace_seconds = 12.5\nkafka_port = 19092\n'
    )
    monkeypatch.setenv("CRYPTO_PLATFORM_KAFKA_PORT", "29092")
    settings = load_settings()
    assert settings.symbols == ["solusdt"]
    assert settings.grace_seconds == 12.5
    assert settings.kafka_port == 29092


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("CRYPTO_PLATFORM_SYMBOLS", "btc-usdt", "symbols (env CRYPTO_PLATFORM_SYMBOLS)"),
        ("CRYPTO_PLATFORM_SYMBOLS", "", "at least one symbol"),
        ("CRYPTO_PLATFORM_KAFKA_PORT", "80", "kafka_port (env CRYPTO_PLATFORM_KAFKA_PORT)"),
        ("KAFKA_BOOTSTRAP_SERVERS", "no-port-here", "not host:port pairs"),
        ("CRYPTO_PLATFORM_BINANCE_WS_URL", "http://x", "must start with ws://"),
        ("CRYPTO_PLATFORM_GRACE_SECONDS", "-1", "grace_seconds"),
        ("CRYPTO_PLATFORM_SYMBOSL", "btcusdt", "unknown environment variable"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError, match=None) as info:
        load_settings()
    assert expected in str(info.value)


def test_unknown_key_in_toml_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "crypto-platform.toml").write_text("symbls = ['btcusdt']\n")
    with pytest.raises(SettingsError, match="symbls: unknown setting"):
        load_settings()


def test_same_port_twice_is_rejected() -> None:
    with pytest.raises(SettingsError, match="must differ"):
        load_settings(kafka_port=9092, kafka_controller_port=9092)


def test_settings_are_typed() -> None:
    settings = Settings(data_dir="/tmp/x", grace_seconds="3")
    assert settings.data_dir == Path("/tmp/x")
    assert settings.grace_seconds == 3.0
