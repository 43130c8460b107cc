"""``crypto-platform query``: the seed's questions and free SQL, read-only, from a terminal.

Exit codes: 0 answered, 1 bad input (unknown symbol, bad SQL, bad option value, no database),
3 the database stayed locked by a writer for longer than ``--wait`` seconds, 2 usage errors.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from crypto_platform.query.output import FORMATS

_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format (default: table).",
)
_symbol_option = click.option(
    "--symbol",
    "-s",
    "symbols",
    multiple=True,
    help="Only this symbol (repeat, or comma-separate, for several; default: all).",
)


def _symbols(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part for value in values for part in value.split(",") if part.strip())


def _answer(ctx: click.Context, fmt: str | None, ask: Callable) -> None:
    """Open the database read-only, ask, print; map failures to a message and an exit code."""
    from crypto_platform.query.database import DatabaseBusyError, QueryError, reading
    from crypto_platform.query.output import render

    settings = ctx.obj["settings"]
    options = ctx.find_object(dict)
    path = Path(settings.resolved_duckdb_path)
    try:
        with reading(path, wait_s=options.get("wait", 5.0)) as con:
            answer = ask(con)
    except DatabaseBusyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
    except QueryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(render(answer, fmt or options.get("fmt") or "table"), nl=False)


@click.group(invoke_without_command=True)
@click.option("--sql", default=None, help="Run this SQL (read-only) instead of a subcommand.")
@_format_option
@click.option(
    "--wait",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 600),
    help="Seconds to wait while the pipeline holds the database's write lock.",
)
@click.pass_context
def query(ctx: click.Context, sql: str | None, fmt: str | None, wait: float) -> None:
    """Ask the analytics database (read-only): recent, trends, volatile, or --sql.

    \b
    Examples:
      crypto-platform query recent --symbol btcusdt --last 5
      crypto-platform query trends --since 1h --format csv
      crypto-platform query volatile --above 50 --format json
      crypto-platform query --sql "SELECT symbol, count(*) FROM trade_analytics_1m GROUP BY 1"
    """
    ctx.obj.update({"fmt": fmt, "wait": wait})
    if sql is not None and ctx.invoked_subcommand is not None:
        raise click.UsageError("use either --sql or a subcommand, not both")
    if sql is not None:
        from crypto_platform.query.questions import run_sql

        _answer(ctx, fmt, lambda con: run_sql(con, sql))
    elif ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(2)


@query.command()
@_symbol_option
@click.option("--last", "-n", default=10, show_default=True, help="Minutes per symbol.")
@_format_option
@click.pass_context
def recent(ctx: click.Context, symbols: tuple[str, ...], last: int, fmt: str | None) -> None:
    """The latest N one-minute windows of each symbol, newest first."""
    from crypto_platform.query import questions

    _answer(ctx, fmt, lambda con: questions.recent(con, _symbols(symbols), last))


@query.command()
@click.option("--since", required=True, help="1h, 30m, 2d, 1h30m ago, or a UTC time.")
@_symbol_option
@_format_option
@click.pass_context
def trends(ctx: click.Context, since: str, symbols: tuple[str, ...], fmt: str | None) -> None:
    """Every minute since a time: average price, change and volatility, oldest first."""
    from crypto_platform.query import questions

    def ask(con):
        return questions.trends(con, _symbols(symbols), questions.parse_since(since))

    _answer(ctx, fmt, ask)


@query.command()
@click.option("--above", required=True, type=float, help="Volatility threshold (price units).")
@click.option("--since", default=None, help="Only minutes since then (1h, 2d, or a UTC time).")
@_symbol_option
@_format_option
@click.pass_context
def volatile(
    ctx: click.Context, above: float, since: str | None, symbols: tuple[str, ...], fmt: str | None
) -> None:
    """The minutes whose volatility (std. dev. of prices) is above a threshold, newest first."""
    from crypto_platform.query import questions

    def ask(con):
        start = questions.parse_since(since) if since else None
        return questions.volatile(con, _symbols(symbols), above, start)

    _answer(ctx, fmt, ask)


@query.command()
@click.option("--since", default="2h", show_default=True, help="1h, 30m, 2d ago, or a UTC time.")
@_symbol_option
@_format_option
@click.pass_context
def indicators(ctx: click.Context, since: str, symbols: tuple[str, ...], fmt: str | None) -> None:
    """Moving averages (SMA 5/15/60, EMA 12/26, MACD), 60-minute volatility and VWAP, and the
    up/down/flat trend of every minute since a time (table trade_trends_1m)."""
    from crypto_platform.query import questions

    def ask(con):
        return questions.indicators(con, _symbols(symbols), questions.parse_since(since))

    _answer(ctx, fmt, ask)


@query.command()
@click.option(
    "--interval", type=click.Choice(["1h", "1d"]), default="1h", show_default=True,
    help="Hourly or daily rows.",
)  # fmt: skip
@click.option("--since", default="2d", show_default=True, help="1h, 30m, 2d ago, or a UTC time.")
@_symbol_option
@_format_option
@click.pass_context
def rollup(
    ctx: click.Context, interval: str, since: str, symbols: tuple[str, ...], fmt: str | None
) -> None:
    """Hourly or daily OHLC, VWAP, volatility and volume (trade_analytics_1h / _1d)."""
    from crypto_platform.query import questions

    def ask(con):
        return questions.rollups(con, interval, _symbols(symbols), questions.parse_since(since))

    _answer(ctx, fmt, ask)
