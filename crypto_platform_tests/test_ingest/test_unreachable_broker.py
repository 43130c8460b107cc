"""``crypto-platform ingest`` when Kafka is not there: a clear error, exit 1, in bounded time.

Nobody listens on the broker's port (a free loopback port), and the delivery bound is short, so
the service gives up after it instead of hanging; the message names the broker it tried and
what to do, for the local broker and for a cluster of one's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_platform.kafka.broker import free_port
from crypto_platform_tests.conftest import LOOPBACK_NOWHERE, REPO_ROOT

DELIVERY_TIMEOUT_S = 5  # the smallest the setting allows


@pytest.mark.parametrize(
    ("broker_env", "advice"),
    [
        (
            "CRYPTO_PLATFORM_KAFKA_PORT",
            "Start the local broker with `crypto-platform kafka start`.",
        ),
        ("KAFKA_BOOTSTRAP_SERVERS", "Check KAFKA_BOOTSTRAP_SERVERS and that the cluster is up."),
    ],
)
def test_ingest_against_an_unreachable_broker_says_so_and_exits_1(
    tmp_path: Path, broker_env: str, advice: str
) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CRYPTO_PLATFORM_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env |= LOOPBACK_NOWHERE | {
        broker_env: str(port) if broker_env.endswith("PORT") else f"127.0.0.1:{port}",
        "CRYPTO_PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "CRYPTO_PLATFORM_INGEST_DELIVERY_TIMEOUT_SECONDS": str(DELIVERY_TIMEOUT_S),
    }
    stats = tmp_path / "stats.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "crypto_platform", "ingest", "--stats-json", str(stats)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # the bound under test is 5 s; this only keeps a hang from stalling the suite
    )
    assert result.returncode == 1, result.stderr
    # librdkafka's own threads print connection failures to stderr too, even after ours
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    (error,) = errors
    assert error.startswith(
        f"error: Kafka at 127.0.0.1:{port} did not answer within {DELIVERY_TIMEOUT_S}s "
        "(INGEST_DELIVERY_TIMEOUT_SECONDS; "
    )
    assert error.endswith(advice)
    assert "Traceback" not in result.stderr
    assert stats.read_text() == ""  # no status was written: nothing ran
