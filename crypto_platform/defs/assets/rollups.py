"""``trade_analytics_1h`` and ``trade_analytics_1d``: the 1-minute analytics rolled up exactly."""

from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from crypto_platform import derived
from crypto_platform.core.rollups import ROLLUP_TABLES, Unit
from crypto_platform.defs.assets.common import WRITER_POOL
from crypto_platform.defs.assets.freshness import DAILY_CONDITION, HOURLY_CONDITION
from crypto_platform.defs.partitions import PlatformPartitions, window_ms
from crypto_platform.defs.resources import WarehouseResource

GROUP = "trends"


def daily_rollup_partitions(partitions: PlatformPartitions) -> dg.DailyPartitionsDefinition:
    """UTC days, today included (``end_offset=1``): today's row fills in as minutes close."""
    start = datetime.fromtimestamp(partitions.start_ms / 1000, tz=UTC)
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1)


def _build_rollup(
    unit: Unit,
    partitions_def: dg.PartitionsDefinition,
    condition: dg.AutomationCondition,
    analytics: dg.AssetsDefinition,
    description: str,
) -> dg.AssetsDefinition:
    table = ROLLUP_TABLES[unit]

    @dg.asset(
        name=table,
        partitions_def=partitions_def,
        deps=[analytics],
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=condition,
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"duckdb"},
        description=description,
    )
    def rollup(
        context: dg.AssetExecutionContext, duckdb: WarehouseResource
    ) -> dg.MaterializeResult:
        start, end = window_ms(context)
        with duckdb.get_connection() as conn:
            rows = derived.rebuild_rollups(conn, unit, start, end)
        return dg.MaterializeResult(metadata=_metadata(table, rows))

    return rollup


def _metadata(table: str, rows: pa.Table) -> dict[str, object]:
    counts: dict[str, int] = {}
    for symbol in rows["symbol"].to_pylist():
        counts[symbol] = counts.get(symbol, 0) + 1
    return {
        "dagster/row_count": rows.num_rows,
        "rows_per_symbol": dg.MetadataValue.json(dict(sorted(counts.items()))),
        "trades": sum(rows["trade_count"].to_pylist()) if rows.num_rows else 0,
        "table": table,
    }


_SAME_COLUMNS = (
    "with the columns of trade_analytics_1m, merged exactly from its minutes: counts, OHLC, "
    "volumes, VWAP, first/last ids add up or take the extremes; avg price and the sample std "
    "dev come from each minute's count, mean and squared deviations (crypto_platform.core."
    "rollups), so they equal a computation over the raw trades."
)


def build_trade_analytics_1h(
    partitions: PlatformPartitions, analytics: dg.AssetsDefinition
) -> dg.AssetsDefinition:
    return _build_rollup(
        "hour",
        partitions.hourly,
        HOURLY_CONDITION,
        analytics,
        f"One row per (symbol, UTC hour) {_SAME_COLUMNS}",
    )


def build_trade_analytics_1d(
    partitions: PlatformPartitions, analytics: dg.AssetsDefinition
) -> dg.AssetsDefinition:
    return _build_rollup(
        "day",
        daily_rollup_partitions(partitions),
        DAILY_CONDITION,
        analytics,
        f"One row per (symbol, UTC day) {_SAME_COLUMNS} Today's row is rebuilt every few "
        "minutes while the day runs.",
    )
