"""The lake, window and planning logic load neither Dagster nor the Kafka client."""

import subprocess
import sys

MODULES = ["windows", "lake", "trade_batches", "read_marks", "compaction", "minute_plan"]


def test_core_modules_import_no_dagster_and_no_kafka_client() -> None:
    code = (
        "import sys\n"
        + "".join(f"import crypto_platform.core.{m}\n" for m in MODULES)
        + "print(sorted(m for m in ('dagster', 'confluent_kafka') if m in sys.modules))"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
