"""Trade frames to Kafka values: the fast path for the frames Binance sends, the exact one for all.

A frame is the event itself (``/ws/...``) or the combined-stream envelope
``{"stream":"btcusdt@trade","data":{...event...}}``; the Kafka value is the event byte for byte as
Binance sent it.

:func:`decode_plain` handles the common case with orjson and
:func:`~crypto_platform.core.trades.plain_trade_fields`, about four times cheaper than ``json`` and
:func:`~crypto_platform.core.trades.parse_trade_event`. It answers only when its answer is the
exact path's answer, else None: orjson differs from ``json`` at the edges (integers beyond 64 bits
become floats, ``NaN``, lone surrogates, a UTF-8 BOM or UTF-16 input are refused), so a frame it
parses is accepted only if every validated field has its exact JSON type and the value is a slice
of the frame (never re-encoded from the parsed dict). Everything else, valid or not, takes the
service's exact path, which gives the DLQ reason.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from crypto_platform.core.trades import plain_trade_fields, unwrap_stream_envelope

DATA_KEY = b',"data":'

PlainTrade = tuple[tuple[str, int, int, int], bytes]  # (symbol, id, trade time, event time), value


def event_slice(frame: bytes, message: dict[str, Any], event: dict[str, Any]) -> bytes | None:
    """The event's bytes within the frame, or None when they cannot be cut out of it.

    Only an envelope with one ``,"data":`` in it is cut: with a repeated ``data`` key the parser
    keeps the last one, and a cut from the first would put the other object (or not even JSON)
    into Kafka. (Inside a JSON string a quote is always escaped, so the bytes ``,"data":`` can
    only be a key.)
    """
    if event is message:
        return frame
    start = frame.find(DATA_KEY)
    if (
        len(message) == 2
        and list(message)[-1] == "data"
        and start > 0
        and frame.find(DATA_KEY, start + 1) < 0
    ):
        body = frame[start + len(DATA_KEY) :].rstrip()
        if body.startswith(b"{") and body.endswith(b"}}"):
            return body[:-1]
    return None


def inner_event_bytes(frame: bytes, message: dict[str, Any], event: dict[str, Any]) -> bytes:
    """The ``data`` object of a combined-stream frame, byte for byte as Binance sent it."""
    value = event_slice(frame, message, event)
    return json.dumps(event, separators=(",", ":")).encode() if value is None else value


def _keys_in(frame: bytes) -> int:
    """How many object keys a frame without backslashes has: each is a string followed by
    ``":`` (a string value is followed by ``,``, ``}`` or ``]``, never by a colon)."""
    return frame.count(b'":')


def decode_plain(frame: bytes, symbols: frozenset[str], now_ms: int) -> PlainTrade | None:
    """The trade's key fields and Kafka value, if the frame is a plainly valid trade; else None.

    A plain frame has no backslash (so no escaped key can hide a ``data`` or a ``t``) and no
    repeated key (its ``":`` count equals the keys orjson kept: a repeated key, which orjson
    keeps the last of and Arrow refuses, shows as one key too many).
    """
    if b"\\" in frame:
        return None
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if type(message) is not dict:
        return None
    event = unwrap_stream_envelope(message)
    if _keys_in(frame) != len(message) + (0 if event is message else len(event)):
        return None
    fields = plain_trade_fields(event, symbols, now_ms)
    if fields is None:
        return None
    value = event_slice(frame, message, event)
    return None if value is None else (fields, value)
