"""The ``alerts`` asset in the real definitions, downstream of the real pipeline.

Crafted trades go into a real Kafka topic; ``raw_trades`` and ``trade_analytics_1m`` turn them
into minutes in DuckDB; ``alerts`` fires, stores and POSTs to a receiver on 127.0.0.1. Running
the hour again (a backfill), or a range of hours, fires nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from crypto_platform.definitions import build_definitions
from crypto_platform.settings import Settings
from crypto_platform_tests.test_alerts.crafted import EXPECTED, RULES, all_trades, at
from crypto_platform_tests.test_alerts.receiver import webhook_receiver
from crypto_platform_tests.test_defs.helpers import produce_trades

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
HOUR = "2025-01-01-10:00"
PIPELINE = [dg.AssetKey("raw_trades"), dg.AssetKey("trade_analytics_1m")]
ALERTS = [dg.AssetKey("alerts")]


def _rules_json() -> list[dict]:
    return [
        {k: v for k, v in vars(rule).items() if v is not None and k != "__pydantic_initialised__"}
        for rule in RULES
    ]


def _materialize(defs: dg.Definitions, instance: dg.DagsterInstance, keys, **how) -> dict:
    """Materialise ``keys`` of the real definitions (assets bound to their resources)."""
    assets = [defs.resolve_assets_def(key) for key in (*PIPELINE, *ALERTS)]
    result = dg.materialize(assets, instance=instance, selection=keys, **how)
    assert result.success
    return {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def _stored(path: Path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            "SELECT rule, symbol, window_start, value, delivery, attempts FROM alerts "
            "ORDER BY window_start, rule"
        ).fetchall()
    finally:
        con.close()


def test_the_pipeline_then_alerts_fire_once_and_a_backfill_fires_nothing_again(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str]
) -> None:
    trades_topic, progress_topic = topic_factory("trades", 3), topic_factory("progress")
    assert produce_trades(settings_factory().bootstrap_servers, trades_topic, all_trades()) == 37
    instance = dg.DagsterInstance.ephemeral()
    with webhook_receiver() as receiver:
        settings = settings_factory(
            alert_rules=_rules_json(),
            alert_webhook_url=receiver.url,
            alert_webhook_max_age_minutes=None,
        )
        defs = build_definitions(settings, trades_topic=trades_topic, progress_topic=progress_topic)
        db = settings.resolved_duckdb_path

        pipeline = _materialize(defs, instance, PIPELINE, partition_key=HOUR)
        assert pipeline["trade_analytics_1m"]["dagster/row_count"].value == 13 + 6
        first = _materialize(defs, instance, ALERTS, partition_key=HOUR)["alerts"]
        assert first["new_alerts"].value == 6 and first["webhook_sent"].value == 6
        assert first["new_alerts_by_rule"].value == {
            "jump": 1, "jump5": 1, "vol": 1, "quiet": 1, "cross": 2
        }  # fmt: skip
        rows = _stored(db)
        got = {(r[0], r[1], int((r[2] - at(0)) / timedelta(minutes=1))) for r in rows}
        assert got == {(rule, symbol, start) for rule, symbol, start, _, _ in EXPECTED}
        assert {(r[4], r[5]) for r in rows} == {("sent", 1)}
        assert sorted(p["rule"] for p in receiver.received) == sorted(r[0] for r in rows)

        # The same hour again, whole pipeline (a backfill), then a range of hours in one run.
        _materialize(defs, instance, PIPELINE, partition_key=HOUR)
        again = _materialize(defs, instance, ALERTS, partition_key=HOUR)["alerts"]
        ranged = _materialize(
            defs,
            instance,
            ALERTS,
            tags={
                "dagster/asset_partition_range_start": "2025-01-01-09:00",
                "dagster/asset_partition_range_end": "2025-01-01-11:00",
            },
        )["alerts"]
        assert again["new_alerts"].value == 0 and ranged["new_alerts"].value == 0
        assert _stored(db) == rows and receiver.attempts == 6


def test_the_alerts_sensor_asks_for_a_run_when_a_recent_hour_gets_new_minutes(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str]
) -> None:
    trades_topic, progress_topic = topic_factory("trades", 3), topic_factory("progress")
    produce_trades(settings_factory().bootstrap_servers, trades_topic, all_trades())
    settings = settings_factory(alert_rules=_rules_json())
    defs = build_definitions(settings, trades_topic=trades_topic, progress_topic=progress_topic)
    instance = dg.DagsterInstance.ephemeral()
    alerts_key = dg.AssetKey("alerts")
    selection = dg.AssetSelection.assets(alerts_key)

    def requested(cursor, minutes_after: int):
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            asset_selection=selection,
            evaluation_time=at(minutes_after),
            cursor=cursor,
        )
        return result, result.get_requested_partitions(alerts_key)

    result, partitions = requested(None, 15)
    assert partitions == set()  # nothing upstream yet
    _materialize(defs, instance, PIPELINE, partition_key=HOUR)
    result, partitions = requested(result.cursor, 16)
    assert partitions == {HOUR}
    # An old hour updated (a backfill) does not start alerts: only the two latest hours do.
    _materialize(defs, instance, PIPELINE, partition_key="2025-01-01-06:00")
    result, partitions = requested(result.cursor, 17)
    assert partitions == set()
    sensor = defs.resolve_sensor_def("alerts_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
