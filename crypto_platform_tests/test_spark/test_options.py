"""What a run of the Spark job is set up with: defaults, Spark settings, the connector's version."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from crypto_platform.settings import Settings
from crypto_platform.spark import connector
from crypto_platform.spark.options import options_from_settings
from crypto_platform_tests.conftest import REPO_ROOT
from crypto_platform_tests.test_spark.conftest import CACHE_DIR


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTO_PLATFORM_")}
    env["CRYPTO_PLATFORM_CACHE_DIR"] = str(CACHE_DIR)
    return subprocess.run(
        [sys.executable, "-m", "crypto_platform", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", kafka_bootstrap_servers="10.1.2.3:9092", **values)


def test_defaults_come_from_the_platform_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, grace_seconds=7.5)
    options = options_from_settings(settings)
    assert options.lateness_seconds == 7.5  # the Dagster path's grace
    assert options.bootstrap_servers == "10.1.2.3:9092"
    assert options.output == (tmp_path / "data" / "analytics.duckdb").resolve()
    assert options.checkpoint_dir == (tmp_path / "data" / "spark" / "checkpoints" / "duckdb")
    assert options.topic == "trades" and not options.available_now


def test_each_sink_has_its_own_output_and_checkpoint(tmp_path: Path) -> None:
    options = options_from_settings(_settings(tmp_path), sink="parquet", lateness_seconds=0)
    assert options.lateness_seconds == 0  # an explicit 0 is kept, not replaced by the default
    assert options.output == (tmp_path / "data" / "spark" / "trade_analytics_1m").resolve()
    assert options.checkpoint_dir.name == "parquet"
    with pytest.raises(ValueError, match="unknown sink 'csv'"):
        options_from_settings(_settings(tmp_path), sink="csv")  # type: ignore[arg-type]


def test_local_sessions_are_lean_and_on_loopback() -> None:
    pytest.importorskip("pyspark")
    from crypto_platform.spark.job import session_config

    config = session_config("local[2]", [Path("/j/a.jar"), Path("/j/b.jar")])
    assert config["spark.master"] == "local[2]"
    assert config["spark.jars"] == "/j/a.jar,/j/b.jar"  # an explicit list, not a glob
    assert config["spark.driver.memory"] == "1g"
    assert config["spark.sql.shuffle.partitions"] == "2"
    assert config["spark.ui.enabled"] == "false"
    assert config["spark.driver.bindAddress"] == config["spark.driver.host"] == "127.0.0.1"
    assert config["spark.sql.session.timeZone"] == "UTC"
    submitted = session_config(None, None)  # under spark-submit: its master, its jars
    assert "spark.master" not in submitted and "spark.jars" not in submitted
    assert submitted["spark.sql.session.timeZone"] == "UTC"


def test_the_connector_is_for_the_installed_spark_and_scala() -> None:
    pyspark = pytest.importorskip("pyspark")
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["optional-dependencies"]["spark"] == [
        f"pyspark=={connector.connector_version()}"
    ]
    assert pyspark.__version__ == connector.connector_version()
    scala = next((Path(pyspark.__file__).parent / "jars").glob("scala-library-*.jar"))
    assert scala.name.startswith("scala-library-2.13.")
    assert "spark-sql-kafka-0-10_2.13" in connector.connector_pom().read_text()


def test_a_connector_for_another_spark_is_refused_at_start(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("pyspark")
    pom = tmp_path / "pom.xml"
    pom.write_text("<properties><spark.version>9.9.9</spark.version></properties>")
    monkeypatch.setattr(connector, "connector_pom", lambda: pom)
    with pytest.raises(connector.ConnectorVersionError, match=r"pip install 'pyspark==9.9.9'"):
        connector.check_pyspark_version()


def test_spark_fetch_prints_the_jars_for_spark_submit(connector_jars: list[Path]) -> None:
    result = _cli("spark", "fetch")
    assert result.returncode == 0, result.stderr
    jars = [Path(p) for p in result.stdout.strip().split(",")]
    assert jars == connector_jars and all(j.is_file() for j in jars)
    names = " ".join(j.name for j in jars)
    for artifact in ("spark-sql-kafka-0-10_2.13-", "spark-token-provider-kafka", "kafka-clients-"):
        assert artifact in names
    assert "commons-pool2-" in names and len(jars) == 4  # and no Hadoop, no slf4j


def test_a_bad_option_is_a_usage_error() -> None:
    result = _cli("spark", "--sink", "csv")
    assert result.returncode == 2
    assert "'csv' is not one of 'duckdb', 'parquet'" in result.stderr
