"""The job's sinks make a re-run micro-batch harmless (real DuckDB files, real Parquet files)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from crypto_platform import warehouse
from crypto_platform.core.lake import deduplicate
from crypto_platform.core.trade_batches import parse_events
from crypto_platform.core.trades import Trade
from crypto_platform.spark.sink import minutes_of, write_duckdb_batch, write_parquet_batch
from crypto_platform_tests.test_spark.helpers import duckdb_table_rows, rows_by_key, trade_value

MINUTE = 1_735_603_200_000  # 2024-12-31 00:00 UTC


def _rows(price: str, minutes: list[int], symbols: tuple[str, ...] = ("BTCUSDT",)) -> pa.Table:
    """Analytics rows (the platform's own SQL) of one trade per symbol and minute."""
    trades = [
        Trade(symbol, 1 + i, Decimal(price), Decimal("0.5"), minute + 1_000, minute + 1_000, False)
        for i, minute in enumerate(minutes)
        for symbol in symbols
    ]
    lake = deduplicate(parse_events([trade_value(t) for t in trades])).table
    return warehouse.minute_analytics(lake)


def test_minutes_of_reads_spark_microsecond_timestamps() -> None:
    rows = _rows("100", [MINUTE, MINUTE + 60_000])
    as_spark = rows.set_column(
        rows.schema.get_field_index("window_start"),
        "window_start",
        rows["window_start"].cast(pa.timestamp("us", tz="UTC")),
    )
    assert minutes_of(as_spark) == [MINUTE, MINUTE + 60_000]


def test_a_replayed_batch_leaves_the_table_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    batch = _rows("100", [MINUTE], symbols=("BTCUSDT", "ETHUSDT"))
    assert write_duckdb_batch(path, batch) == 2
    first = duckdb_table_rows(path)
    assert write_duckdb_batch(path, batch) == 2
    assert duckdb_table_rows(path) == first
    assert sorted(first) == [("BTCUSDT", MINUTE), ("ETHUSDT", MINUTE)]


def test_a_batch_replaces_its_own_minutes_only(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    write_duckdb_batch(path, _rows("100", [MINUTE]))
    write_duckdb_batch(path, _rows("200", [MINUTE + 60_000]))
    write_duckdb_batch(path, _rows("300", [MINUTE]))
    rows = duckdb_table_rows(path)
    assert rows[("BTCUSDT", MINUTE)]["close"] == 300.0
    assert rows[("BTCUSDT", MINUTE + 60_000)]["close"] == 200.0
    assert len(rows) == 2


def test_a_replayed_parquet_batch_replaces_its_file_whole(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    write_parquet_batch(folder, _rows("100", [MINUTE]), batch_id=7)
    path = write_parquet_batch(folder, _rows("300", [MINUTE]), batch_id=7)
    assert path.name == "batch-000000000007.parquet"
    assert [p.name for p in folder.iterdir()] == [path.name]  # no partial file left behind
    rows = rows_by_key(pq.read_table(path))
    assert rows[("BTCUSDT", MINUTE)]["close"] == 300.0 and len(rows) == 1
