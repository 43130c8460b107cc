"""``closed_minutes_sensor``: requests a micro-batch run for the minutes that have just closed.

Every few seconds it reads the new messages of the progress topic, works out (in
:mod:`crypto_platform.core.minute_plan`) which minutes closed or were reopened by late trades,
and requests one run per hour partition naming those minutes. The JSON cursor and the run keys
make each minute requested once; the runs read Kafka by time and commit nothing, so a failed
run loses nothing and is simply run again.
"""

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from crypto_platform.core.minute_plan import MinuteBatch, PlanState, plan_minutes
from crypto_platform.core.windows import minute_label
from crypto_platform.defs.partitions import PlatformPartitions, hour_partition_key
from crypto_platform.defs.resources import KafkaResource
from crypto_platform.settings import Settings

MINUTES_TAG = "crypto_platform/minutes"


def run_config(batch: MinuteBatch) -> dict:
    minutes = [minute_label(m) for m in batch.minutes_ms]
    return {
        "ops": {
            "raw_trades": {"config": {"minutes": minutes, "read_until_ms": batch.read_until_ms}},
            "trade_analytics_1m": {"config": {"minutes": minutes}},
        }
    }


def run_request(batch: MinuteBatch, offsets: dict[int, int]) -> dg.RunRequest:
    first, last = minute_label(batch.minutes_ms[0]), minute_label(batch.minutes_ms[-1])
    where = ",".join(f"{p}:{o}" for p, o in sorted(offsets.items()))
    kind = "late" if batch.late else "closed"
    return dg.RunRequest(
        run_key=f"{first}..{last}/{len(batch.minutes_ms)}/{kind}@{where}",
        partition_key=hour_partition_key(batch.hour_ms),
        run_config=run_config(batch),
        tags={MINUTES_TAG: f"{first}..{last}", "crypto_platform/reason": kind},
    )


def build_minutes_sensor(
    job: "UnresolvedAssetJobDefinition", settings: Settings, partitions: PlatformPartitions
) -> dg.SensorDefinition:
    symbols = settings.symbols_upper
    grace_ms = round(settings.grace_seconds * 1000)

    @dg.sensor(
        job=job,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def closed_minutes_sensor(
        context: dg.SensorEvaluationContext, kafka: KafkaResource
    ) -> dg.SensorResult:
        """Requests the minutes that closed (every symbol's progress mark past the minute's end
        plus the grace) or that late trades reopened, one run per hour partition."""
        state = PlanState.from_json(context.cursor)
        read = kafka.read_progress(state.next_offsets or None)
        plan = plan_minutes(
            state,
            [message for _p, _o, message in read.messages],
            read.next_offsets,
            symbols,
            grace_ms,
            partitions.start_ms,
        )
        cursor = plan.state.to_json()
        if plan.batches:
            requests = [run_request(b, read.next_offsets) for b in plan.batches]
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        return dg.SensorResult(skip_reason=_skip_reason(plan, len(read.messages)), cursor=cursor)

    return closed_minutes_sensor


def _skip_reason(plan, messages: int) -> str:
    if plan.missing_symbols:
        return f"no progress mark yet from {', '.join(plan.missing_symbols)} ({messages} read)"
    through = plan.closed_through_ms
    closed = minute_label(through) if through is not None else "nothing"
    return f"no new minute closed (closed through {closed}; {messages} progress messages read)"
