"""Property-based: arbitrary and near-valid frames through the trade parser.

Whatever the frame, the parser either returns a trade whose every value is plausible, or raises
:class:`TradeValidationError` with a known reason; nothing else escapes. What it accepts, the
lake's bulk parser (the Kafka -> Parquet path) reads to the same exact values.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto_platform.core.trade_batches import parse_events
from crypto_platform.core.trades import (
    MAX_FUTURE_SKEW_MS,
    MIN_TRADE_TIME_MS,
    Trade,
    TradeValidationError,
    parse_trade_frame,
)

pytestmark = pytest.mark.faults

NOW = 1_764_072_000_000
SUBSCRIBED = frozenset({"BTCUSDT", "ETHUSDT"})
REASONS = {
    "malformed_json",
    "not_an_object",
    "unknown_event",
    "bad_symbol",
    "unsubscribed_symbol",
    "bad_trade_id",
    "bad_trade_time",
    "bad_event_time",
    "bad_maker_flag",
    "bad_price",
    "bad_qty",
}
VALID = {
    "e": "trade",
    "E": NOW,
    "s": "BTCUSDT",
    "t": 5_124_126_132,
    "p": "114410.00000000",
    "q": "0.00010000",
    "T": NOW,
    "m": True,
    "M": True,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
decimal_text = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["0", "-0.0", "-1", "NaN", "inf", "-Infinity", "1e400", "1E-9", " 1", "1_0"]),
    st.sampled_from(["9999999999.99999999", "10000000000", "0.000000001", "0.00000001", "1e2"]),
    st.text(max_size=35),
)
field_values = {
    "e": st.sampled_from(["trade", "aggTrade", "", "TRADE"]) | json_values,
    "s": st.sampled_from(["BTCUSDT", "ETHUSDT", "XRPUSDT", "btcusdt", "BTC-USDT", ""])
    | json_values,
    "t": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
    "p": decimal_text | json_values,
    "q": decimal_text | json_values,
    "T": st.integers(min_value=-(2**64), max_value=2**64)
    | st.sampled_from([0, MIN_TRADE_TIME_MS - 1, NOW + MAX_FUTURE_SKEW_MS + 1])
    | json_values,
    "E": st.integers() | json_values,
    "m": st.booleans() | json_values,
}
near_valid = st.fixed_dictionaries(
    {},
    optional={key: values for key, values in field_values.items()},
).map(lambda changes: {**VALID, **changes})
with_deletions = st.tuples(near_valid, st.sets(st.sampled_from(sorted(VALID)))).map(
    lambda pair: {k: v for k, v in pair[0].items() if k not in pair[1]}
)


def _check(frame: str | bytes) -> Trade | None:
    try:
        trade = parse_trade_frame(frame, SUBSCRIBED, now_ms=NOW)
    except TradeValidationError as exc:
        assert exc.reason in REASONS, exc.reason
        return None
    assert trade.symbol in SUBSCRIBED
    assert trade.trade_id >= 0
    assert MIN_TRADE_TIME_MS <= trade.trade_time_ms <= NOW + MAX_FUTURE_SKEW_MS
    for value in (trade.price, trade.qty):
        assert value.is_finite() and Decimal(0) < value < Decimal(10) ** 10
        assert value == value.quantize(Decimal("0.00000001"))
    return trade


def _agrees_with_the_bulk_parser(frame: str, trade: Trade) -> None:
    """The Kafka -> Parquet path reads the same exact values from the same event."""
    event = json.loads(frame)
    event = event.get("data", event) if "stream" in event else event
    table = parse_events([json.dumps(event).encode()])
    row = table.to_pylist()[0]
    assert (row["symbol"], row["trade_id"]) == (trade.symbol, trade.trade_id)
    assert (row["price"], row["qty"]) == (trade.price, trade.qty)
    assert isinstance(table, pa.Table)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_frames_never_raise_anything_else(frame) -> None:
    _check(frame)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(with_deletions, st.booleans())
def test_near_valid_events_are_accepted_only_when_every_value_is_plausible(
    event: dict, combined: bool
) -> None:
    message = {"stream": "btcusdt@trade", "data": event} if combined else event
    try:
        frame = json.dumps(message)
    except (ValueError, TypeError):
        return  # not representable as JSON text (e.g. NaN floats are, but keys must be str)
    trade = _check(frame)
    if trade is not None:
        _agrees_with_the_bulk_parser(frame, trade)


@pytest.mark.parametrize(
    "event",
    [
        {k: v for k, v in VALID.items() if k != "E"},
        {**VALID, "E": -62_135_596_800_001},
        {**VALID, "E": 2**64},
    ],
    ids=["missing", "year-0", "past-int64"],
)
def test_an_implausible_or_missing_event_time_is_rejected(event: dict) -> None:
    """Found by the property above: ingestion accepted events without ``E`` (taking ``T``) or
    with any integer ``E``; the Kafka -> Parquet reader then refused them (or stored a time no
    reader can convert), failing every later run of that hour."""
    with pytest.raises(TradeValidationError) as info:
        parse_trade_frame(json.dumps(event), SUBSCRIBED, now_ms=NOW)
    assert info.value.reason == "bad_event_time"
