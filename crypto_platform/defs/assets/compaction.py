"""``raw_trades_daily``: each closed day's minute files merged into one file per symbol."""

import dagster as dg

from crypto_platform.core.compaction import compact_day
from crypto_platform.core.windows import DAY_MS
from crypto_platform.defs.assets.common import GROUP, MAX_LISTED, WRITER_POOL
from crypto_platform.defs.partitions import PlatformPartitions, window_ms
from crypto_platform.defs.resources import ParquetLakeResource


def build_raw_trades_daily(
    partitions: PlatformPartitions, raw_trades: dg.AssetsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=partitions.daily,
        deps=[raw_trades],
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"parquet"},
    )
    def raw_trades_daily(
        context: dg.AssetExecutionContext, lake: ParquetLakeResource
    ) -> dg.MaterializeResult:
        """A day's raw trades per symbol in one Parquet file (sorted by trade id), so long
        histories stay fast to scan and the file count small. Minute files are deleted only
        after the merged file is written, read back and matched against them."""
        start, end = window_ms(context)
        rows: dict[str, int] = {}
        merged, kept, files = 0, [], []
        for day in range(start, end, DAY_MS):
            for result in compact_day(lake.path, day):
                rows[result.symbol] = rows.get(result.symbol, 0) + result.rows
                merged += len(result.merged)
                kept += [str(p.relative_to(lake.path)) for p in result.kept]
                files.append(str(result.path.relative_to(lake.path)))
        context.log.info(f"merged {merged} minute files into {len(files)} day files")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": sum(rows.values()),
                "rows_per_symbol": dg.MetadataValue.json(dict(sorted(rows.items()))),
                "minute_files_merged": merged,
                "minute_files_kept": dg.MetadataValue.json(kept[:MAX_LISTED]),
                "files": dg.MetadataValue.json(files[:MAX_LISTED]),
            }
        )

    return raw_trades_daily
