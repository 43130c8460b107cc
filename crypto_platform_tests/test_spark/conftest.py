"""One local Spark session for the Spark tests (a JVM start costs seconds), on the real jars.

The session is the job's own (``build_session``: local[2], 1g driver, two shuffle partitions,
UI off, loopback, UTC) with the Kafka connector fetched from Maven Central into ``.cache``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto_platform_tests.conftest import REPO_ROOT

CACHE_DIR = REPO_ROOT / ".cache"


@pytest.fixture(scope="session")
def connector_jars() -> list[Path]:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    from crypto_platform.spark.connector import check_pyspark_version, ensure_connector_jars

    check_pyspark_version()
    return ensure_connector_jars(CACHE_DIR)


@pytest.fixture(scope="session")
def spark_session(connector_jars: list[Path]) -> Iterator[object]:
    from crypto_platform.spark.job import build_session

    spark = build_session("local[2]", connector_jars)
    yield spark
    spark.stop()
