"""What one run of the Spark job does, with defaults from the platform's settings.

Kept free of pyspark so the CLI can build and check the options before Spark is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from crypto_platform.core.topics import TRADES_TOPIC
from crypto_platform.settings import Settings

Sink = Literal["duckdb", "parquet"]
SINKS: tuple[Sink, ...] = ("duckdb", "parquet")


@dataclass(frozen=True)
class JobOptions:
    """The stream to read, how late a trade may be, where results and state go."""

    bootstrap_servers: str
    checkpoint_dir: Path
    lateness_seconds: float
    sink: Sink = "duckdb"
    output: Path = Path("data/analytics.duckdb")
    topic: str = TRADES_TOPIC
    available_now: bool = False
    trigger_seconds: float = 5.0
    max_offsets_per_trigger: int | None = None
    starting_offsets: str = "earliest"


def spark_dir(settings: Settings) -> Path:
    """The job's own files (checkpoints, Parquet output) under the data folder."""
    return settings.data_dir / "spark"


def options_from_settings(
    settings: Settings,
    sink: Sink = "duckdb",
    lateness_seconds: float | None = None,
    output: Path | None = None,
    checkpoint_dir: Path | None = None,
    **overrides: object,
) -> JobOptions:
    """Options for a run: lateness defaults to ``grace_seconds``, the same as the Dagster path.

    The DuckDB sink writes the platform's analytics database; the Parquet sink writes
    ``<data_dir>/spark/trade_analytics_1m``. Each sink has its own checkpoint, since a
    checkpoint records what has been written where.
    """
    if sink not in SINKS:
        raise ValueError(f"unknown sink {sink!r}; choose one of {', '.join(SINKS)}")
    if output is None:
        output = (
            settings.resolved_duckdb_path
            if sink == "duckdb"
            else spark_dir(settings) / "trade_analytics_1m"
        )
    return JobOptions(
        bootstrap_servers=settings.bootstrap_servers,
        checkpoint_dir=(checkpoint_dir or spark_dir(settings) / "checkpoints" / sink).resolve(),
        lateness_seconds=settings.grace_seconds if lateness_seconds is None else lateness_seconds,
        sink=sink,
        output=output.resolve(),
        **overrides,  # type: ignore[arg-type]
    )
