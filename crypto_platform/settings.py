"""The platform's settings, in one typed place.

Values come from, in order of precedence: keyword arguments (tests), environment variables with
the ``CRYPTO_PLATFORM_`` prefix, a TOML file (``crypto-platform.toml`` in the working directory,
or the file named by ``CRYPTO_PLATFORM_CONFIG``), then the defaults below. Users with their own
Kafka cluster set ``KAFKA_BOOTSTRAP_SERVERS`` (or ``CRYPTO_PLATFORM_KAFKA_BOOTSTRAP_SERVERS``) and
the platform starts no broker of its own.

Bad values fail at start with :class:`SettingsError`, whose message names the setting, the
environment variable that sets it and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from crypto_platform.core.alerts import DEFAULT_RULES as DEFAULT_ALERT_RULES
from crypto_platform.core.alerts import AlertRule

ENV_PREFIX = "CRYPTO_PLATFORM_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"
DEFAULT_CONFIG_FILE = "crypto-platform.toml"
DEFAULT_SYMBOLS = ("btcusdt", "ethusdt", "bnbusdt", "solusdt", "xrpusdt")
_SYMBOL_RE = re.compile(r"^[a-z0-9]{2,20}$")
_BOOTSTRAP_RE = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


class SettingsError(ValueError):
    """A setting has a value the platform cannot run with; the message says what to fix."""


def _config_file() -> Path:
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))


class Settings(BaseSettings):
    """Everything that differs between a laptop, CI and a user's own deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
    )

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "kafka_bootstrap_servers",
            f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS",
            "KAFKA_BOOTSTRAP_SERVERS",
        ),
        description="host:port[,host:port] of an existing cluster; unset = a local broker.",
    )
    kafka_port: int = Field(9092, ge=1024, le=65535, description="Local broker's client port.")
    kafka_controller_port: int = Field(9093, ge=1024, le=65535)
    kafka_heap: str = Field("512m", pattern=r"^\d+[mMgG]$", description="Local broker's -Xmx.")
    trades_partitions: int = Field(6, ge=1, le=1000, description="Partitions of 'trades'.")
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    data_dir: Path = Path("data")
    cache_dir: Path = Field(Path(".cache"), description="Downloaded jars (git-ignored).")
    duckdb_path: Path | None = Field(None, description="Defaults to <data_dir>/analytics.duckdb.")
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_rest_url: str = "https://api.binance.com"
    grace_seconds: float = Field(5.0, ge=0, le=3600, description="Lateness allowed for trades.")
    lake_dir: Path | None = Field(None, description="Parquet lake; defaults to <data_dir>/lake.")
    partitions_start: date = Field(
        date(2025, 1, 1),
        description="First UTC day of the hourly partitions (keep it recent: ~8,800 per year).",
    )
    kafka_lateness_seconds: float = Field(
        60.0, ge=0, le=86400, description="Trade-time skew a Kafka read tolerates past its range."
    )
    sensor_interval_seconds: int = Field(
        3,
        ge=1,
        le=3600,
        description="Minimum seconds between minutes-sensor ticks (Dagster's daemon ticks at most "
        "every 5 s, so 3 means every daemon loop).",
    )

    dashboard_host: str = Field(
        "127.0.0.1", description="Dashboard bind address; the default serves this machine only."
    )
    dashboard_port: int = Field(8050, ge=1024, le=65535, description="Dashboard port.")
    dashboard_refresh_seconds: float = Field(
        5.0, ge=0.5, le=300, description="How often an open dashboard page polls for new minutes."
    )
    alert_rules: Annotated[list[AlertRule], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ALERT_RULES),
        description="Alert rules ([[alert_rules]] in TOML, a JSON list in the environment).",
    )
    alert_webhook_url: str | None = Field(None, description="POST each new alert here (JSON).")
    alert_webhook_timeout_seconds: float = Field(5.0, gt=0, le=60)
    alert_webhook_attempts: int = Field(3, ge=1, le=10, description="Tries per alert and run.")
    alert_webhook_max_age_minutes: int | None = Field(
        60, ge=1, description="Alerts on older minutes (backfills) are stored but not POSTed."
    )

    # --- ingestion service (crypto_platform/ingest; issue 3) ---------------------------------
    ingest_ws_endpoint: Literal["combined", "raw"] = Field(
        "combined",
        description="combined = /stream?streams=a@trade/b@trade (enveloped); raw = /ws/a@trade/...",
    )
    ingest_max_streams_per_connection: int = Field(
        1024, ge=1, le=1024, description="Streams per WebSocket connection (Binance allows 1024)."
    )
    ingest_silence_timeout_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="A connection with no frame (not even a ping) this long is dead.",
    )
    ingest_reconnect_min_seconds: float = Field(
        0.5, gt=0, le=600, description="First reconnect delay; doubles per failure (with jitter)."
    )
    ingest_reconnect_max_seconds: float = Field(
        30.0, gt=0, le=3600, description="Longest reconnect delay."
    )
    ingest_rollover_seconds: float = Field(
        23 * 3600.0,
        ge=1,
        le=24 * 3600.0,
        description="Open a new connection this old, before Binance cuts it at 24 h.",
    )
    ingest_delivery_timeout_seconds: float = Field(
        300.0,
        ge=5,
        le=24 * 3600.0,
        description=(
            "A trade Kafka has not acknowledged in this time stops the service (exit 1); at "
            "start, a broker that does not answer in this time does too."
        ),
    )
    ingest_stats_interval_seconds: float = Field(
        10.0, gt=0, le=3600, description="How often the per-symbol status line is written."
    )
    ingest_progress_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="How often progress marks go to trades.progress."
    )
    ingest_clock_margin_ms: int = Field(
        1000,
        ge=0,
        le=600_000,
        description="Progress marks stay this far behind the exchange clock.",
    )
    ingest_gap_give_up_seconds: float = Field(
        600.0,
        ge=1,
        le=7 * 86400.0,
        description="A gap REST cannot fill in this time is reported lost.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [str(v).strip().lower() for v in value]
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one symbol is needed, e.g. btcusdt,ethusdt")
        bad = [s for s in value if not _SYMBOL_RE.match(s)]
        if bad:
            raise ValueError(
                f"{bad} are not Binance symbols (2-20 letters or digits, e.g. btcusdt)"
            )
        if len(set(value)) != len(value):
            raise ValueError("a symbol is listed twice")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        servers = [s.strip() for s in value.split(",")]
        bad = [s for s in servers if not _BOOTSTRAP_RE.match(s)]
        if bad:
            raise ValueError(f"{bad} are not host:port pairs, e.g. 127.0.0.1:9092")
        return ",".join(servers)

    @field_validator("binance_ws_url")
    @classmethod
    def _check_ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value.rstrip("/")

    @field_validator("binance_rest_url")
    @classmethod
    def _check_rest_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("alert_webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("alert_rules", mode="before")
    @classmethod
    def _decode_alert_rules(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not a JSON list of rules: {exc}") from None
        return value

    @field_validator("alert_rules")
    @classmethod
    def _check_alert_rules(cls, value: list[AlertRule]) -> list[AlertRule]:
        names = [rule.name for rule in value]
        if len(set(names)) != len(names):
            raise ValueError(f"alert rule names must be unique, got {names}")
        return value

    @model_validator(mode="after")
    def _check_ports(self) -> Settings:
        if self.kafka_port == self.kafka_controller_port:
            raise ValueError("kafka_port and kafka_controller_port must differ")
        return self

    @model_validator(mode="after")
    def _check_ingest_backoff(self) -> Settings:
        if self.ingest_reconnect_min_seconds > self.ingest_reconnect_max_seconds:
            raise ValueError(
                "ingest_reconnect_min_seconds must not exceed ingest_reconnect_max_seconds"
            )
        return self

    @property
    def uses_local_broker(self) -> bool:
        """True when the platform must run its own broker (no external cluster configured)."""
        return self.kafka_bootstrap_servers is None

    @property
    def bootstrap_servers(self) -> str:
        """Where clients connect: the user's cluster, or the local broker on loopback."""
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def resolved_lake_dir(self) -> Path:
        return self.lake_dir or self.data_dir / "lake"

    @property
    def resolved_duckdb_path(self) -> Path:
        return self.duckdb_path or self.data_dir / "analytics.duckdb"

    @property
    def symbols_upper(self) -> list[str]:
        return [s.upper() for s in self.symbols]


def _describe(error: dict[str, Any]) -> str:
    field = str(error["loc"][0]) if error.get("loc") else "settings"
    env = f"{ENV_PREFIX}{field.upper()}" if field in Settings.model_fields else None
    where = f"{field} (env {env})" if env else field
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown setting; known ones are {', '.join(Settings.model_fields)}"
    return f"{where}: {message} (got {error.get('input')!r})"


def _unknown_env_vars() -> list[str]:
    """``CRYPTO_PLATFORM_*`` variables that name no setting: most likely typos."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | {CONFIG_ENV}
    return sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`; pydantic's errors become one readable :class:`SettingsError`."""
    unknown = _unknown_env_vars()
    if unknown:
        raise SettingsError(
            f"unknown environment variable(s) {', '.join(unknown)}; the settings are "
            + ", ".join(f"{ENV_PREFIX}{n.upper()}" for n in Settings.model_fields)
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
