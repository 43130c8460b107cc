"""The ingestion fast path against the exact one, on real-looking and near-valid frames.

:func:`~crypto_platform.ingest.frames.decode_plain` may only answer when its answer is the exact
path's (``json.loads`` + :func:`unwrap_stream_envelope` + :func:`parse_trade_event`, value from
:func:`inner_event_bytes`): same (symbol, trade id, trade time, event time), same value bytes.
Frames are built as text, so they can hold what ``json.dumps`` never writes: repeated keys,
escaped key names, number tokens beyond 64 bits, a BOM, odd whitespace. A table then follows
the accepted values one step further, into the Kafka -> Parquet parser.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crypto_platform.core.trade_batches import parse_events
from crypto_platform.core.trades import (
    MAX_FUTURE_SKEW_MS,
    MIN_TRADE_TIME_MS,
    TradeValidationError,
    datetime_to_ms,
    load_frame,
    parse_trade_event,
    unwrap_stream_envelope,
)
from crypto_platform.ingest.frames import decode_plain, inner_event_bytes
from crypto_platform.ingest.service import IngestConfig, IngestService
from crypto_platform.kafka import admin
from crypto_platform_tests.test_ingest.conftest import read_topic

NOW = 1_764_072_000_000
SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})


@dataclass(frozen=True)
class Raw:
    """A JSON token written as is (``1e5``, ``18446744073709551616``, ``-0``)."""

    text: str


@dataclass(frozen=True)
class Style:
    item_sep: str = ","
    key_sep: str = ":"
    ascii_only: bool = False


COMPACT = Style()


class Obj(list):
    """A JSON object as (key text, value) pairs, so that keys may repeat or be escaped."""


def to_json(value: Any, style: Style = COMPACT) -> str:
    """JSON text of ``value`` in ``style``; dicts and :class:`Obj` are objects."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        value = Obj(value.items())
    if isinstance(value, Obj):
        items = (f"{k}{style.key_sep}{to_json(v, style)}" for k, v in value)
        return "{" + style.item_sep.join(items) + "}"
    return json.dumps(value, ensure_ascii=style.ascii_only)


def key(name: str) -> str:
    return json.dumps(name)


def valid_event(trade_id: int = 5_124_126_132, symbol: str = "BTCUSDT") -> dict[str, Any]:
    return {
        key("e"): "trade",
        key("E"): NOW + 3,
        key("s"): symbol,
        key("t"): trade_id,
        key("p"): "114410.00000000",
        key("q"): "0.00010000",
        key("T"): NOW,
        key("m"): True,
        key("M"): True,
    }


EDGE_DECIMALS = [
    "0.00000000", "0.00000001", "1e5", "1E-2", " 1", "1 ", "１", "٣", "1_0", "+1", ".5", "5.",
    "12345678901", "9999999999", "9999999999.99999999", "1.123456789", "1.100000000", "1.0",
    "-1", "NaN", "inf", "", "0x10",
    Raw("1.5"), Raw("2"), Raw("1e5"), Raw("true"), Raw("null"),
]  # fmt: skip
EDGE_INTEGERS = [
    0, -1, 2**31, 2**63 - 1, 2**63, 2**64 - 1,
    Raw("18446744073709551616"), Raw("99999999999999999999999"), Raw("-9223372036854775809"),
    Raw("1e5"), Raw("5.0"), Raw("-0"), Raw("true"), Raw("false"), Raw("null"), "5",
]  # fmt: skip
EDGE_TIMES = [
    MIN_TRADE_TIME_MS - 1, MIN_TRADE_TIME_MS,
    NOW + MAX_FUTURE_SKEW_MS, NOW + MAX_FUTURE_SKEW_MS + 1,
    Raw(f"{NOW}.0"), Raw("1.764072e12"), Raw("true"), Raw(f"{NOW}0000000000"), str(NOW),
]  # fmt: skip
EDGES: dict[str, list[Any]] = {
    "e": ["trade", "TRADE", "aggTrade", Raw("null")],
    "s": ["BTCUSDT", "ETHUSDT", "btcusdt", "ＢＴＣＵＳＤＴ", "BTCUSDT ", "XRPUSDT", Raw("1")],
    "t": EDGE_INTEGERS,
    "p": EDGE_DECIMALS,
    "q": EDGE_DECIMALS,
    "T": EDGE_TIMES + EDGE_INTEGERS,
    "E": EDGE_TIMES + EDGE_INTEGERS,
    "m": [True, False, Raw("1"), Raw("0"), "true", Raw("null")],
}
STYLES = st.builds(
    Style,
    st.sampled_from([",", ", ", " ,", ",\n", ",\t", ",\r\n "]),
    st.sampled_from([":", ": ", " :", ":\n"]),
    st.booleans(),
)
WRAPS = st.sampled_from(["", " ", "\n", "\r\n", "\t", "\ufeff"])


@dataclass(frozen=True)
class Frame:
    data: bytes
    envelope: str


@st.composite
def events(draw: st.DrawFn) -> Obj:
    """A valid trade event with up to three fields at an edge (or removed), keys in any order."""
    pairs = valid_event(draw(st.integers(0, 2**40)), draw(st.sampled_from(sorted(SYMBOLS))))
    changed = draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))
    for name in draw(
        st.lists(st.sampled_from(sorted(EDGES)), min_size=changed, max_size=changed, unique=True)
    ):
        if draw(st.integers(0, 9)) == 0:
            pairs.pop(key(name))
        else:
            pairs[key(name)] = draw(st.sampled_from(EDGES[name]))
    items = Obj(pairs.items())
    if draw(st.booleans()):
        items = Obj(draw(st.permutations(items)))
    if draw(st.integers(0, 9)) == 0:  # a repeated key inside the event: the last one counts
        name = draw(st.sampled_from(sorted(EDGES)))
        items.append((key(name), draw(st.sampled_from(EDGES[name]))))
    return items


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    good = draw(events())
    style = draw(st.sampled_from([COMPACT, COMPACT, Style(ascii_only=True)]) | STYLES)
    stream = (key("stream"), "btcusdt@trade")
    envelopes: dict[str, Any] = {
        "raw": good,
        "combined": Obj([stream, (key("data"), good)]),
        "data first": Obj([(key("data"), good), stream]),
        "repeated data": Obj([stream, (key("data"), draw(events())), (key("data"), good)]),
        "escaped data key": Obj([stream, ('"d\\u0061ta"', good)]),
        "escaped data key after data": Obj(
            [stream, (key("data"), draw(events())), ('"d\\u0061ta"', good)]
        ),
        "data not an object": Obj([stream, (key("data"), draw(st.sampled_from([[], "x", 1])))]),
        "extra key": Obj([stream, (key("data"), good), (key("x"), 1)]),
    }
    envelope = draw(st.sampled_from(sorted(envelopes)))
    text = to_json(envelopes[envelope], style)
    text = draw(WRAPS) + text + draw(WRAPS)
    return Frame(text.encode(), envelope)


def exact_path(frame: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the service's exact path parses: (the message, the event it validates); raises
    ValueError where the service dead-letters the frame as malformed JSON."""
    message = load_frame(frame)
    assert type(message) is dict
    return message, unwrap_stream_envelope(message)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_what_the_fast_path_accepts_the_exact_path_accepts_with_the_same_fields_and_value(
    frame: Frame,
) -> None:
    plain = decode_plain(frame.data, SYMBOLS, NOW)
    event(f"fast path {'accepted' if plain else 'declined'}: {frame.envelope}")
    if plain is None:
        return
    fields, value = plain
    message, inner = exact_path(frame.data)
    try:
        trade = parse_trade_event(inner, SYMBOLS, now_ms=NOW)
    except TradeValidationError as exc:
        pytest.fail(f"the fast path accepted what the exact path rejects ({exc.reason})")
    assert fields == (trade.symbol, trade.trade_id, trade.trade_time_ms, trade.event_time_ms)
    assert value == inner_event_bytes(frame.data, message, inner)
    assert json.loads(value) == inner  # the value is the event that was validated
    assert value in frame.data


GOOD = to_json(valid_event(7))
OTHER = to_json(valid_event(8))
ENVELOPE = '{"stream":"btcusdt@trade",'


@pytest.mark.parametrize(
    ("frame", "accepted"),
    [
        (GOOD, True),
        (f'{ENVELOPE}"data":{GOOD}}}', True),
        (f'{ENVELOPE}"data":{GOOD}}}  \n', True),
        (f'{ENVELOPE} "data":{GOOD}}}', False),  # cannot be cut: the exact path re-encodes
        (f'{ENVELOPE}"data":{OTHER},"data":{GOOD}}}', False),
        ("\ufeff" + GOOD, False),
        (GOOD.replace('"t":7', '"t":18446744073709551616'), False),
        (GOOD.replace('"t":7', '"t":7.0'), False),
        (GOOD.replace('"m":true', '"m":1'), False),
        (GOOD.replace('"p":"114410.00000000"', '"p":"１"'), False),
        (GOOD.replace('"p":"114410.00000000"', '"p":"0.00000000"'), False),
        (GOOD.replace('"p":"114410.00000000"', '"p":"12345678901"'), False),
        (GOOD.replace('"p":"114410.00000000"', '"p":"1.123456789"'), False),
        (GOOD.replace('"p":"114410.00000000"', '"p":114410.0'), False),
    ],
    ids=[
        "raw",
        "combined",
        "combined+whitespace",
        "combined spaced",
        "repeated data",
        "bom",
        "id beyond 64 bits",
        "float id",
        "int maker flag",
        "full-width digit",
        "zero",
        "11 integer digits",
        "9 decimals",
        "float price",
    ],
)
def test_the_fast_path_takes_only_frames_in_their_plain_form(frame: str, accepted: bool) -> None:
    plain = decode_plain(frame.encode(), SYMBOLS, NOW)
    assert (plain is not None) == accepted
    if plain is not None:
        assert plain[0] == ("BTCUSDT", 7, NOW, NOW + 3)
        assert plain[1] == GOOD.encode()


def _produced_value(frame: bytes) -> tuple[Any, bytes] | None:
    """The trade and Kafka value the service produces for ``frame`` (either path), or None when
    the exact path dead-letters it."""
    plain = decode_plain(frame, SYMBOLS, NOW)
    try:
        message, inner = exact_path(frame)
    except ValueError:  # malformed JSON, e.g. a repeated key: the DLQ
        assert plain is None
        return None
    try:
        trade = parse_trade_event(inner, SYMBOLS, now_ms=NOW)
    except TradeValidationError:
        assert plain is None
        return None
    value = plain[1] if plain is not None else inner_event_bytes(frame, message, inner)
    return trade, value


PRICE = '"p":"114410.00000000"'


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(f'{ENVELOPE}"data":{GOOD}}}', id="combined"),
        pytest.param(f'{ENVELOPE} "data" : {GOOD} }}', id="combined spaced"),
        pytest.param("\ufeff" + GOOD, id="bom"),
        pytest.param(f'{ENVELOPE}"data":{OTHER},"data":{GOOD}}}', id="repeated data"),
        pytest.param(GOOD.replace(PRICE, '"p":"1e5"'), id="exponent"),
        pytest.param(GOOD.replace(PRICE, '"p":" 1"'), id="padded decimal"),
        pytest.param(GOOD.replace(PRICE, '"p":"１"'), id="full-width digit"),
        pytest.param(GOOD.replace(PRICE, '"p":"1_0"'), id="underscore"),
        pytest.param(f'{ENVELOPE}"data":{OTHER}, "data":{GOOD}}}', id="repeated data, spaced"),
        pytest.param(f'{ENVELOPE}"data":{OTHER},"d\\u0061ta":{GOOD}}}', id="escaped data key"),
        pytest.param(GOOD.replace('"t":7', '"t":9223372036854775808'), id="id of 2**63"),
        pytest.param(GOOD[:-1] + ',"t":7}', id="repeated key in the event"),
    ],
)
def test_an_accepted_frame_gives_a_value_the_lake_parser_reads_alike(frame: str) -> None:
    """Either path: the frame is dead-lettered, or its Kafka value is read by the Kafka ->
    Parquet parser to the same trade. A value that parser refuses would fail every run of its
    hour, and one it reads differently would put another trade in the lake."""
    produced = _produced_value(frame.encode())
    if produced is None:
        return  # dead-lettered with a reason: nothing reaches Kafka's trades
    trade, value = produced
    (row,) = parse_events([value]).to_pylist()
    assert (row["symbol"], row["trade_id"]) == (trade.symbol, trade.trade_id)
    assert (row["price"], row["qty"]) == (trade.price, trade.qty)
    assert datetime_to_ms(row["trade_time"]) == trade.trade_time_ms


# -- ids going backwards, through the service's frame handling into a real topic ------------

BACKWARDS_T = NOW - 3_600_000
_example = itertools.count(1)


@pytest.fixture(scope="module")
def backwards_topic(bootstrap: str) -> Iterator[str]:
    name = f"frames-backwards-{uuid.uuid4().hex[:10]}"
    admin.create_topics(bootstrap, [admin.TopicSpec(name, 1, {"retention.ms": "-1"})])
    yield name
    admin.delete_topics(bootstrap, [name])


def _trade_frame(trade_id: int, offset: int, form: str) -> tuple[bytes, bytes]:
    """A valid BTCUSDT trade (time grows with the id) as ``form``; (frame, its event bytes)."""
    pairs = valid_event(trade_id)
    pairs[key("T")] = BACKWARDS_T + 100 * offset
    pairs[key("E")] = BACKWARDS_T + 100 * offset + 7
    event_text = to_json(pairs)
    frame = {
        "raw": event_text,
        "combined": f'{ENVELOPE}"data":{event_text}}}',
        "combined spaced": f'{ENVELOPE} "data": {event_text}}}',  # the exact path
    }[form]
    return frame.encode(), event_text.encode()


def _intended(ids: list[int]) -> list[int]:
    """What ledger.py says is produced: the first id starts tracking; an id at or above it is
    produced once; one below it (older than tracking) is produced, untracked."""
    start, seen = ids[0], set()
    produced: list[int] = []
    for trade_id in ids:
        if trade_id < start:  # Verdict.BEFORE_START
            produced.append(trade_id)
        elif trade_id not in seen:  # Verdict.NEW; else Verdict.DUPLICATE
            seen.add(trade_id)
            produced.append(trade_id)
    return produced


@pytest.mark.kafka
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 12), st.sampled_from(["raw", "combined", "combined spaced"])),
        min_size=2,
        max_size=30,
    )
)
def test_ids_going_backwards_are_never_produced_twice(
    bootstrap: str, backwards_topic: str, steps: list[tuple[int, str]]
) -> None:
    offsets = [offset for offset, _form in steps]
    event(f"backwards: {any(b < a for a, b in itertools.pairwise(offsets))}")
    base = next(_example) * 1_000_000
    config = IngestConfig(
        bootstrap,
        ["BTCUSDT"],
        "ws://127.0.0.1:9",
        "http://127.0.0.1:9",
        trades_topic=backwards_topic,
        dlq_topic=backwards_topic,
        progress_topic=backwards_topic,
    )
    service = IngestService(config)
    values: dict[int, bytes] = {}
    for offset, form in steps:
        frame, values[base + offset] = _trade_frame(base + offset, offset, form)
        service._on_frame(0, time.monotonic_ns() // 1_000_000, time.time_ns() // 1_000_000, frame)
    assert service.producer.flush(30.0) == 0

    mine = [m for m in read_topic(bootstrap, backwards_topic) if m.key() == b"BTCUSDT"]
    mine = [m for m in mine if base <= json.loads(m.value())["t"] < base + 1_000_000]
    produced = [json.loads(m.value())["t"] - base for m in mine]
    intended = _intended(offsets)
    assert produced == intended  # in order, nothing twice from where tracking began
    start = offsets[0]
    tracked = [i for i in produced if i >= start]
    assert len(tracked) == len(set(tracked)) == len(set(i for i in offsets if i >= start))
    for message in mine:
        trade_id = json.loads(message.value())["t"]
        assert message.value() == values[trade_id]
        assert message.timestamp()[1] == BACKWARDS_T + 100 * (trade_id - base)
    skipped = len(offsets) - len(intended)
    assert service.stats.symbols["BTCUSDT"].duplicates == skipped
    assert sum(service.stats.dead_letters.values()) == 0
