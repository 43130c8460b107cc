"""``raw_trades``: the trades of the asked-for minutes, from Kafka into the Parquet lake."""

import dagster as dg
from pydantic import Field

from crypto_platform.core import read_marks
from crypto_platform.core.lake import LakeWrite, deduplicate_and_write, only_minutes
from crypto_platform.core.progress import MINUTE_MS
from crypto_platform.core.windows import group_by_hour, minute_label
from crypto_platform.defs.assets.common import (
    COMPLETE_THROUGH_KEY,
    GROUP,
    MAX_LISTED,
    WRITER_POOL,
    MinutesConfig,
    complete_through,
    minutes_metadata,
    selected_minutes,
)
from crypto_platform.defs.partitions import PlatformPartitions, window_ms
from crypto_platform.defs.resources import KafkaResource, ParquetLakeResource
from crypto_platform.kafka.reader import TradeRead

# Kafka unreachable (a broker restarting, a network blip) fails the read; the step is retried
# (10 s, 20 s, 40 s later) before the run fails. Nothing is written before the read completes.
KAFKA_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL)


class RawTradesConfig(MinutesConfig):
    read_until_ms: int | None = Field(
        default=None,
        description=(
            "When (epoch ms) the minutes were known complete (the sensor sets it from the "
            "progress marks); Kafka is read past it plus the lateness. None = the range's end."
        ),
    )


class _Totals:
    """What one run read and wrote, summed over its hours, for the materialisation metadata."""

    def __init__(self) -> None:
        self.rows_per_symbol: dict[str, int] = {}
        self.offsets: dict[str, str] = {}
        self.messages = self.dropped = self.conflicting = 0
        self.files: list[str] = []
        self.removed: list[str] = []


def build_raw_trades(partitions: PlatformPartitions) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=partitions.hourly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"kafka", "parquet"},
        retry_policy=KAFKA_RETRY_POLICY,
    )
    def raw_trades(
        context: dg.AssetExecutionContext,
        config: RawTradesConfig,
        kafka: KafkaResource,
        lake: ParquetLakeResource,
    ) -> dg.MaterializeResult:
        """Every trade of the run's minutes, read from Kafka by trade time, deduplicated by
        (symbol, trade id), one Parquet file per symbol and minute (sorted by trade id, exact
        decimals, written atomically; same trades, same bytes)."""
        window = window_ms(context)
        minutes = selected_minutes(config, window)
        totals = _Totals()
        for hour, hour_minutes in group_by_hour(minutes).items():
            _materialise_hour(context, kafka, lake, config, hour, hour_minutes, totals)
        through = complete_through(context, config, minutes, window)
        return dg.MaterializeResult(metadata=_metadata(minutes, through, totals))

    return raw_trades


def _materialise_hour(context, kafka, lake, config, hour, minutes, totals) -> None:
    root = lake.path
    floors = read_marks.load_end_offsets(root, hour, kafka.trades_topic)
    read = kafka.read_trades(minutes[0], minutes[-1] + MINUTE_MS, config.read_until_ms, floors)
    trades, read.trades = read.trades, read.trades.slice(0, 0)  # one reference only
    if len(minutes) != (minutes[-1] - minutes[0]) // MINUTE_MS + 1:
        trades = only_minutes(trades, minutes)
    written = deduplicate_and_write(root, trades, minutes)
    del trades
    read_marks.record_end_offsets(root, hour, kafka.trades_topic, read.end_offsets)
    if written.conflicting:
        context.log.warning(
            f"{written.conflicting} duplicate trade ids carried different values; "
            "kept the earliest event of each"
        )
    _add(totals, read, written, root)


def _add(totals: _Totals, read: TradeRead, written: LakeWrite, root) -> None:
    for symbol, rows in written.rows_per_symbol.items():
        totals.rows_per_symbol[symbol] = totals.rows_per_symbol.get(symbol, 0) + rows
    for p in read.partitions:
        first, _, _ = totals.offsets.get(str(p.partition), f"{p.start_offset}-").partition("-")
        totals.offsets[str(p.partition)] = f"{first}-{p.end_offset}"
    totals.messages += read.messages
    totals.dropped += written.dropped
    totals.conflicting += written.conflicting
    totals.files += [str(f.relative_to(root)) for f in written.files]
    totals.removed += [str(f.relative_to(root)) for f in written.removed]


def _metadata(minutes: list[int], through: int, totals: _Totals) -> dict:
    rows = sum(totals.rows_per_symbol.values())
    return {
        **minutes_metadata(minutes),
        "complete_through": minute_label(through),
        COMPLETE_THROUGH_KEY: through,
        "dagster/row_count": rows,
        "rows_per_symbol": dg.MetadataValue.json(dict(sorted(totals.rows_per_symbol.items()))),
        "kafka_messages_read": totals.messages,
        "kafka_offsets": dg.MetadataValue.json(totals.offsets),
        "duplicates_dropped": totals.dropped,
        "conflicting_duplicates": totals.conflicting,
        "files_written": len(totals.files),
        "files": dg.MetadataValue.json(totals.files[:MAX_LISTED]),
        "files_removed": dg.MetadataValue.json(totals.removed[:MAX_LISTED]),
    }
