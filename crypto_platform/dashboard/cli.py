"""``crypto-platform dashboard``: serve the live page until Ctrl-C."""

from __future__ import annotations

import contextlib
import socket
import sys

import click


def _listen(host: str, port: int) -> socket.socket:
    """Bind first, so a taken port is a clear error before anything is announced."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@click.command()
@click.option("--host", default=None, help="Bind address (default: setting dashboard_host).")
@click.option("--port", default=None, type=int, help="Port (default: setting dashboard_port).")
@click.pass_context
def dashboard(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the live analytics page (read-only) on http://127.0.0.1:8050 by default."""
    import uvicorn

    from crypto_platform.dashboard.app import create_app

    settings = ctx.obj["settings"]
    host = host or settings.dashboard_host
    port = port or settings.dashboard_port
    try:
        sock = _listen(host, port)
    except OSError as exc:
        click.echo(f"error: the dashboard cannot listen on {host}:{port}: {exc.strerror}", err=True)
        sys.exit(1)
    app = create_app(settings.resolved_duckdb_path, settings.dashboard_refresh_seconds)
    click.echo(f"Dashboard: http://{host}:{port}  (reads {settings.resolved_duckdb_path})")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
