"""Answers as an aligned table (for people), CSV or JSON (for programs).

Times print in ISO 8601 with their UTC offset. In tables, floats show up to 8 decimals (Binance's
precision) without trailing zeros; CSV and JSON carry the full double. JSON carries DECIMAL values
as strings so nothing is rounded on the way, and NaN or infinity as null.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from tabulate import tabulate

from crypto_platform.query.questions import Answer

FORMATS = ("table", "csv", "json")


def _text(value: Any) -> str:
    """One cell as text, for tables and CSV."""
    if value is None:
        return ""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _table_cell(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        text = f"{value:.8f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return _text(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Decimal | timedelta):
        return str(value)
    return str(value)


def _is_numeric(answer: Answer, index: int) -> bool:
    values = [row[index] for row in answer.rows if row[index] is not None]
    return bool(values) and all(
        isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values
    )


def render(answer: Answer, fmt: str) -> str:
    """The answer in ``fmt`` (one of :data:`FORMATS`), ending with a newline."""
    if fmt == "json":
        records = [
            {col: _json_value(v) for col, v in zip(answer.columns, row, strict=True)}
            for row in answer.rows
        ]
        return json.dumps(records, indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(answer.columns)
        writer.writerows([[_text(v) for v in row] for row in answer.rows])
        return buffer.getvalue()
    if fmt == "table":
        if not answer.rows:
            return "(no rows)\n" if answer.columns else "(no result)\n"
        align = ["right" if _is_numeric(answer, i) else "left" for i in range(len(answer.columns))]
        rows = [[_table_cell(v) for v in row] for row in answer.rows]
        table = tabulate(rows, headers=answer.columns, disable_numparse=True, colalign=align)
        return f"{table}\n({len(rows)} row{'s' if len(rows) != 1 else ''})\n"
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
