"""How far in Kafka earlier reads of an hour went, so that a later read goes at least as far.

A read of some minutes stops once every Kafka partition is past the range's end plus a bounded
lateness (by trade time). A trade delivered much later than that (after an outage, by a gap
fill) can sit further along the partition; the micro-batch run that the progress marks trigger
reads far enough to see it, and records here the end offset it reached per partition. A later
read of the same hour (a backfill) continues at least to those offsets, so it sees every trade
any earlier read saw and writes the same files.

File: ``<lake>/_state/kafka_reads/date=YYYY-MM-DD/hour=HH.json``::

    {"topic": "trades", "end_offsets": {"0": 1234, "1": 987}}
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

STATE_DIR = "_state"


def marks_file(root: Path, hour_ms: int) -> Path:
    at = datetime.fromtimestamp(hour_ms / 1000, tz=UTC)
    return root / STATE_DIR / "kafka_reads" / f"date={at:%Y-%m-%d}" / f"hour={at:%H}.json"


def load_end_offsets(root: Path, hour_ms: int, topic: str) -> dict[int, int]:
    """End offsets (exclusive) earlier reads of this hour reached, per partition; {} if none."""
    path = marks_file(root, hour_ms)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); delete it to reset") from None
    if data.get("topic") != topic:
        return {}
    return {int(p): int(o) for p, o in data.get("end_offsets", {}).items()}


def record_end_offsets(root: Path, hour_ms: int, topic: str, end_offsets: dict[int, int]) -> None:
    """Merge ``end_offsets`` into the hour's marks (keeping the furthest), atomically."""
    merged = load_end_offsets(root, hour_ms, topic)
    for partition, offset in end_offsets.items():
        merged[partition] = max(offset, merged.get(partition, 0))
    path = marks_file(root, hour_ms)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"topic": topic, "end_offsets": {str(p): merged[p] for p in sorted(merged)}}
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(json.dumps(body, indent=1))
    os.replace(temporary, path)
