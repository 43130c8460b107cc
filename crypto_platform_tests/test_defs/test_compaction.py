"""Daily compaction through Dagster, and analytics rebuilt from the Parquet lake alone."""

import pytest

from crypto_platform.core import lake
from crypto_platform.definitions import build_definitions
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_defs.test_assets import materialisations, simulated

pytestmark = pytest.mark.kafka

M = 60_000
H = 3_600_000
DAY = 1_764_028_800_000  # 2025-11-25 00:00 UTC
START = DAY + 12 * H - 3 * M  # 11:57, so the trades span two hours


def test_a_day_is_compacted_and_analytics_rebuild_from_the_lake_alone(platform: Platform) -> None:
    trades = simulated(6, start_ms=START)
    platform.produce(trades)
    assert platform.backfill(DAY + 11 * H, DAY + 12 * H).success
    rows = platform.analytics()
    before = lake.read_trades(platform.lake, DAY, DAY + 24 * H)
    assert len(lake.minute_files(platform.lake, DAY, DAY + 24 * H)) == 12

    job = platform.defs.resolve_job_def("raw_trades_daily_job")
    result = job.execute_in_process(partition_key="2025-11-25", instance=platform.instance)
    (done,) = materialisations(result, "raw_trades_daily")
    assert done.metadata["minute_files_merged"].value == 12
    assert done.metadata["rows_per_symbol"].value == {
        s: sum(1 for t in trades if t.symbol == s) for s in ("BTCUSDT", "ETHUSDT")
    }
    assert not lake.minute_files(platform.lake, DAY, DAY + 24 * H)
    assert lake.daily_file(platform.lake, "BTCUSDT", DAY).exists()
    assert lake.read_trades(platform.lake, DAY, DAY + 24 * H).equals(before)

    # Kafka is gone (a topic that does not exist): the analytics come from Parquet only.
    platform.database.unlink()
    offline = build_definitions(platform.settings, trades_topic="gone", progress_topic="gone")
    rebuilt = Platform(platform.settings, offline, platform.instance, platform.bootstrap, "", "")
    assert rebuilt.backfill(DAY + 11 * H, DAY + 12 * H, selection=["trade_analytics_1m"]).success
    assert platform.analytics() == rows
