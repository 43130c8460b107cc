"""The platform's real Dagster definitions on a temporary data folder, the session's broker and
fresh topics, with a persistent test instance; helpers to run what the sensor or a backfill runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from crypto_platform import warehouse
from crypto_platform.core.trades import Trade
from crypto_platform.core.windows import minute_label
from crypto_platform.definitions import build_definitions
from crypto_platform.defs.partitions import hour_partition_key
from crypto_platform.settings import Settings
from crypto_platform_tests.test_defs.helpers import history_topics, produce_trades

MINUTES_JOB = "trade_minutes_job"


@dataclass
class Platform:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    bootstrap: str
    trades_topic: str
    progress_topic: str

    @property
    def lake(self) -> Path:
        return self.settings.resolved_lake_dir.resolve()

    @property
    def database(self) -> Path:
        return self.settings.resolved_duckdb_path.resolve()

    def produce(self, trades: Iterable[Trade]) -> int:
        return produce_trades(self.bootstrap, self.trades_topic, trades)

    def job(self) -> dg.JobDefinition:
        return self.defs.resolve_job_def(MINUTES_JOB)

    def run_minutes(
        self, minutes: list[int], read_until_ms: int | None = None, raise_on_error: bool = True
    ) -> dg.ExecuteInProcessResult:
        """What the sensor requests: the named minutes of one hour partition."""
        labels = [minute_label(m) for m in minutes]
        config = {
            "ops": {
                "raw_trades": {"config": {"minutes": labels, "read_until_ms": read_until_ms}},
                "trade_analytics_1m": {"config": {"minutes": labels}},
            }
        }
        return self.job().execute_in_process(
            run_config=config,
            partition_key=hour_partition_key(minutes[0] - minutes[0] % 3_600_000),
            instance=self.instance,
            raise_on_error=raise_on_error,
        )

    def evaluate_minutes_sensor(self, cursor: str | None) -> dg.SensorResult:
        """One tick of ``closed_minutes_sensor`` on these definitions and this instance."""
        sensor = self.defs.resolve_sensor_def("closed_minutes_sensor")
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            definitions=self.defs,
            resources=self.defs.resources,
        )
        return sensor(context)

    def run_request(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return self.job().execute_in_process(
            run_config=request.run_config,
            partition_key=request.partition_key,
            instance=self.instance,
            tags=request.tags,
        )

    def backfill(
        self,
        first_hour_ms: int,
        last_hour_ms: int,
        selection: list[str] | None = None,
        raise_on_error: bool = True,
        checks: bool = True,
    ) -> dg.ExecuteInProcessResult:
        """One run over a range of hours, no config: what a UI backfill launches.

        ``checks=False`` leaves the asset checks out (they cost ~0.3 s per hour of a range).
        """
        tags = {
            ASSET_PARTITION_RANGE_START_TAG: hour_partition_key(first_hour_ms),
            ASSET_PARTITION_RANGE_END_TAG: hour_partition_key(last_hour_ms),
        }
        keys = [dg.AssetKey(s) for s in selection] if selection else None
        job = self.job()
        if not checks:
            assets = set(keys or job.asset_layer.selected_asset_keys)
            job, keys = job.get_subset(asset_selection=assets, asset_check_selection=set()), None
        return job.execute_in_process(
            instance=self.instance, tags=tags, asset_selection=keys, raise_on_error=raise_on_error
        )

    def run_checks(self, asset: str, hour_ms: int) -> dict[str, dg.AssetCheckEvaluation]:
        """Only the checks of ``asset``, on one hour partition; their evaluations by name."""
        keys = {
            k
            for k in self.defs.resolve_asset_graph().asset_check_keys
            if k.asset_key.path == [asset]
        }
        subset = self.job().get_subset(asset_selection=set(), asset_check_selection=keys)
        result = subset.execute_in_process(
            instance=self.instance, partition_key=hour_partition_key(hour_ms), raise_on_error=False
        )
        return check_results(result)

    def analytics(self) -> list[dict]:
        with warehouse.connection(self.database, read_only=True) as conn:
            rows = warehouse.read_minutes(conn, 0, 4_102_444_800_000)  # up to 2100
        return rows.to_pylist()

    def lake_bytes(self) -> dict[str, bytes]:
        raw = self.lake / "raw_trades"
        return {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*.parquet"))}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def topic_factory(bootstrap) -> Iterator[Callable[..., str]]:
    """Like the session's ``topic_factory``, but the topics keep old trades (no time retention)."""
    with history_topics(bootstrap) as make:
        yield make


@pytest.fixture
def platform_factory(
    settings_factory, topic_factory, bootstrap, instance
) -> Callable[..., Platform]:
    """The platform on fresh topics; keyword arguments override its settings."""

    def make(**overrides: object) -> Platform:
        trades_topic = topic_factory("trades", partitions=3)
        progress_topic = topic_factory("progress", partitions=1)
        values: dict[str, object] = {
            "partitions_start": date(2019, 1, 1),
            "symbols": ["btcusdt", "ethusdt"],
            "grace_seconds": 5,
        }
        settings = settings_factory(**(values | overrides))
        defs = build_definitions(settings, trades_topic=trades_topic, progress_topic=progress_topic)
        return Platform(settings, defs, instance, bootstrap, trades_topic, progress_topic)

    return make


@pytest.fixture
def platform(platform_factory) -> Platform:
    return platform_factory()
