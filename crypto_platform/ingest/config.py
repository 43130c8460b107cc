"""The ingestion service's configuration: the settings it needs, and test-friendly overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

from crypto_platform.core.topics import DLQ_TOPIC, PROGRESS_TOPIC, TRADES_TOPIC
from crypto_platform.settings import Settings


@dataclass(frozen=True)
class IngestConfig:
    bootstrap_servers: str
    symbols: list[str]  # upper case
    ws_url: str
    rest_url: str
    endpoint: str = "combined"
    max_streams: int = 1024
    silence_s: float = 60.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    rollover_s: float = 23 * 3600.0
    delivery_timeout_s: float = 300.0
    stats_interval_s: float = 10.0
    progress_interval_s: float = 1.0
    clock_margin_ms: int = 1000
    gap_give_up_s: float = 600.0
    trades_topic: str = TRADES_TOPIC
    dlq_topic: str = DLQ_TOPIC
    progress_topic: str = PROGRESS_TOPIC
    stats_json: TextIO | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> IngestConfig:
        values: dict[str, Any] = {
            "bootstrap_servers": settings.bootstrap_servers,
            "symbols": settings.symbols_upper,
            "ws_url": settings.binance_ws_url,
            "rest_url": settings.binance_rest_url,
            "endpoint": settings.ingest_ws_endpoint,
            "max_streams": settings.ingest_max_streams_per_connection,
            "silence_s": settings.ingest_silence_timeout_seconds,
            "reconnect_min_s": settings.ingest_reconnect_min_seconds,
            "reconnect_max_s": settings.ingest_reconnect_max_seconds,
            "rollover_s": settings.ingest_rollover_seconds,
            "delivery_timeout_s": settings.ingest_delivery_timeout_seconds,
            "stats_interval_s": settings.ingest_stats_interval_seconds,
            "progress_interval_s": settings.ingest_progress_interval_seconds,
            "clock_margin_ms": settings.ingest_clock_margin_ms,
            "gap_give_up_s": settings.ingest_gap_give_up_seconds,
        }
        values.update(overrides)
        return cls(**values)
