"""``crypto-platform import-archive PATH...``: Binance trade dumps into the lake and analytics.

Exit codes: 0 imported, 1 a file is bad (named with its row; nothing was written) or a rebuild
run failed (the raw trades are written; the message says what to re-run), 2 usage errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


class _Bars:
    """tqdm bars on stderr, one per phase of the import."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None

    def start(self, phase: str, total: int, unit: str) -> None:
        from tqdm import tqdm

        self.finish()
        self._bar = tqdm(
            total=total,
            desc=phase,
            unit=unit,
            unit_scale=unit == "B",
            disable=not self.enabled,
            file=sys.stderr,
        )

    def advance(self, amount: int) -> None:
        if self._bar is not None:
            self._bar.update(amount)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _instance(settings):
    """The instance ``make run`` uses (``DAGSTER_HOME``, else ``<data_dir>/dagster_home``)."""
    import os

    import dagster as dg

    from crypto_platform.dagster_home import ensure_dagster_home

    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(ensure_dagster_home(settings.data_dir / "dagster_home"))
    return dg.DagsterInstance.get()


@click.command("import-archive")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--symbol", default=None, help="Symbol of the trades (default: from the file name).")
@click.option(
    "--no-analytics", is_flag=True, help="Only write the raw trades; rebuild nothing in Dagster."
)
@click.option("--progress/--no-progress", default=True, help="Progress bars on stderr.")
@click.pass_context
def import_archive(
    ctx: click.Context, paths: tuple[Path, ...], symbol: str | None, no_analytics: bool, progress
) -> None:
    """Import Binance's daily trade dumps (data.binance.vision spot trades, CSV or zip, ms or µs
    times) into raw_trades, then rebuild trade_analytics_1m, trends and roll-ups over their
    hours with the Dagster assets. Every file is checked in full first; importing the same day
    again changes nothing.

    \b
    Example:
      crypto-platform import-archive BTCUSDT-trades-2024-12-31.zip BTCUSDT-trades-2025-01-01.zip
    """
    import logging

    from crypto_platform.core.archive import ArchiveError
    from crypto_platform.definitions import build_definitions
    from crypto_platform.defs.partitions import build_partitions
    from crypto_platform.ingest_archive.importer import ImportFailedError, import_archives

    logging.getLogger("alembic").setLevel(logging.WARNING)  # the instance's schema check
    settings = ctx.obj["settings"]
    bars = _Bars(progress)
    try:
        report = import_archives(
            list(paths),
            settings.resolved_lake_dir.resolve(),
            build_definitions(settings),
            _instance(settings),
            build_partitions(settings).start_ms,
            symbol=symbol,
            progress=bars,
            rebuild_analytics=not no_analytics,
        )
    except (ArchiveError, ImportFailedError) as exc:
        bars.finish()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for dump in report.dumps:
        click.echo(
            f"{dump.symbol}: {dump.rows} trades in {len(dump.files)} minute files "
            f"({dump.duplicates} duplicates dropped, {len(dump.removed)} stale files removed)"
        )
    click.echo(f"{len(report.hours)} hours; Dagster runs: {', '.join(report.run_ids) or 'none'}")
