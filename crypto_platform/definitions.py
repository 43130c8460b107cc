"""The code location: one ``Definitions`` object, built from settings.

``workspace.yaml`` loads ``defs``; tests call :func:`build_definitions` with their own settings
(a temporary data folder, a throwaway broker, their own topics) to get the same definitions on
test resources.
"""

from __future__ import annotations

import dagster as dg

from crypto_platform.core.lake import use_memory_returning_pool
from crypto_platform.core.topics import PROGRESS_TOPIC, TRADES_TOPIC
from crypto_platform.defs.assets.alerts import build_alerts, build_alerts_sensor
from crypto_platform.defs.assets.analytics import build_trade_analytics
from crypto_platform.defs.assets.compaction import build_raw_trades_daily
from crypto_platform.defs.assets.raw import build_raw_trades
from crypto_platform.defs.checks import build_analytics_checks, build_raw_checks
from crypto_platform.defs.history import build_trend_definitions
from crypto_platform.defs.jobs import build_jobs
from crypto_platform.defs.partitions import build_partitions
from crypto_platform.defs.resources import KafkaResource, ParquetLakeResource, WarehouseResource
from crypto_platform.defs.sensors import build_minutes_sensor
from crypto_platform.settings import Settings, load_settings


def build_resources(
    settings: Settings, trades_topic: str = TRADES_TOPIC, progress_topic: str = PROGRESS_TOPIC
) -> dict[str, dg.ConfigurableResource]:
    return {
        "kafka": KafkaResource(
            bootstrap_servers=settings.bootstrap_servers,
            trades_topic=trades_topic,
            progress_topic=progress_topic,
            lateness_seconds=settings.kafka_lateness_seconds,
        ),
        "lake": ParquetLakeResource(root=str(settings.resolved_lake_dir.resolve())),
        "duckdb": WarehouseResource(database=str(settings.resolved_duckdb_path.resolve())),
    }


def build_definitions(
    settings: Settings, trades_topic: str = TRADES_TOPIC, progress_topic: str = PROGRESS_TOPIC
) -> dg.Definitions:
    """Every asset, check, sensor, job and resource of the platform, explicitly listed."""
    partitions = build_partitions(settings)
    raw_trades = build_raw_trades(partitions)
    analytics = build_trade_analytics(partitions, raw_trades)
    raw_trades_daily = build_raw_trades_daily(partitions, raw_trades)
    alerts = build_alerts(settings, partitions, analytics)
    jobs = build_jobs(raw_trades, analytics, raw_trades_daily)
    trend_defs = build_trend_definitions(partitions, analytics)
    return dg.Definitions(
        assets=[raw_trades, analytics, raw_trades_daily, alerts, *trend_defs.assets],
        asset_checks=[
            *build_raw_checks(partitions, raw_trades),
            *build_analytics_checks(partitions, analytics, settings.grace_seconds),
        ],
        jobs=[jobs.trade_minutes_job, jobs.compaction_job, *trend_defs.jobs],
        schedules=[jobs.compaction_schedule],
        sensors=[
            build_minutes_sensor(jobs.trade_minutes_job, settings, partitions),
            build_alerts_sensor(alerts),
            *trend_defs.sensors,
        ],
        resources=build_resources(settings, trades_topic, progress_topic),
        executor=dg.in_process_executor,
    )


use_memory_returning_pool()
defs = build_definitions(load_settings())
