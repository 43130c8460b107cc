"""Fetch Apache Kafka's jars from Maven Central into a git-ignored cache.

There is no Kafka tarball here: Maven resolves ``org.apache.kafka:kafka_2.13`` and friends (see
``resources/pom.xml``) into one flat folder, and the broker runs as ``java -cp '<folder>/*'``.
A marker file records a complete fetch, so a second call costs nothing. The same fetch
(:func:`fetch_maven_jars`) brings Spark's Kafka connector (``crypto_platform/spark``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

MAVEN_TIMEOUT_S = 900
_COMPLETE_MARKER = ".complete"


class ToolMissingError(RuntimeError):
    """Java or Maven is not installed; the message says how to get it."""


def resource_path(name: str) -> Path:
    """Path of a file shipped in ``crypto_platform/kafka/resources``."""
    return Path(str(resources.files("crypto_platform.kafka") / "resources" / name))


def pom_property(pom: Path, name: str) -> str:
    """A ``<properties>`` value of a POM, e.g. the version it pins (one source of truth)."""
    match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", pom.read_text())
    if match is None:
        raise RuntimeError(f"{pom} has no <{name}>")
    return match.group(1)


def kafka_version() -> str:
    """The Kafka version the POM pins (one source of truth)."""
    return pom_property(resource_path("pom.xml"), "kafka.version")


def require_tool(name: str, hint: str) -> str:
    """Return the path of an executable, or raise :class:`ToolMissingError` with ``hint``."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"'{name}' was not found on PATH. {hint}")
    return path


def require_java() -> str:
    return require_tool("java", "Kafka 4 needs Java 17 or later: install a JDK (e.g. openjdk-17).")


def libs_dir(cache_dir: Path) -> Path:
    return cache_dir.resolve() / f"kafka-{kafka_version()}" / "libs"


def fetch_maven_jars(
    pom: Path, target: Path, expected_glob: str, what: str, global_settings: Path | None = None
) -> Path:
    """Copy the runtime jars of ``pom`` into ``target`` with Maven, once.

    ``expected_glob`` names a jar that must be there afterwards; ``what`` names the jars in
    errors ("Kafka's jars"); ``global_settings`` is passed as ``mvn -gs`` (the user's own
    settings still apply). A marker file listing the jars records a complete fetch, so a
    second call costs nothing and an interrupted one is simply redone.
    """
    if (target / _COMPLETE_MARKER).exists():
        return target
    mvn = require_tool(
        "mvn",
        f"{what} are not in {target} yet; they come from Maven Central through Maven: "
        "install Maven (on Debian: apt-get install maven) and run the command again.",
    )
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn, "-B", "-q", "-f", str(pom),
        "dependency:copy-dependencies", f"-DoutputDirectory={target}",
    ]  # fmt: skip
    if global_settings is not None:
        cmd[1:1] = ["-gs", str(global_settings)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"Maven could not fetch {what} into {target}:\n{tail}")
    if not list(target.glob(expected_glob)):
        raise RuntimeError(f"Maven finished but {target} holds no {expected_glob}")
    (target / _COMPLETE_MARKER).write_text("\n".join(sorted(p.name for p in target.glob("*.jar"))))
    return target


def ensure_kafka_jars(cache_dir: Path) -> Path:
    """Make sure the broker's jars are in the cache; fetch them with Maven if not."""
    return fetch_maven_jars(
        resource_path("pom.xml"), libs_dir(cache_dir), "kafka_2.13-*.jar", "Kafka's jars"
    )
