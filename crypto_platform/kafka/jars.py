"""Fetch Apache Kafka's jars from Maven Central into a git-ignored cache.

There is no Kafka tarball here: Maven resolves ``org.apache.kafka:kafka_2.13`` and friends (see
``resources/pom.xml``) into one flat folder, and the broker runs as ``java -cp '<folder>/*'``.
A marker file records a complete fetch, so a second call costs nothing.
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


def kafka_version() -> str:
    """The Kafka version the POM pins (one source of truth)."""
    pom = resource_path("pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    if match is None:  # pragma: no cover - the shipped POM always has it
        raise RuntimeError("pom.xml has no <kafka.version>")
    return match.group(1)


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


def ensure_kafka_jars(cache_dir: Path) -> Path:
    """Make sure the broker's jars are in the cache; fetch them with Maven if not."""
    target = libs_dir(cache_dir)
    if (target / _COMPLETE_MARKER).exists():
        return target
    mvn = require_tool("mvn", "Kafka's jars come from Maven Central through Maven: install maven.")
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn, "-B", "-q", "-f", str(resource_path("pom.xml")),
        "dependency:copy-dependencies", f"-DoutputDirectory={target}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"Maven could not fetch Kafka's jars into {target}:\n{tail}")
    if not list(target.glob("kafka_2.13-*.jar")):
        raise RuntimeError(f"Maven finished but {target} holds no kafka_2.13 jar")
    (target / _COMPLETE_MARKER).write_text("\n".join(sorted(p.name for p in target.glob("*.jar"))))
    return target
