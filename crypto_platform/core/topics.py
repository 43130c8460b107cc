"""Kafka topic names and their layout, shared by ingestion, Dagster and the Spark job."""

from __future__ import annotations

TRADES_TOPIC = "trades"
"""Every trade as Binance sent it: key = symbol, message timestamp = trade time ``T``."""

DLQ_TOPIC = "trades.dlq"
"""Frames that failed validation, with a ``reason`` header; nothing is dropped silently."""

PROGRESS_TOPIC = "trades.progress"
"""Ingestion's progress marks and late-trade notices (see :mod:`crypto_platform.core.progress`)."""

RECEIVED_AT_HEADER = "received_at_ms"
"""Header on each trade message: local receive time, epoch milliseconds, as ASCII digits."""

REASON_HEADER = "reason"
"""Header on each dead-letter message: why the frame was rejected."""
