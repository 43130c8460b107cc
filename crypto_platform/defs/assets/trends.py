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
        """Per (symbol, minute with trades) of trade_analytics_1m, from the closes:

        - sma_5, sma_15, sma_60: mean close of the minutes with trades among the last 5, 15,
          60 minutes (the minute itself included);
        - ema_12, ema_26: each close weighs (1 - 2/(N + 1)) ** (its age in minutes), over 8 hours;
          macd = ema_12 - ema_26;
        - log_return: ln(close / close of the minute before), empty when that minute had no
          trades; volatility_60m: sample std dev of the log returns of the last 60 minutes
          (empty below two), volatility_60m_annualised = volatility_60m * sqrt(525600);
        - vwap_60m = quote volume / volume of the last 60 minutes; volume_60m,
          quote_volume_60m, trade_count_60m their sums, minutes_60m the minutes with trades.

        Trend rule: ``up`` when sma_5 > sma_15 * (1 + 0.0001) and sma_15 > sma_60 * (1 + 0.0001)
        (short averages above long ones, each step more than 1 basis point); ``down`` when
        sma_5 < sma_15 * (1 - 0.0001) and sma_15 < sma_60 * (1 - 0.0001); otherwise ``flat``.

        Windows are by time: a minute without trades is a gap, not a shift. Each run reads the
        8 hours of trade_analytics_1m before its hours, so an hour's first minute and a backfill
        give what an uninterrupted run gives; trend_tails_sensor rebuilds the 8 hours after an
        older hour whose analytics changed. Code: crypto_platform.core.trends."""
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
