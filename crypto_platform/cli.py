"""The ``crypto-platform`` command. Only this module decides exit codes and configures logging."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import click

from crypto_platform.dashboard.cli import dashboard
from crypto_platform.ingest.cli import exchange_sim, ingest
from crypto_platform.ingest_archive.cli import import_archive
from crypto_platform.query.cli import query
from crypto_platform.settings import Settings, SettingsError, load_settings
from crypto_platform.spark.cli import spark

log = logging.getLogger("crypto_platform")


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Live Binance trades through Kafka into per-minute analytics (Dagster, Parquet, DuckDB)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        ctx.obj = {"settings": load_settings()}
    except SettingsError as exc:
        _fail(str(exc), code=2)


main.add_command(query)
main.add_command(dashboard)
main.add_command(spark)
main.add_command(ingest)
main.add_command(exchange_sim)
main.add_command(import_archive)


@main.group()
def kafka() -> None:
    """Manage the local Kafka broker (not used when KAFKA_BOOTSTRAP_SERVERS is set)."""


def _local_broker(ctx: click.Context):
    from crypto_platform.kafka.broker import broker_from_settings

    settings = _settings(ctx)
    if not settings.uses_local_broker:
        click.echo(
            f"KAFKA_BOOTSTRAP_SERVERS is set ({settings.bootstrap_servers}): "
            "using that cluster, no local broker is managed."
        )
        sys.exit(0)
    return broker_from_settings(settings)


@kafka.command("fetch")
@click.pass_context
def kafka_fetch(ctx: click.Context) -> None:
    """Fetch Kafka's jars from Maven Central into the cache (skipped when already there)."""
    from crypto_platform.kafka.jars import ToolMissingError, ensure_kafka_jars

    try:
        path = ensure_kafka_jars(_settings(ctx).cache_dir)
    except (ToolMissingError, RuntimeError) as exc:
        _fail(str(exc))
    click.echo(f"Kafka jars in {path}")


@kafka.command("start")
@click.pass_context
def kafka_start(ctx: click.Context) -> None:
    """Start the local broker and create the platform's topics (idempotent)."""
    from crypto_platform.kafka.broker import BrokerError
    from crypto_platform.kafka.jars import ToolMissingError

    broker = _local_broker(ctx)
    try:
        started = broker.start()
    except (BrokerError, ToolMissingError, RuntimeError) as exc:
        _fail(str(exc))
    verb = "started" if started else "already running"
    click.echo(
        f"Kafka broker {verb} on {broker.bootstrap_servers} (pid {broker.pid()}); "
        f"logs in {broker.log_dir}"
    )


@kafka.command("stop")
@click.pass_context
def kafka_stop(ctx: click.Context) -> None:
    """Stop the local broker (controlled shutdown)."""
    broker = _local_broker(ctx)
    click.echo("Kafka broker stopped" if broker.stop() else "Kafka broker was not running")


@kafka.command("status")
@click.pass_context
def kafka_status(ctx: click.Context) -> None:
    """Ask the broker for metadata; exit 0 if it answers, 3 if it does not."""
    from crypto_platform.kafka import admin

    settings = _settings(ctx)
    if settings.uses_local_broker:
        status = _local_broker(ctx).status()
        running, detail, topics = status.running, status.detail, status.topics
    else:
        try:
            topics = admin.cluster_topics(settings.bootstrap_servers, timeout_s=10.0)
            running, detail = True, "running (external cluster)"
        except Exception as exc:  # noqa: BLE001 - report any failure as not answering
            running, detail, topics = False, f"not answering: {exc}", {}
    click.echo(f"Kafka at {settings.bootstrap_servers}: {detail}")
    for name, partitions in sorted(topics.items()):
        if not name.startswith("__"):
            click.echo(f"  topic {name}: {partitions} partition(s)")
    sys.exit(0 if running else 3)


@main.command("dagster-home")
@click.pass_context
def dagster_home(ctx: click.Context) -> None:
    """Create the DAGSTER_HOME used by `make run` and print its path."""
    from crypto_platform.dagster_home import ensure_dagster_home

    click.echo(ensure_dagster_home(_settings(ctx).data_dir / "dagster_home"))


@main.command("run")
@click.option("--dagster-port", default=3000, show_default=True, help="Dagster UI port.")
@click.option(
    "--source",
    type=click.Choice(["live", "sim"]),
    default="live",
    show_default=True,
    help="Where trades come from: live Binance, or the local exchange simulator (offline).",
)
@click.pass_context
def run(ctx: click.Context, dagster_port: int, source: str) -> None:
    """Start the whole platform (Kafka if needed, ingestion, Dagster); Ctrl-C stops it all."""
    from crypto_platform.dagster_home import ensure_dagster_home
    from crypto_platform.ingest.cli import spawn_ingestion
    from crypto_platform.kafka.broker import BrokerError, broker_from_settings
    from crypto_platform.kafka.jars import ToolMissingError
    from crypto_platform.runner import Supervisor

    settings = _settings(ctx)
    supervisor = Supervisor()
    # Ctrl-C during start-up too, even where SIGINT was inherited as ignored (see Supervisor).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if settings.uses_local_broker:
            broker = broker_from_settings(settings)
            if broker.start():
                supervisor.on_stop("Kafka broker", broker.stop)
            log.info("Kafka broker on %s", broker.bootstrap_servers)
        spawn_ingestion(supervisor, source)
        env = dict(os.environ)
        env["DAGSTER_HOME"] = str(ensure_dagster_home(settings.data_dir / "dagster_home"))
        workspace = Path("workspace.yaml").resolve()
        supervisor.spawn(
            "dagster dev",
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-w",
                str(workspace),
                "-h",
                "127.0.0.1",
                "-p",
                str(dagster_port),
            ],
            env=env,
        )
        supervisor.spawn("dashboard", [sys.executable, "-m", "crypto_platform", "dashboard"])
        click.echo(f"Dashboard: http://{settings.dashboard_host}:{settings.dashboard_port}")
        click.echo(f"Dagster UI: http://127.0.0.1:{dagster_port}  (Ctrl-C stops the platform)")
        code = supervisor.wait()
    except KeyboardInterrupt:
        code = 130  # interrupted while starting: tear down what did start
    except (BrokerError, ToolMissingError, RuntimeError) as exc:
        supervisor.shutdown()
        _fail(str(exc))
    supervisor.shutdown()
    sys.exit(code)
