"""Dagster resources: each outside system wrapped once, configured from Settings."""

from __future__ import annotations

import dagster as dg


class KafkaResource(dg.ConfigurableResource):
    """Where the platform's Kafka cluster is; clients come from ``crypto_platform.kafka``."""

    bootstrap_servers: str
