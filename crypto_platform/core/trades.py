"""Binance trade events: the wire format, validation, and exact values.

A trade event as Binance's ``<symbol>@trade`` stream sends it (spot; the combined-stream endpoint
wraps it as ``{"stream": "btcusdt@trade", "data": {...}}``)::

    {
      "e": "trade",           // event type
      "E": 1754036957014,     // event time, epoch ms (exchange clock when the event was pushed)
      "s": "BTCUSDT",         // symbol, upper case
      "t": 5124126132,        // trade id, increasing by 1 per symbol
      "p": "114410.00000000", // price, a decimal string
      "q": "0.00010000",      // quantity, a decimal string
      "T": 1754036957014,     // trade time, epoch ms: the clock every window uses
      "m": true,              // is the buyer the market maker? true = the taker sold
      "M": true               // ignore
    }

Prices and quantities stay exact (``Decimal`` from the string Binance sent); the platform's
Kafka messages carry the event as received, so nothing is rounded before Parquet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# Trade times outside these bounds are garbage, not trades: before Binance existed, or years ahead.
MIN_TRADE_TIME_MS = 1_483_228_800_000  # 2017-01-01
MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000  # a day ahead of the local clock
MAX_DECIMAL_DIGITS = 30
# Binance quotes prices and quantities with at most 8 decimals; values below 10^10 fit the
# exact DECIMAL(18, 8) columns of the lake, whose sums are then exact in DuckDB and Spark alike.
DECIMAL_SCALE = 8
DECIMAL_INTEGER_DIGITS = 10
_DECIMAL_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
MAX_TRADE_ID = 2**63 - 1  # the lake's trade_id is int64


class TradeValidationError(ValueError):
    """A frame is not a valid trade; ``reason`` is a short machine-friendly label for the DLQ."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Trade:
    """One validated spot trade."""

    symbol: str
    trade_id: int
    price: Decimal
    qty: Decimal
    trade_time_ms: int
    event_time_ms: int
    buyer_is_maker: bool

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty

    @property
    def is_taker_buy(self) -> bool:
        """Binance's convention: the taker bought when the buyer is *not* the maker."""
        return not self.buyer_is_maker


def ms_to_datetime(ms: int) -> datetime:
    """Epoch milliseconds (Binance's unit for ``T`` and ``E``) to an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    """Aware datetime to epoch milliseconds; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def unwrap_stream_envelope(message: dict[str, Any]) -> dict[str, Any]:
    """Return the event of a combined-stream frame (``{"stream", "data"}``) or the frame itself."""
    if "stream" in message and isinstance(message.get("data"), dict):
        return message["data"]
    return message


def _positive_decimal(event: dict[str, Any], key: str, name: str) -> Decimal:
    raw = event.get(key)
    if not isinstance(raw, str):
        raise TradeValidationError(f"bad_{name}", f"{key!r} must be a decimal string, got {raw!r}")
    if len(raw) > MAX_DECIMAL_DIGITS:
        raise TradeValidationError(f"bad_{name}", f"{key!r} is too long: {raw[:40]!r}")
    # Binance sends plain ASCII decimals ("114410.00000000"). ``Decimal`` would also take
    # " 1", "1e5", "1_0" or full-width digits, which the Kafka -> Parquet reader (Arrow's exact
    # cast) refuses: one such trade in Kafka would stop every run of its hour.
    if _DECIMAL_TEXT.fullmatch(raw) is None:
        raise TradeValidationError(f"bad_{name}", f"{key!r} is not a plain decimal: {raw!r}")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise TradeValidationError(f"bad_{name}", f"{key!r} is not a decimal: {raw!r}") from None
    if not value.is_finite() or value <= 0:
        raise TradeValidationError(f"bad_{name}", f"{key!r} must be positive, got {raw!r}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite values have an integer exponent
    if -exponent > DECIMAL_SCALE and value != value.quantize(Decimal(1).scaleb(-DECIMAL_SCALE)):
        raise TradeValidationError(f"bad_{name}", f"{key!r} has more than 8 decimals: {raw!r}")
    if value >= Decimal(10) ** DECIMAL_INTEGER_DIGITS:
        raise TradeValidationError(f"bad_{name}", f"{key!r} is implausibly large: {raw!r}")
    return value


def _integer(event: dict[str, Any], key: str, reason: str) -> int:
    raw = event.get(key)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TradeValidationError(reason, f"{key!r} must be an integer, got {raw!r}")
    return raw


def parse_trade_event(
    event: dict[str, Any], symbols: frozenset[str] | None = None, now_ms: int | None = None
) -> Trade:
    """Validate one Binance trade event (already unwrapped) and return it as a :class:`Trade`.

    ``symbols`` (upper case) restricts which symbols are accepted; ``now_ms`` bounds how far in
    the future a trade time may be. Raises :class:`TradeValidationError` naming what is wrong.
    """
    if not isinstance(event, dict):
        raise TradeValidationError("not_an_object", f"expected a JSON object, got {type(event)}")
    if event.get("e") != "trade":
        raise TradeValidationError("unknown_event", f"event type {event.get('e')!r} is not 'trade'")
    symbol = event.get("s")
    if not isinstance(symbol, str) or not symbol.isalnum() or not symbol.isupper():
        raise TradeValidationError(
            "bad_symbol", f"'s' must be an upper-case symbol, got {symbol!r}"
        )
    if symbols is not None and symbol not in symbols:
        raise TradeValidationError("unsubscribed_symbol", f"{symbol} is not subscribed")
    trade_id = _integer(event, "t", "bad_trade_id")
    if not 0 <= trade_id <= MAX_TRADE_ID:
        raise TradeValidationError("bad_trade_id", f"'t' must be in [0, 2**63), got {trade_id}")
    trade_time = _integer(event, "T", "bad_trade_time")
    # Required, not defaulted: the Kafka -> Parquet reader rejects an event without it, so a
    # trade accepted here without ``E`` would stop every later run of its hour.
    event_time = _integer(event, "E", "bad_event_time")
    horizon = now_ms if now_ms is not None else datetime_to_ms(datetime.now(UTC))
    if not MIN_TRADE_TIME_MS <= trade_time <= horizon + MAX_FUTURE_SKEW_MS:
        raise TradeValidationError("bad_trade_time", f"'T'={trade_time} is not a plausible ms time")
    if not MIN_TRADE_TIME_MS <= event_time <= horizon + MAX_FUTURE_SKEW_MS:  # it is stored, too
        raise TradeValidationError("bad_event_time", f"'E'={event_time} is not a plausible ms time")
    maker = event.get("m")
    if not isinstance(maker, bool):
        raise TradeValidationError("bad_maker_flag", f"'m' must be true or false, got {maker!r}")
    return Trade(
        symbol=symbol,
        trade_id=trade_id,
        price=_positive_decimal(event, "p", "price"),
        qty=_positive_decimal(event, "q", "qty"),
        trade_time_ms=trade_time,
        event_time_ms=event_time,
        buyer_is_maker=maker,
    )


# A decimal string that passes every check of ``_positive_decimal`` (given a non-zero digit):
# at most DECIMAL_INTEGER_DIGITS integer digits and DECIMAL_SCALE decimals, ASCII digits only.
_PLAIN_DECIMAL = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,8})?")


def _plain_positive(raw: Any) -> bool:
    return type(raw) is str and _PLAIN_DECIMAL.fullmatch(raw) is not None and bool(raw.strip("0."))


def plain_trade_fields(
    event: Any, symbols: frozenset[str] | None, now_ms: int
) -> tuple[str, int, int, int] | None:
    """``(symbol, trade id, trade time, event time)`` of a trade event in its plain form, else None.

    The ingestion hot path: the same checks as :func:`parse_trade_event` without building
    ``Decimal`` values or a :class:`Trade`, for the events Binance actually sends (exact types,
    plain decimal strings). It accepts only events :func:`parse_trade_event` accepts; None means
    "not plainly valid": ask :func:`parse_trade_event`, which gives the verdict and the reason.
    """
    if type(event) is not dict or event.get("e") != "trade":
        return None
    symbol, trade_id = event.get("s"), event.get("t")
    trade_time, event_time = event.get("T"), event.get("E")
    horizon = now_ms + MAX_FUTURE_SKEW_MS
    if (
        type(symbol) is str
        and symbol.isalnum()
        and symbol.isupper()
        and (symbols is None or symbol in symbols)
        and type(trade_id) is int
        and 0 <= trade_id <= MAX_TRADE_ID
        and type(trade_time) is int
        and MIN_TRADE_TIME_MS <= trade_time <= horizon
        and type(event_time) is int
        and MIN_TRADE_TIME_MS <= event_time <= horizon
        and type(event.get("m")) is bool
        and _plain_positive(event.get("p"))
        and _plain_positive(event.get("q"))
    ):
        return symbol, trade_id, trade_time, event_time
    return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice")
        seen.add(key)
    return dict(pairs)


def load_frame(frame: str | bytes) -> Any:
    """``json.loads``, refusing an object with a repeated key (``ValueError``).

    JSON parsers keep the last of repeated keys, but the Kafka value is the event as received,
    and the Kafka -> Parquet reader (Arrow) refuses such an object: a trade accepted with a
    repeated key would stop every run of its hour.
    """
    return json.loads(frame, object_pairs_hook=_unique_keys)


def parse_trade_frame(
    frame: str | bytes, symbols: frozenset[str] | None = None, now_ms: int | None = None
) -> Trade:
    """Parse a raw WebSocket text frame (single or combined stream) into a :class:`Trade`."""
    try:
        message = load_frame(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TradeValidationError("malformed_json", str(exc)[:200]) from None
    if not isinstance(message, dict):
        raise TradeValidationError("not_an_object", f"expected a JSON object, got {message!r:.80}")
    return parse_trade_event(unwrap_stream_envelope(message), symbols, now_ms)


def trade_to_event(trade: Trade, event_time_ms: int | None = None) -> dict[str, Any]:
    """The Binance wire form of a trade (used by the exchange simulator and archive import)."""
    return {
        "e": "trade",
        "E": trade.event_time_ms if event_time_ms is None else event_time_ms,
        "s": trade.symbol,
        "t": trade.trade_id,
        "p": format(trade.price, "f"),
        "q": format(trade.qty, "f"),
        "T": trade.trade_time_ms,
        "m": trade.buyer_is_maker,
        "M": True,
    }
