"""``crypto-platform spark``: the 1-minute analytics as a Spark Structured Streaming job.

``crypto-platform spark`` runs the job (local[2] unless ``--master`` names a cluster);
``crypto-platform spark fetch`` gets the Kafka connector jars and prints them as the
comma-separated list ``spark-submit --jars`` takes. Exit codes: 0 done or stopped, 1 the job
failed or could not start, 2 usage errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from crypto_platform.core.topics import TRADES_TOPIC
from crypto_platform.spark.options import SINKS


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group(invoke_without_command=True)
@click.option("--master", default=None, help="Spark master URL, e.g. spark://host:7077. [local[2]]")
@click.option(
    "--lateness",
    type=click.FloatRange(0, 3600),
    default=None,
    help="Seconds a trade may arrive after newer ones (default: the grace_seconds setting).",
)
@click.option("--sink", type=click.Choice(SINKS), default="duckdb", show_default=True)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="DuckDB file (default: duckdb_path) or Parquet folder (<data_dir>/spark/...).",
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Checkpoint folder (default: <data_dir>/spark/checkpoints/<sink>).",
)
@click.option("--topic", default=TRADES_TOPIC, show_default=True)
@click.option("--available-now", is_flag=True, help="Process what the topic holds now, then stop.")
@click.option(
    "--trigger-seconds",
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Micro-batch interval while running continuously.",
)
@click.option(
    "--max-offsets-per-trigger",
    type=click.IntRange(1),
    default=None,
    help="At most this many Kafka records per micro-batch.",
)
@click.pass_context
def spark(
    ctx: click.Context,
    master: str | None,
    lateness: float | None,
    sink: str,
    output: Path | None,
    checkpoint: Path | None,
    topic: str,
    available_now: bool,
    trigger_seconds: float,
    max_offsets_per_trigger: int | None,
) -> None:
    """Run the 1-minute analytics on Spark over the trades topic (Ctrl-C stops it).

    Rows for (symbol, minute) are written once the watermark (newest trade time minus the
    lateness) passes the minute's end; the checkpoint lets a restart resume without loss.
    """
    if ctx.invoked_subcommand is not None:
        return
    from crypto_platform.kafka.jars import ToolMissingError
    from crypto_platform.spark.connector import ConnectorVersionError, check_pyspark_version
    from crypto_platform.spark.options import options_from_settings
    from crypto_platform.spark.runner import launched_by_spark_submit, run_job

    try:
        if not launched_by_spark_submit():  # spark-submit brings its own Spark and jars
            check_pyspark_version()
    except ConnectorVersionError as exc:
        _fail(str(exc))
    from pyspark.errors import PySparkException

    settings = ctx.obj["settings"]
    options = options_from_settings(
        settings,
        sink=sink,  # type: ignore[arg-type]
        lateness_seconds=lateness,
        output=output,
        checkpoint_dir=checkpoint,
        topic=topic,
        available_now=available_now,
        trigger_seconds=trigger_seconds,
        max_offsets_per_trigger=max_offsets_per_trigger,
    )
    try:
        run_job(options, master=master, cache_dir=settings.cache_dir)
    except (ToolMissingError, PySparkException, RuntimeError) as exc:  # RuntimeError: Maven
        _fail(str(exc))


@spark.command("fetch")
@click.pass_context
def spark_fetch(ctx: click.Context) -> None:
    """Fetch the Kafka connector jars into the cache; print them for `spark-submit --jars`."""
    from crypto_platform.kafka.jars import ToolMissingError
    from crypto_platform.spark.connector import ensure_connector_jars

    try:
        jars = ensure_connector_jars(ctx.obj["settings"].cache_dir)
    except (ToolMissingError, RuntimeError) as exc:
        _fail(str(exc))
    click.echo(",".join(str(jar) for jar in jars))
