"""Where the Spark job's micro-batches go: the DuckDB analytics table, or Parquet files.

Spark re-runs a micro-batch whose commit it did not record (a crash between writing and
committing), so each sink makes a re-run harmless:

- DuckDB: the batch's minutes are replaced in one transaction (:func:`warehouse.replace_minutes`,
  the same write as the Dagster assets'). In append mode a minute's rows for every symbol come
  in the one batch whose watermark passes the minute's end, so replacing whole minutes is exact.
- Parquet: one file per batch, named by the batch id and written atomically, so a re-run
  replaces it whole and readers never see half a file.

Both run on the driver (``foreachBatch``): a batch holds one row per (symbol, closed minute),
a few hundred rows at most, so it travels as one Arrow table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from crypto_platform import warehouse
from crypto_platform.core.analytics import ANALYTICS_COLUMNS
from crypto_platform.core.lake import write_parquet_atomic

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

# Dagster runs and readers open the same DuckDB file, one writer at a time: a streaming job
# waits longer for the lock than a one-off command before it gives up (and fails the query).
LOCK_TIMEOUT_S = 300.0


def minutes_of(rows: pa.Table) -> list[int]:
    """The distinct ``window_start`` values of ``rows``, as epoch milliseconds."""
    starts = rows.column("window_start").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    return sorted(set(starts.to_pylist()))


def write_duckdb_batch(path: Path, rows: pa.Table, timeout_s: float = LOCK_TIMEOUT_S) -> int:
    """Replace the minutes of ``rows`` in the analytics table in one transaction."""
    with warehouse.connection(path, timeout_s=timeout_s) as conn:
        warehouse.replace_minutes(conn, rows.select(list(ANALYTICS_COLUMNS)), minutes_of(rows))
    return rows.num_rows


def write_parquet_batch(folder: Path, rows: pa.Table, batch_id: int) -> Path:
    """Write one batch as ``batch-<id>.parquet``, atomically (the lake's own file writer)."""
    path = folder / f"batch-{batch_id:012d}.parquet"
    write_parquet_atomic(rows.select(list(ANALYTICS_COLUMNS)), path)
    return path


class DuckDBSink:
    """``foreachBatch`` writer: each batch's minutes into the analytics table."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = batch.toArrow()
        if rows.num_rows == 0:
            return
        write_duckdb_batch(self.path, rows)
        log.info("batch %d: %d minute row(s) written to %s", batch_id, rows.num_rows, self.path)


class ParquetSink:
    """``foreachBatch`` writer: each batch's minutes as one Parquet file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = batch.toArrow()
        if rows.num_rows == 0:
            return
        path = write_parquet_batch(self.folder, rows, batch_id)
        log.info("batch %d: %d minute row(s) written to %s", batch_id, rows.num_rows, path)
