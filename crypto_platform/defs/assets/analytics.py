"""``trade_analytics_1m``: one row per (symbol, minute), from the raw Parquet, into DuckDB."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from crypto_platform import warehouse
from crypto_platform.core.analytics import ANALYTICS_TABLE
from crypto_platform.core.lake import only_minutes, read_trades_by_symbol
from crypto_platform.core.progress import MINUTE_MS
from crypto_platform.core.trade_batches import empty_trades
from crypto_platform.core.windows import group_by_hour, minute_label
from crypto_platform.defs.assets.common import (
    COMPLETE_THROUGH_KEY,
    GROUP,
    WRITER_POOL,
    MinutesConfig,
    complete_through,
    minutes_metadata,
    selected_minutes,
)
from crypto_platform.defs.partitions import PlatformPartitions, window_ms
from crypto_platform.defs.resources import ParquetLakeResource, WarehouseResource


def build_trade_analytics(
    partitions: PlatformPartitions, raw_trades: dg.AssetsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        name=ANALYTICS_TABLE,
        partitions_def=partitions.hourly,
        deps=[raw_trades],
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"duckdb"},
    )
    def trade_analytics_1m(
        context: dg.AssetExecutionContext,
        config: MinutesConfig,
        lake: ParquetLakeResource,
        duckdb: WarehouseResource,
    ) -> dg.MaterializeResult:
        """Per (symbol, minute): OHLC, avg price, range %, volatility (sample std dev), trade
        count, volumes, VWAP, taker buy/sell volume, first/last trade id and a completeness flag
        (formulas in ``crypto_platform.core.analytics``). Computed from the raw Parquet alone,
        so it can be rebuilt for data older than Kafka's retention; the run's minutes are
        replaced in one transaction."""
        window = window_ms(context)
        minutes = selected_minutes(config, window)
        rows = minute_rows(lake, minutes)
        with duckdb.get_connection() as conn:
            deleted = warehouse.replace_minutes(conn, rows, minutes)
        # The same rule as raw_trades': contiguous minutes from the hour's start that this or
        # earlier materialisations of this asset's partition wrote.
        through = complete_through(context, config, minutes, window)
        return dg.MaterializeResult(metadata=_metadata(minutes, through, rows, deleted, duckdb))

    return trade_analytics_1m


def minute_rows(lake: ParquetLakeResource, minutes: list[int]) -> pa.Table:
    """The analytics rows of ``minutes`` (by symbol, minute), an hour and a symbol at a time.

    The trades are read unsorted: the aggregates do not depend on row order (exact decimal
    sums; open and close by trade id), and the lake's file order is the same every time.
    """
    parts = []
    for _hour, hour_minutes in group_by_hour(minutes).items():
        start, end = hour_minutes[0], hour_minutes[-1] + MINUTE_MS
        gaps = len(hour_minutes) != (end - start) // MINUTE_MS
        for trades in read_trades_by_symbol(lake.path, start, end, sort=False):
            parts.append(
                warehouse.minute_analytics(only_minutes(trades, hour_minutes) if gaps else trades)
            )
    return pa.concat_tables(parts) if parts else warehouse.minute_analytics(empty_trades())


def _metadata(
    minutes: list[int], through: int, rows: pa.Table, deleted: int, duckdb: WarehouseResource
):
    symbols = pc.value_counts(rows["symbol"]).to_pylist() if rows.num_rows else []
    incomplete = rows.num_rows - pc.sum(rows["is_complete"]).as_py() if rows.num_rows else 0
    return {
        **minutes_metadata(minutes),
        "complete_through": minute_label(through),
        COMPLETE_THROUGH_KEY: through,
        "dagster/row_count": rows.num_rows,
        "rows_replaced": deleted,
        "rows_per_symbol": dg.MetadataValue.json(
            {s["values"]: s["counts"] for s in sorted(symbols, key=lambda s: s["values"])}
        ),
        "incomplete_minutes": incomplete,
        "database": dg.MetadataValue.path(str(duckdb.path)),
        "table": ANALYTICS_TABLE,
    }
