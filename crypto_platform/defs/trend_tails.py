"""``trend_tails_sensor``: what a rebuilt older hour of ``trade_analytics_1m`` left stale.

When the analytics of an hour change (a backfill from the UI, late trades rebuilding it), the
assets derived from it are stale: ``trade_trends_1m`` of that hour and of the 8 hours after it
(the EMAs look back 8 hours), ``trade_analytics_1h`` of that hour and ``trade_analytics_1d`` of
its day. ``trends_sensor`` and ``daily_rollup_sensor`` only follow the latest partitions (2 hours,
2 days) as their own analytics change. This sensor reads the analytics' materialisations from the
event log (its cursor is the last storage id read) and, for each changed hour, requests of each
derived asset (:class:`Derived`):

- the changed partition itself when it is older than its automation sensor's window (inside it,
  that sensor rebuilds it), and for the trends the 8 hours after it in any case;
- only partitions with analytics (materialised), and only those last materialised before the
  change (a backfill that rebuilt them too needs no second run);
- one run per asset and stretch of consecutive partitions (at most a day of hours, a week of
  days) of ``trade_history_job`` or ``trade_analytics_1d_job``, with a run key naming the asset,
  the stretch and the change, so each is requested once.

Materialisations of a run still going are left for a later tick: the run may rebuild the trends
and hourly roll-ups itself (``trade_history_job``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from crypto_platform.core.analytics import ANALYTICS_TABLE
from crypto_platform.core.rollups import ROLLUP_TABLES
from crypto_platform.core.trends import LOOKBACK_MS, TRENDS_TABLE
from crypto_platform.core.windows import DAY_MS, HOUR_MS
from crypto_platform.defs.partitions import HOUR_FORMAT, hour_partition_key

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

SENSOR_NAME = "trend_tails_sensor"
TAIL_SENSOR_INTERVAL_S = 60
TAIL_HOURS = LOOKBACK_MS // HOUR_MS  # hours after a change whose trends read it
MAX_RUN_HOURS = 24
MAX_RUN_DAYS = 7
PAGE_SIZE = 1000
MAX_PAGES = 10  # per tick; the cursor carries on from there
DAY_FORMAT = "%Y-%m-%d"
ANALYTICS_KEY = dg.AssetKey(ANALYTICS_TABLE)
TRENDS_KEY = dg.AssetKey(TRENDS_TABLE)
HOURLY_KEY = dg.AssetKey(ROLLUP_TABLES["hour"])
DAILY_KEY = dg.AssetKey(ROLLUP_TABLES["day"])
CHANGED_TAG = "crypto_platform/changed_hours"


@dataclass(frozen=True)
class Derived:
    """An asset derived from the analytics: its partitions, and the job that rebuilds them."""

    key: dg.AssetKey
    job_name: str
    unit_ms: int  # one partition: an hour or a day
    key_format: str  # of its partition keys
    recent: timedelta  # its automation sensor's window: a changed partition in it is that one's
    tail: int = 0  # partitions after a changed one that read it
    max_run: int = MAX_RUN_HOURS  # partitions per run

    def partition_key(self, start_ms: int) -> str:
        return datetime.fromtimestamp(start_ms / 1000, tz=UTC).strftime(self.key_format)


def derived_assets(
    hourly_job: str, daily_job: str, hourly_window: timedelta, daily_window: timedelta
) -> tuple[Derived, ...]:
    """The trends, then the hourly and daily roll-ups; the windows are their sensors'."""
    return (
        Derived(TRENDS_KEY, hourly_job, HOUR_MS, HOUR_FORMAT, hourly_window, tail=TAIL_HOURS),
        Derived(HOURLY_KEY, hourly_job, HOUR_MS, HOUR_FORMAT, hourly_window),
        Derived(DAILY_KEY, daily_job, DAY_MS, DAY_FORMAT, daily_window, max_run=MAX_RUN_DAYS),
    )


@dataclass(frozen=True)
class Stretch:
    """Consecutive partitions (their starts) to rebuild, and the newest change (storage id)."""

    first_ms: int
    last_ms: int
    change_id: int


def reached_partitions(changed: Mapping[int, int], now_ms: int, derived: Derived) -> dict[int, int]:
    """{partition start: newest change it must follow} for the partitions that read a changed hour.

    ``changed`` maps an hour (epoch ms) to the storage id of its newest analytics
    materialisation. A changed partition in the latest ``derived.recent`` is its sensor's.
    """
    unit = derived.unit_ms
    # Dagster's in_latest_time_window: the partitions within ``recent`` of the end of the
    # latest one (the current hour or day)
    window_start_ms = now_ms - now_ms % unit + unit - round(derived.recent.total_seconds() * 1000)
    reached: dict[int, int] = {}
    for hour, change_id in changed.items():
        partition = hour - hour % unit
        first = 1 if partition >= window_start_ms else 0
        for step in range(first, derived.tail + 1):
            later = partition + step * unit
            reached[later] = max(reached.get(later, 0), change_id)
    return reached


def stale_stretches(
    reached: Mapping[int, int],
    analytics_ids: Mapping[int, int],
    derived_ids: Mapping[int, int],
    unit_ms: int = HOUR_MS,
    max_run: int = MAX_RUN_HOURS,
) -> list[Stretch]:
    """The reached partitions with analytics, last rebuilt before their change, in stretches."""
    stale = sorted(
        p for p, change in reached.items() if p in analytics_ids and derived_ids.get(p, -1) < change
    )
    stretches: list[list[int]] = []
    for partition in stale:
        last = stretches[-1] if stretches else None
        if last and partition == last[-1] + unit_ms and len(last) < max_run:
            last.append(partition)
        else:
            stretches.append([partition])
    return [Stretch(s[0], s[-1], max(reached[p] for p in s)) for s in stretches]


def _hour_ms(key: str) -> int:
    return round(datetime.strptime(key, HOUR_FORMAT).replace(tzinfo=UTC).timestamp() * 1000)


def read_changes(instance: dg.DagsterInstance, after_id: int) -> tuple[dict[int, int], int]:
    """The analytics hours materialised after ``after_id`` by finished runs, with their newest
    storage id, and the storage id to read from next time."""
    changed: dict[int, int] = {}
    for _ in range(MAX_PAGES):
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ANALYTICS_KEY, after_storage_id=after_id),
            limit=PAGE_SIZE,
            ascending=True,
        ).records
        if not page:
            break
        runs = instance.get_run_records(dg.RunsFilter(run_ids=list({r.run_id for r in page})))
        going = {r.dagster_run.run_id for r in runs if not r.dagster_run.is_finished}
        for record in page:
            if record.run_id in going:
                return changed, after_id
            if record.partition_key:
                hour = _hour_ms(record.partition_key)
                changed[hour] = max(changed.get(hour, 0), record.storage_id)
            after_id = record.storage_id
        if len(page) < PAGE_SIZE:
            break
    return changed, after_id


def _latest_ids(
    instance: dg.DagsterInstance, asset: dg.AssetKey, keys: Collection[str]
) -> dict[str, int]:
    if not keys:
        return {}
    return instance.get_latest_storage_id_by_partition(
        asset, DagsterEventType.ASSET_MATERIALIZATION, set(keys)
    )


def _analytics_ids(
    instance: dg.DagsterInstance, partitions: Iterable[int], unit_ms: int
) -> dict[int, int]:
    """{partition: the newest analytics storage id of its hours}, for those with analytics."""
    hours = {hour_partition_key(p + h): p for p in partitions for h in range(0, unit_ms, HOUR_MS)}
    newest: dict[int, int] = {}
    for key, storage_id in _latest_ids(instance, ANALYTICS_KEY, hours).items():
        newest[hours[key]] = max(newest.get(hours[key], 0), storage_id)
    return newest


def stale_derived(
    instance: dg.DagsterInstance,
    derived: Derived,
    changed: Mapping[int, int],
    now_ms: int,
    read_id: int,
) -> list[Stretch]:
    """What of ``derived`` to rebuild after ``changed``, read up to storage id ``read_id``."""
    reached = reached_partitions(changed, now_ms, derived)
    # a partition with an hour whose newest analytics are not read yet (a run still going)
    # comes up later
    analytics = _analytics_ids(instance, reached, derived.unit_ms)
    read = {p: i for p, i in analytics.items() if i <= read_id}
    keys = {derived.partition_key(p): p for p in read}
    rebuilt = {keys[k]: i for k, i in _latest_ids(instance, derived.key, keys).items()}
    return stale_stretches(reached, read, rebuilt, derived.unit_ms, derived.max_run)


def run_request(derived: Derived, stretch: Stretch, changed: Mapping[int, int]) -> dg.RunRequest:
    first, last = derived.partition_key(stretch.first_ms), derived.partition_key(stretch.last_ms)
    reach_ms = derived.tail * derived.unit_ms
    causes = sorted(
        h
        for h in changed
        if stretch.first_ms - reach_ms <= h - h % derived.unit_ms <= stretch.last_ms
    )
    return dg.RunRequest(
        run_key=f"{derived.key.to_user_string()}:{first}..{last}@{stretch.change_id}",
        job_name=derived.job_name,
        asset_selection=[derived.key],
        tags={
            ASSET_PARTITION_RANGE_START_TAG: first,
            ASSET_PARTITION_RANGE_END_TAG: last,
            CHANGED_TAG: f"{hour_partition_key(causes[0])}..{hour_partition_key(causes[-1])}",
        },
    )


def build_trend_tails_sensor(
    hourly_job: UnresolvedAssetJobDefinition,
    daily_job: UnresolvedAssetJobDefinition,
    hourly_window: timedelta,
    daily_window: timedelta,
) -> dg.SensorDefinition:
    """The sensor (module docstring). ``hourly_job`` runs the trends and hourly roll-ups,
    ``daily_job`` the daily ones; the windows are ``trends_sensor``'s and
    ``daily_rollup_sensor``'s."""
    derived = derived_assets(hourly_job.name, daily_job.name, hourly_window, daily_window)

    @dg.sensor(
        name=SENSOR_NAME,
        jobs=[hourly_job, daily_job],
        minimum_interval_seconds=TAIL_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After an older hour's analytics change (a backfill, late trades): rebuilds "
        "its hourly and daily roll-ups and the trends of that hour and the 8 hours after it.",
    )
    def trend_tails_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        after_id = json.loads(context.cursor)["after_storage_id"] if context.cursor else 0
        changed, next_id = read_changes(context.instance, after_id)
        cursor = json.dumps({"after_storage_id": next_id})
        now_ms = round(time.time() * 1000)
        requests = [
            run_request(d, stretch, changed)
            for d in derived
            for stretch in stale_derived(context.instance, d, changed, now_ms, next_id)
        ]
        if not requests:
            return dg.SensorResult(skip_reason=_skip_reason(changed, after_id), cursor=cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return trend_tails_sensor


def _skip_reason(changed: Mapping[int, int], after_id: int) -> dg.SkipReason:
    if changed:
        return dg.SkipReason(
            f"{len(changed)} changed hours; their trends and roll-ups are up to date"
        )
    return dg.SkipReason(f"no trade_analytics_1m materialisation after storage id {after_id}")
