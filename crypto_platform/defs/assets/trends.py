"""``trade_trends_1m``: moving averages, returns, rolling volatility and VWAP per minute."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from crypto_platform import derived
from crypto_platform.core.trends import LOOKBACK_MINUTES, TRENDS_TABLE
from crypto_platform.core.windows import minute_label
from crypto_platform.defs.assets.common import WRITER_POOL
from crypto_platform.defs.assets.freshness import HOURLY_CONDITION
from crypto_platform.defs.partitions import PlatformPartitions, window_ms
from crypto_platform.defs.resources import WarehouseResource

GROUP = "trends"


def build_trade_trends(
    partitions: PlatformPartitions, analytics: dg.AssetsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        name=TRENDS_TABLE,
        partitions_def=partitions.hourly,
        deps=[analytics],
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=HOURLY_CONDITION,
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"duckdb"},
    )
    def trade_trends_1m(
        context: dg.AssetExecutionContext, duckdb: WarehouseResource
    ) -> dg.MaterializeResult:
        """Per (symbol, minute): SMA 5/15/60, EMA 12/26 and MACD, 1-minute log return, 60-minute
        realised volatility (also annualised), 60-minute VWAP and volume, and an up/down/flat
        trend label. Windows are by time (a minute without trades is a gap); each run reads
        the previous 8 hours of trade_analytics_1m, so a backfill or an hour's first minute
        gives what an uninterrupted run gives. Formulas: crypto_platform.core.trends."""
        start, end = window_ms(context)
        with duckdb.get_connection() as conn:
            rows = derived.rebuild_trends(conn, start, end)
        return dg.MaterializeResult(metadata=_metadata(start, end, rows))

    return trade_trends_1m


def _metadata(start: int, end: int, rows: pa.Table) -> dict[str, object]:
    labels = pc.value_counts(rows["trend"]).to_pylist() if rows.num_rows else []
    return {
        "dagster/row_count": rows.num_rows,
        "first_minute": minute_label(start),
        "end": minute_label(end),
        "lookback_minutes": LOOKBACK_MINUTES,
        "trend_minutes": dg.MetadataValue.json({v["values"]: v["counts"] for v in labels}),
        "table": TRENDS_TABLE,
    }
