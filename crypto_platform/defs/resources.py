"""Dagster resources: each outside system wrapped once, configured from Settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from crypto_platform import warehouse
from crypto_platform.core.topics import PROGRESS_TOPIC, TRADES_TOPIC
from crypto_platform.kafka import reader


class KafkaResource(dg.ConfigurableResource):
    """Where the platform's Kafka cluster is; clients come from ``crypto_platform.kafka``."""

    bootstrap_servers: str
    trades_topic: str = TRADES_TOPIC
    progress_topic: str = PROGRESS_TOPIC
    lateness_seconds: float = 60.0

    @property
    def lateness_ms(self) -> int:
        return round(self.lateness_seconds * 1000)

    def read_trades(
        self,
        start_ms: int,
        end_ms: int,
        read_until_ms: int | None,
        min_end_offsets: dict[int, int],
    ) -> reader.TradeRead:
        """Trades of ``[start_ms, end_ms)``; every partition is read past the later of the
        range's end and ``read_until_ms``, plus the lateness (see :mod:`..kafka.reader`)."""
        stop_after = max(end_ms, read_until_ms or 0) + self.lateness_ms
        return reader.read_trades(
            self.bootstrap_servers, self.trades_topic, start_ms, end_ms, stop_after, min_end_offsets
        )

    def read_progress(self, next_offsets: dict[int, int] | None) -> reader.ProgressRead:
        return reader.read_progress(self.bootstrap_servers, self.progress_topic, next_offsets)


class ParquetLakeResource(dg.ConfigurableResource):
    """The Parquet lake's root folder (layout in :mod:`crypto_platform.core.lake`)."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource, opening the file with the platform's bounded lock retry.

    ``get_connection`` is for writers (held for one short transaction); ``read_connection``
    opens read-only, so checks never keep a writer out for long.
    """

    write_lock_timeout_seconds: float = warehouse.WRITE_LOCK_TIMEOUT_S
    read_lock_timeout_seconds: float = warehouse.READ_LOCK_TIMEOUT_S

    @property
    def path(self) -> Path:
        return Path(self.database)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connection(self.path, timeout_s=self.write_lock_timeout_seconds) as conn:
            yield conn

    @contextmanager
    def read_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connection(
            self.path, read_only=True, timeout_s=self.read_lock_timeout_seconds
        ) as conn:
            yield conn
