from decimal import Decimal

import pytest

from crypto_platform.core.trades import (
    TradeValidationError,
    ms_to_datetime,
    parse_trade_event,
    parse_trade_frame,
    trade_to_event,
)

NOW_MS = 1_754_036_960_000
SEED_EVENT = {
    "e": "trade",
    "E": 1754036957014,
    "s": "BTCUSDT",
    "t": 5124126132,
    "p": "114410.00000000",
    "q": "0.00010000",
    "T": 1754036957014,
    "m": True,
    "M": True,
}


def test_the_seed_example_parses_exactly() -> None:
    trade = parse_trade_event(SEED_EVENT, now_ms=NOW_MS)
    assert trade.symbol == "BTCUSDT"
    assert trade.trade_id == 5124126132
    assert trade.price == Decimal("114410.00000000")
    assert trade.qty == Decimal("0.0001")
    assert trade.quote_qty == Decimal("11.441")
    assert trade.buyer_is_maker is True and trade.is_taker_buy is False
    assert ms_to_datetime(trade.trade_time_ms).isoformat() == "2025-08-01T08:29:17.014000+00:00"


def test_combined_stream_envelope_is_unwrapped() -> None:
    import json

    frame = json.dumps({"stream": "btcusdt@trade", "data": SEED_EVENT})
    assert parse_trade_frame(frame, now_ms=NOW_MS) == parse_trade_event(SEED_EVENT, now_ms=NOW_MS)


def test_trailing_zeros_beyond_eight_decimals_are_fine() -> None:
    trade = parse_trade_event({**SEED_EVENT, "q": "0.0001000000000"}, now_ms=NOW_MS)
    assert trade.qty == Decimal("0.0001")


def test_round_trip_keeps_the_decimal_strings() -> None:
    event = trade_to_event(parse_trade_event(SEED_EVENT, now_ms=NOW_MS))
    assert event == SEED_EVENT


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"e": "aggTrade"}, "unknown_event"),
        ({"s": "btcusdt"}, "bad_symbol"),
        ({"s": "ETHUSDT"}, "unsubscribed_symbol"),
        ({"t": "5"}, "bad_trade_id"),
        ({"t": True}, "bad_trade_id"),
        ({"p": "0"}, "bad_price"),
        ({"p": "-1.5"}, "bad_price"),
        ({"p": "NaN"}, "bad_price"),
        ({"p": "Infinity"}, "bad_price"),
        ({"p": 114410.0}, "bad_price"),
        ({"q": "abc"}, "bad_qty"),
        ({"q": "1" * 40}, "bad_qty"),
        ({"q": "10000000000"}, "bad_qty"),
        ({"p": "1.000000001"}, "bad_price"),
        # Decimal() takes these, the Kafka -> Parquet reader (Arrow's cast) does not
        ({"p": " 1"}, "bad_price"),
        ({"p": "1e5"}, "bad_price"),
        ({"p": "1_000"}, "bad_price"),
        ({"p": "+1"}, "bad_price"),
        ({"q": "\uff11"}, "bad_qty"),  # a full-width 1
        ({"T": 1000}, "bad_trade_time"),
        ({"T": NOW_MS + 2 * 24 * 3600 * 1000}, "bad_trade_time"),
        ({"E": "x"}, "bad_event_time"),
        ({"m": "true"}, "bad_maker_flag"),
    ],
)
def test_invalid_fields_are_rejected_with_a_reason(change: dict, reason: str) -> None:
    with pytest.raises(TradeValidationError) as info:
        parse_trade_event({**SEED_EVENT, **change}, symbols=frozenset({"BTCUSDT"}), now_ms=NOW_MS)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("frame", "reason"),
    [("{not json", "malformed_json"), ("[1, 2]", "not_an_object"), (b"\xff\xfe", "malformed_json")],
)
def test_malformed_frames_are_rejected(frame: str | bytes, reason: str) -> None:
    with pytest.raises(TradeValidationError) as info:
        parse_trade_frame(frame, now_ms=NOW_MS)
    assert info.value.reason == reason
