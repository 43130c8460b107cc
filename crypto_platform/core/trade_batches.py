"""Binance trade events in bulk: Kafka message values to the lake's Arrow table, vectorised.

The values are the trade events as :mod:`crypto_platform.core.trades` documents them::

    {"e":"trade","E":1754036957014,"s":"BTCUSDT","t":5124126132,"p":"114410.00000000",
     "q":"0.00010000","T":1754036957014,"m":true,"M":true}

Parsing one message at a time in Python would cap a read at a few ten thousand trades per
second, so a batch of values is joined into newline-delimited JSON and parsed by Arrow's C++
reader, and the decimal strings are cast to ``decimal128(18, 8)`` by Arrow (exact: a value that
does not fit is an error, never rounded). A bad value raises :class:`TradeBatchError` naming its
position in the batch, so the caller can name the Kafka offset; nothing is skipped silently.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from crypto_platform.core.trades import DECIMAL_INTEGER_DIGITS, DECIMAL_SCALE

DECIMAL_TYPE = pa.decimal128(DECIMAL_INTEGER_DIGITS + DECIMAL_SCALE, DECIMAL_SCALE)
TIME_TYPE = pa.timestamp("ms", tz="UTC")
JSON_BLOCK_BYTES = 16 * 1024 * 1024  # Arrow's default (1 MiB) parses at half the speed

LAKE_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("trade_id", pa.int64(), nullable=False),
        pa.field("price", DECIMAL_TYPE, nullable=False),
        pa.field("qty", DECIMAL_TYPE, nullable=False),
        pa.field("trade_time", TIME_TYPE, nullable=False),
        pa.field("event_time", TIME_TYPE, nullable=False),
        pa.field("buyer_is_maker", pa.bool_(), nullable=False),
    ]
)
"""The raw trades' columns, in the Parquet files and everywhere trades travel as Arrow."""

_WIRE_SCHEMA = pa.schema(
    [
        ("e", pa.string()),
        ("s", pa.string()),
        ("t", pa.int64()),
        ("p", pa.string()),
        ("q", pa.string()),
        ("T", pa.int64()),
        ("E", pa.int64()),
        ("m", pa.bool_()),
    ]
)
_WIRE_TO_LAKE = (
    ("s", "symbol"),
    ("t", "trade_id"),
    ("p", "price"),
    ("q", "qty"),
    ("T", "trade_time"),
    ("E", "event_time"),
    ("m", "buyer_is_maker"),
)


class TradeBatchError(ValueError):
    """Value number ``index`` of a batch is not a trade event; ``reason`` says why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"value #{index}: {reason}")
        self.index = index
        self.reason = reason


def empty_trades() -> pa.Table:
    return LAKE_SCHEMA.empty_table()


def parse_events(values: list[bytes]) -> pa.Table:
    """Trade event JSON values -> a table with :data:`LAKE_SCHEMA` (same order as ``values``)."""
    if not values:
        return empty_trades()
    lines = b"\n".join(values)
    if lines.count(b"\n") != len(values) - 1:
        # A raw newline can only be whitespace between JSON tokens (inside strings it is
        # escaped), so replacing it keeps each value on one line without changing its meaning.
        lines = b"\n".join(v.replace(b"\n", b" ") for v in values)
    options = pa_json.ParseOptions(explicit_schema=_WIRE_SCHEMA, unexpected_field_behavior="ignore")
    try:
        wire = pa_json.read_json(
            io.BytesIO(lines),
            read_options=pa_json.ReadOptions(use_threads=True, block_size=JSON_BLOCK_BYTES),
            parse_options=options,
        )
    except pa.ArrowInvalid as exc:
        raise _locate_bad_json(values, str(exc)) from None
    if wire.num_rows != len(values):
        raise _locate_bad_json(values, f"{wire.num_rows} rows parsed from {len(values)} values")
    return _to_lake(wire)


def _locate_bad_json(values: list[bytes], detail: str) -> TradeBatchError:
    for index, value in enumerate(values):
        try:
            if not isinstance(json.loads(value), dict):
                return TradeBatchError(index, f"not a JSON object: {value[:120]!r}")
        except (ValueError, UnicodeDecodeError) as exc:
            return TradeBatchError(index, f"malformed JSON ({exc}): {value[:120]!r}")
    return TradeBatchError(0, f"Arrow could not parse the batch: {detail[:300]}")


def _first_invalid(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def _to_lake(wire: pa.Table) -> pa.Table:
    if pc.unique(wire["e"]).to_pylist() != ["trade"]:
        not_trade = pc.invert(pc.fill_null(pc.equal(wire["e"], "trade"), False))
        index = _first_invalid(not_trade)
        raise TradeBatchError(index, f"event type {wire['e'][index].as_py()!r} is not 'trade'")
    for wire_name, lake_name in _WIRE_TO_LAKE:
        nulls = pc.is_null(wire[wire_name])
        if pc.any(nulls).as_py():
            raise TradeBatchError(_first_invalid(nulls), f"{wire_name!r} ({lake_name}) is missing")
    columns = {
        "symbol": wire["s"],
        "trade_id": wire["t"],
        "price": _decimals(wire["p"], "p"),
        "qty": _decimals(wire["q"], "q"),
        "trade_time": wire["T"].cast(TIME_TYPE),
        "event_time": wire["E"].cast(TIME_TYPE),
        "buyer_is_maker": wire["m"],
    }
    return pa.table(columns, schema=LAKE_SCHEMA)


def _decimals(strings: pa.ChunkedArray, key: str) -> pa.ChunkedArray:
    try:
        return pc.cast(strings, DECIMAL_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for index, text in enumerate(strings.to_pylist()):
            try:
                pc.cast(pa.array([text]), DECIMAL_TYPE)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                reason = f"{key!r}={text!r} is not a DECIMAL(18, 8): {exc}"
                raise TradeBatchError(index, reason) from None
        raise
