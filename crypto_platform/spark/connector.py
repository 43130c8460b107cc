"""Spark's Kafka connector: jars from Maven Central into the cache, handed to Spark as local jars.

pyspark ships no Kafka source. ``resources/pom.xml`` names ``spark-sql-kafka-0-10`` for the
Spark and Scala version of the ``spark`` extra; Maven copies it and its runtime dependencies
that pyspark lacks (token provider, kafka-clients, commons-pool2) into
``<cache>/spark-kafka-<version>/libs``. Spark gets them as an explicit ``spark.jars`` list (a
glob would reach the driver only), so nothing is downloaded when a job starts.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from crypto_platform.kafka.jars import fetch_maven_jars, pom_property


class ConnectorVersionError(RuntimeError):
    """The installed pyspark and the connector the POM pins are different Spark versions."""


def _resource(name: str) -> Path:
    return Path(str(resources.files("crypto_platform.spark") / "resources" / name))


def connector_pom() -> Path:
    return _resource("pom.xml")


def connector_version() -> str:
    """The Spark version of the connector the POM pins; it must equal pyspark's."""
    return pom_property(connector_pom(), "spark.version")


def connector_dir(cache_dir: Path) -> Path:
    return cache_dir.resolve() / f"spark-kafka-{connector_version()}" / "libs"


def ensure_connector_jars(cache_dir: Path) -> list[Path]:
    """The connector's jars, fetched with Maven the first time; sorted, for ``spark.jars``."""
    folder = fetch_maven_jars(
        connector_pom(),
        connector_dir(cache_dir),
        "spark-sql-kafka-0-10_*.jar",
        "Spark's Kafka connector jars",
        # Spark's parent POM names Google's mirror first: fetch from Maven Central only
        global_settings=_resource("maven-settings.xml"),
    )
    return sorted(folder.glob("*.jar"))


def check_pyspark_version() -> str:
    """Raise :class:`ConnectorVersionError` unless pyspark is the connector's Spark version.

    A connector from another Spark release fails deep inside a running query (missing
    classes or methods); saying so at start-up is kinder.
    """
    try:
        import pyspark
    except ImportError:
        raise ConnectorVersionError(
            "pyspark is not installed: pip install 'crypto-platform[spark]' (or `make setup`)"
        ) from None
    wanted = connector_version()
    if pyspark.__version__ != wanted:
        raise ConnectorVersionError(
            f"pyspark {pyspark.__version__} is installed but the Kafka connector is for Spark "
            f"{wanted}: pip install 'pyspark=={wanted}'"
        )
    return wanted
