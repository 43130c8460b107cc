"""The rule engine on hand-made minutes: which windows qualify, with hand-checked values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from crypto_platform.core.alerts import (
    DEFAULT_RULES,
    AlertRule,
    Minute,
    evaluate,
    lookback,
    parse_rules,
    webhook_payload,
)

T0 = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def minute(m: int, low: float, high: float, close: float, vol: float | None = 0.5) -> Minute:
    return Minute("BTCUSDT", at(m), high, low, close, (high - low) / low * 100, vol, 10)


# BTCUSDT, hand-made: a 2% minute at 10:01, volatility 1.5 at 10:01, a fall through 100 at
# 10:03 and back up at 10:04, then nothing from 10:05 until 10:12.
SERIES = [
    minute(0, 100.0, 100.5, 100.5),
    minute(1, 100.0, 102.0, 101.0, vol=1.5),
    minute(2, 101.0, 101.0, 101.0, vol=0.0),
    minute(3, 99.0, 99.5, 99.5),
    minute(4, 100.2, 100.4, 100.4),
    minute(12, 100.4, 100.4, 100.4, vol=None),
]
UNTIL = at(13)


def keys(firings) -> list[tuple[str, int, int]]:
    """(rule, window start, window end) as minutes after 10:00."""
    return [
        (
            f.rule,
            int((f.window_start - T0) / timedelta(minutes=1)),
            int((f.window_end - T0).total_seconds() // 60),
        )
        for f in firings
    ]


@pytest.mark.parametrize(
    ("rule", "expected", "value"),
    [
        (AlertRule("jump", "price_change", above=1.0), [("jump", 1, 2)], 2.0),
        # 10:00-10:05: high 102, low 99 -> 3/99 = 3.0303%; 10:10-10:15 is not over yet.
        (
            AlertRule("jump5", "price_change", above=3.0, minutes=5),
            [("jump5", 0, 5)],
            300 / 99,
        ),
        (AlertRule("jump5_hi", "price_change", above=3.1, minutes=5), [], None),
        (AlertRule("vol", "volatility", above=1.0), [("vol", 1, 2)], 1.5),
        # silent 10:05..10:11 = 7 minutes: one alert for the first 5, keyed at 10:05.
        (AlertRule("quiet", "no_trades", minutes=5), [("quiet", 5, 10)], 7.0),
        (AlertRule("quiet8", "no_trades", minutes=8), [], None),
        (
            AlertRule("cross", "price_cross", level=100.0),
            [("cross", 3, 4), ("cross", 4, 5)],
            99.5,
        ),
        (AlertRule("up", "price_cross", level=100.0, direction="up"), [("up", 4, 5)], 100.4),
        (AlertRule("down", "price_cross", level=100.0, direction="down"), [("down", 3, 4)], 99.5),
        (AlertRule("eth", "volatility", symbol="ethusdt", above=0.1), [], None),
    ],
)
def test_each_rule_fires_on_exactly_the_qualifying_windows(rule, expected, value) -> None:
    firings = evaluate([rule], SERIES, at(0), at(60), UNTIL)
    assert keys(firings) == expected
    if value is not None:
        assert firings[0].value == pytest.approx(value, rel=1e-12)
        assert firings[0].symbol == "BTCUSDT" and firings[0].kind == rule.kind


def test_anchored_ranges_split_the_firings_without_overlap_or_loss() -> None:
    rules = [
        AlertRule("jump", "price_change", above=1.0),
        AlertRule("jump5", "price_change", above=3.0, minutes=5),
        AlertRule("quiet", "no_trades", minutes=5),
        AlertRule("cross", "price_cross", level=100.0),
        AlertRule("vol", "volatility", above=1.0),
    ]
    whole = evaluate(rules, SERIES, at(0), at(60), UNTIL)
    pieces = [
        f
        for start in range(0, 60, 3)
        for f in evaluate(rules, SERIES, at(start), at(start + 3), UNTIL)
    ]
    assert sorted(keys(pieces)) == sorted(keys(whole))
    assert len(whole) == 6
    # The silence is decided by its 5th minute (10:09); the 5-minute window by 10:04.
    anchors = {f.rule: f.anchor for f in whole}
    assert anchors["quiet"] == at(9) and anchors["jump5"] == at(4)


def test_a_silence_is_not_judged_past_the_data() -> None:
    rule = AlertRule("quiet", "no_trades", minutes=5)
    assert evaluate([rule], SERIES[:5], at(0), at(60), at(9)) == []  # only 4 silent minutes
    assert keys(evaluate([rule], SERIES[:5], at(0), at(60), at(10))) == [("quiet", 5, 10)]


def test_messages_and_payload_say_what_happened() -> None:
    firing = evaluate(
        [AlertRule("cross", "price_cross", level=100.0)], SERIES, at(0), at(60), UNTIL
    )[0]
    assert firing.message == (
        "[cross] BTCUSDT crossed 100 downward: close 99.5 in the minute from "
        "2025-01-01 10:03 UTC (previous close 101)"
    )
    payload = webhook_payload(firing)
    assert payload["text"] == firing.message
    assert payload["window_start"] == "2025-01-01T10:03:00+00:00"
    assert (payload["value"], payload["threshold"]) == (99.5, 100.0)


def test_lookback_covers_the_longest_rule() -> None:
    assert lookback(DEFAULT_RULES) == timedelta(minutes=5)
    assert lookback([AlertRule("q", "no_trades", minutes=30)]) == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "a", "kind": "volatility"}, "needs a positive 'above'"),
        ({"name": "a", "kind": "price_cross", "level": -1}, "needs a positive 'level'"),
        ({"name": "a", "kind": "no_trades", "above": 3}, "takes no 'above'"),
        ({"name": "a", "kind": "volatility", "above": 1, "minutes": 5}, "per minute"),
        ({"name": "a", "kind": "price_change", "above": 1, "direction": "up"}, "only for"),
        ({"name": "a b", "kind": "no_trades"}, "rule name"),
        ({"name": "a", "kind": "no_trades", "minutes": 0}, "minutes must be"),
        ({"name": "a", "kind": "no_trades", "symbol": "btc-usdt"}, "is not a symbol"),
        ({"name": "a", "kind": "spike"}, "Input should be"),
        ({"name": "a", "kind": "no_trades", "minuets": 5}, "Unexpected keyword"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(rule: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_rules([rule])


def test_rules_parse_from_json_and_names_must_be_unique() -> None:
    rules = parse_rules(
        '[{"name": "btc_100k", "kind": "price_cross", "symbol": "btcusdt", "level": 1e5}]'
    )
    assert rules == [AlertRule("btc_100k", "price_cross", symbol="BTCUSDT", level=100000.0)]
    with pytest.raises(ValueError, match="unique"):
        parse_rules([{"name": "x", "kind": "no_trades"}, {"name": "x", "kind": "no_trades"}])
