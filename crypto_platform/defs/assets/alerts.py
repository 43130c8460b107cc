"""``alerts``: the alert rules evaluated over ``trade_analytics_1m``, each firing stored once.

It runs in its own runs, started by its automation sensor whenever one of the two latest hourly
partitions of ``trade_analytics_1m`` is updated (a new minute closed), so a slow or dead webhook
never delays the minute pipeline: the asset is not in the writers' pool, holds the DuckDB file
only for milliseconds, and gives the webhook a bounded time. Materialising it for older
partitions (a backfill) stores what qualifies there without re-firing what already fired, and
does not POST alerts older than ``alert_webhook_max_age_minutes``.
"""

# No `from __future__ import annotations`: Dagster must see the real `context` annotation.
from datetime import timedelta

import dagster as dg

from crypto_platform.alerts.engine import AlertsSummary, run_alerts
from crypto_platform.alerts.webhook import WebhookConfig
from crypto_platform.core.alerts import ALERTS_TABLE
from crypto_platform.defs.partitions import PlatformPartitions
from crypto_platform.defs.resources import WarehouseResource
from crypto_platform.settings import Settings

GROUP = "alerts"
SENSOR_INTERVAL_S = 15
MAX_LISTED = 20

# eager(), but for the latest two hours, not just the latest: the last minute of an hour
# closes when the next hour's partition is already the latest one.
AUTOMATION = dg.AutomationCondition.eager().replace(
    dg.AutomationCondition.in_latest_time_window(),
    dg.AutomationCondition.in_latest_time_window(timedelta(hours=2)),
)


def _webhook(settings: Settings) -> WebhookConfig | None:
    if settings.alert_webhook_url is None:
        return None
    return WebhookConfig(
        url=settings.alert_webhook_url,
        timeout_s=settings.alert_webhook_timeout_seconds,
        attempts=settings.alert_webhook_attempts,
    )


def _metadata(summary: AlertsSummary, rule_count: int) -> dict[str, object]:
    listed = "\n".join(f"- {f.message}" for f in summary.new[:MAX_LISTED]) or "(none)"
    return {
        "rules": rule_count,
        "minutes_read": summary.minutes_read,
        "data_until": summary.data_until.isoformat() if summary.data_until else "",
        "new_alerts": len(summary.new),
        "new_alerts_by_rule": dg.MetadataValue.json(summary.by_rule()),
        "webhook_sent": summary.sent,
        "webhook_failed": summary.failed,
        "webhook_pending": summary.left_pending,
        "alerts": dg.MetadataValue.md(listed),
        "table": ALERTS_TABLE,
    }


def build_alerts(
    settings: Settings, partitions: PlatformPartitions, trade_analytics: dg.AssetsDefinition
) -> dg.AssetsDefinition:
    rules = list(settings.alert_rules)
    webhook = _webhook(settings)
    max_age = settings.alert_webhook_max_age_minutes

    @dg.asset(
        name=ALERTS_TABLE,
        partitions_def=partitions.hourly,
        deps=[trade_analytics],
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=AUTOMATION,
        group_name=GROUP,
        kinds={"duckdb"},
    )
    def alerts(
        context: dg.AssetExecutionContext, duckdb: WarehouseResource
    ) -> dg.MaterializeResult:
        """Alert rules (setting ``alert_rules``: price change %, volatility, no trades, price
        crossing a level) over the run's minutes. Each firing is stored once in DuckDB table
        ``alerts`` (key: rule, symbol, window start), logged, and POSTed to
        ``alert_webhook_url`` if set, with a timeout and retries; a failing webhook is logged,
        the run still succeeds."""
        window = context.partition_time_window
        summary = run_alerts(
            duckdb.path,
            rules,
            window.start,
            window.end,
            webhook=webhook,
            max_age=timedelta(minutes=max_age) if max_age else None,
            log=context.log,
        )
        return dg.MaterializeResult(metadata=_metadata(summary, len(rules)))

    return alerts


def build_alerts_sensor(alerts: dg.AssetsDefinition) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the alerts' automation condition; on by default, so ``make run`` alerts."""
    return dg.AutomationConditionSensorDefinition(
        "alerts_sensor",
        target=[alerts],
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        description="Starts an `alerts` run when new minutes reach trade_analytics_1m.",
    )
