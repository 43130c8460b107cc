"""``crypto-platform ingest`` and ``crypto-platform exchange-sim``; exit codes are decided here.

Exit codes: 0 after a clean stop (SIGINT/SIGTERM: connections closed, Kafka flushed), 1 when
Kafka did not answer at start or trades could not be delivered within the delivery bound, or
the topic could not be read, 2 for bad options or settings.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, TextIO

import click

from crypto_platform.settings import Settings, SettingsError, load_settings

log = logging.getLogger("crypto_platform.ingest")

SIM_START_TIMEOUT_S = 20.0
BROKER_ATTEMPT_S = 5.0  # one metadata request while waiting for Kafka at start
BROKER_RETRY_S = 0.5


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _on_stop_signals(callback: Any) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _s, _f: callback())


def urls_from_base(base_url: str) -> tuple[str, str]:
    """``http://127.0.0.1:8765`` (or ``ws://...``) -> (WebSocket base URL, REST base URL)."""
    base = base_url.rstrip("/")
    for web, socket in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(web):
            return socket + base[len(web) :], base
        if base.startswith(socket):
            return base, web + base[len(socket) :]
    raise click.BadParameter(f"{base_url!r} must start with http://, https://, ws:// or wss://")


@click.command("ingest")
@click.option("--symbols", help="Comma-separated, e.g. btcusdt,ethusdt (default: the settings).")
@click.option(
    "--base-url",
    help="A Binance-compatible server for both WebSocket and REST, e.g. the exchange simulator "
    "at http://127.0.0.1:8765 (default: Binance, from the settings).",
)
@click.option(
    "--stats-json",
    metavar="FILE",
    type=click.File("a", encoding="utf-8", lazy=False),
    help="Also append each status to FILE as one JSON line ('-' = stdout).",
)
@click.pass_context
def ingest(
    ctx: click.Context, symbols: str | None, base_url: str | None, stats_json: TextIO | None
) -> None:
    """Stream Binance trades into Kafka (topic `trades`) until SIGINT/SIGTERM, losing none."""
    from crypto_platform.ingest.service import IngestConfig, IngestError, IngestService
    from crypto_platform.kafka.producer import DeliveryError
    from crypto_platform.kafka.tail import TailError

    settings: Settings = ctx.obj["settings"]
    if symbols:
        try:
            settings = load_settings(symbols=symbols)
        except SettingsError as exc:
            _fail(str(exc), code=2)
    overrides: dict[str, Any] = {"stats_json": stats_json}
    if base_url:
        overrides["ws_url"], overrides["rest_url"] = urls_from_base(base_url)
    try:
        _wait_for_broker(settings)
    except KeyboardInterrupt:  # Ctrl-C before anything was produced: nothing to flush
        sys.exit(0)
    service = IngestService(IngestConfig.from_settings(settings, **overrides))
    _on_stop_signals(service.request_stop)
    try:
        service.run()
    except (IngestError, DeliveryError, TailError) as exc:
        _fail(str(exc))
    sys.exit(0)


def _wait_for_broker(settings: Settings) -> None:
    """Wait until Kafka answers a metadata request, at most the delivery bound: a broker that
    is briefly away is waited for, one that is not there is a clear error (exit 1)."""
    from crypto_platform.kafka import admin

    bootstrap_servers = settings.bootstrap_servers
    timeout_s = settings.ingest_delivery_timeout_seconds
    hint = (
        "Start the local broker with `crypto-platform kafka start`."
        if settings.uses_local_broker
        else "Check KAFKA_BOOTSTRAP_SERVERS and that the cluster is up."
    )
    deadline = time.monotonic() + timeout_s
    warned = False
    while True:
        attempt_s = max(1.0, min(BROKER_ATTEMPT_S, deadline - time.monotonic()))
        try:
            admin.cluster_topics(bootstrap_servers, timeout_s=attempt_s)
            return
        except Exception as exc:  # noqa: BLE001 - any failure means the broker is not answering
            if time.monotonic() >= deadline:
                _fail(
                    f"Kafka at {bootstrap_servers} did not answer within {timeout_s:.0f}s "
                    f"(INGEST_DELIVERY_TIMEOUT_SECONDS; {exc}). {hint}"
                )
            if not warned:
                log.warning(
                    "Kafka at %s is not answering; waiting up to %.0fs for it",
                    bootstrap_servers,
                    deadline - time.monotonic(),
                )
                warned = True
            time.sleep(min(BROKER_RETRY_S, max(0.0, deadline - time.monotonic())))


def _speed(value: str) -> float | None:
    if value in ("max", "fast", "asap"):
        return None
    try:
        speed = float(value.rstrip("xX"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: use 1 (real time), 10 (10x) or max") from None
    if speed <= 0:
        raise click.BadParameter("must be positive")
    return speed


@click.command("exchange-sim")
@click.option("--port", default=0, show_default=True, help="Port on 127.0.0.1 (0 = any free).")
@click.option("--symbols", help="Simulated symbols (default: the settings).")
@click.option("--seed", default=7, show_default=True, help="Seed of the simulation.")
@click.option("--rate-scale", default=1.0, show_default=True, help="Multiplies trade rates.")
@click.option(
    "--duration", type=float, help="Seconds of trade time to simulate (default: forever)."
)
@click.option(
    "--replay",
    "replay_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay a recording instead (Binance trades CSV/zip, or JSON lines); repeatable.",
)
@click.option("--speed", default="1", show_default=True, help="1 = real time, 10 = 10x, max.")
@click.option("--drop-after-messages", type=int, help="Fault: cut each connection after N frames.")
@click.option("--drop-after-seconds", type=float, help="Fault: cut each connection after T s.")
@click.option("--stall-after-messages", type=int, help="Fault: go silent after N frames.")
@click.option("--stall-seconds", default=30.0, show_default=True, help="How long a stall lasts.")
@click.option("--max-drops", type=int, help="Stop injecting drops/stalls after this many.")
@click.option("--malformed-every", type=int, help="Fault: a malformed frame after every N.")
@click.option("--ping-interval", default=20.0, show_default=True, help="Seconds between pings.")
@click.option(
    "--wait-for-clients",
    type=int,
    help="Start the feed once this many connections are open (default: 1 for replays and "
    "--speed max, 0 for a real-time simulation).",
)
@click.pass_context
def exchange_sim(ctx: click.Context, **options: Any) -> None:
    """Serve Binance's trade streams and REST trades on 127.0.0.1 (Ctrl-C stops)."""
    from crypto_platform.ingest.exchange_sim import ExchangeSimulator, Faults
    from crypto_platform.ingest.replay import ReplayFileError

    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per request is noise
    try:
        source = _sim_source(ctx.obj["settings"], options)
    except (ReplayFileError, ValueError, OSError) as exc:
        _fail(str(exc), code=2)
    faults = Faults(
        drop_after_messages=options["drop_after_messages"],
        drop_after_seconds=options["drop_after_seconds"],
        stall_after_messages=options["stall_after_messages"],
        stall_seconds=options["stall_seconds"],
        max_drops=options["max_drops"],
        malformed_every=options["malformed_every"],
    )
    paced_simulation = not options["replay_paths"] and _speed(options["speed"]) is not None
    wait = (
        options["wait_for_clients"]
        if options["wait_for_clients"] is not None
        else (0 if paced_simulation else 1)
    )
    simulator = ExchangeSimulator(
        source, faults, options["port"], options["ping_interval"], wait_for_clients=wait
    )
    try:
        simulator.start()
    except RuntimeError as exc:
        _fail(str(exc))
    streams = "/".join(f"{s.lower()}@trade" for s in source.symbols)
    click.echo(f"exchange simulator on {simulator.base_url} (REST), symbols {source.symbols}")
    click.echo(f"  streams: {simulator.ws_url}/stream?streams={streams}", nl=True)
    sys.stdout.flush()
    _on_stop_signals(simulator.stop)
    simulator.serve_forever()
    log.info("exchange simulator stopped: %s", simulator.stats)
    sys.exit(0)


def _sim_source(settings: Settings, options: dict[str, Any]) -> Any:
    from crypto_platform.core.simulation import MarketSimulation
    from crypto_platform.ingest.replay import load_recordings
    from crypto_platform.ingest.sim_sources import ReplaySource, SimulatedSource, wall_ms

    speed = _speed(options["speed"])
    if options["replay_paths"]:
        return ReplaySource(load_recordings(list(options["replay_paths"])), speed)
    symbols = options["symbols"].split(",") if options["symbols"] else settings.symbols
    start = wall_ms()
    simulation = MarketSimulation(
        [s.strip() for s in symbols if s.strip()], options["seed"], start, options["rate_scale"]
    )
    end = None if options["duration"] is None else start + int(options["duration"] * 1000)
    return SimulatedSource(simulation, speed, end)


def spawn_ingestion(supervisor: Any, source: str) -> None:
    """For ``run``: the ingestion service, after the exchange simulator when ``source='sim'``."""
    from crypto_platform.kafka.broker import free_port

    command = [sys.executable, "-m", "crypto_platform"]
    if source == "sim":
        port = free_port()
        supervisor.spawn("exchange simulator", [*command, "exchange-sim", "--port", str(port)])
        _wait_for_http(f"http://127.0.0.1:{port}/api/v3/ping", SIM_START_TIMEOUT_S)
        supervisor.spawn(
            "ingestion", [*command, "ingest", "--base-url", f"http://127.0.0.1:{port}"]
        )
    else:
        supervisor.spawn("ingestion", [*command, "ingest"])


def _wait_for_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f}s")
