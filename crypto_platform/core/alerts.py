"""Alert rules over the 1-minute analytics: what qualifies, as a pure function of the minutes.

Four kinds of rule, each configured in settings (``alert_rules``):

- ``price_change``: the price range ``(max high - min low) / min low * 100`` of a window of
  ``minutes`` minutes is above ``above`` percent (the seed's price change, widened from one
  minute to N; for N = 1 it is the table's ``price_change_pct``). Windows are tumbling and
  aligned to the epoch (for N = 5: 10:00-10:05, 10:05-10:10, ...), so each fires at most once.
- ``volatility``: a minute's volatility (sample standard deviation of prices) is above ``above``.
- ``no_trades``: a symbol that had trades has none for ``minutes`` consecutive minutes. Fires
  once per silence, keyed by the silence's first minute.
- ``price_cross``: a minute's close is on the other side of ``level`` from the previous
  minute's close (``direction`` up, down or both). A wick that touches the level and falls
  back does not count; the close has to cross.

Every firing has a key, ``(rule, symbol, window_start)``, that the same data always gives again,
so re-evaluating minutes (a backfill, a retried run) can never fire the same alert twice: the
store keeps the first and ignores the rest. Every firing also has an *anchor*: the minute whose
data made it decidable (the window's last minute). :func:`evaluate` reports the firings whose
anchor lies in the range asked about, so consecutive ranges never report one twice either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby, pairwise
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass as pydantic_dataclass

MINUTE = timedelta(minutes=1)
MAX_RULE_MINUTES = 24 * 60
RuleKind = Literal["price_change", "volatility", "no_trades", "price_cross"]
Direction = Literal["up", "down", "both"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9]{2,20}$")

ALERTS_TABLE = "alerts"


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class AlertRule:
    """One rule, as written in settings; validated on construction (bad rules stop the start)."""

    name: str
    kind: RuleKind
    symbol: str | None = None
    above: float | None = None
    level: float | None = None
    minutes: int = 1
    direction: Direction = "both"

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"rule name {self.name!r}: use letters, digits, '_', '-', '.'")
        if self.symbol is not None:
            if not _SYMBOL_RE.match(self.symbol):
                raise ValueError(f"rule {self.name}: symbol {self.symbol!r} is not a symbol")
            object.__setattr__(self, "symbol", self.symbol.upper())
        if not 1 <= self.minutes <= MAX_RULE_MINUTES:
            raise ValueError(f"rule {self.name}: minutes must be 1..{MAX_RULE_MINUTES}")
        _check_fields(self)

    @property
    def threshold(self) -> float:
        """The number the rule compares against: percent, price units, minutes or a price."""
        if self.kind == "no_trades":
            return float(self.minutes)
        if self.kind == "price_cross":
            return float(self.level)  # type: ignore[arg-type]
        return float(self.above)  # type: ignore[arg-type]


def _check_fields(rule: AlertRule) -> None:
    needs = {
        "price_change": ("above",),
        "volatility": ("above",),
        "no_trades": (),
        "price_cross": ("level",),
    }[rule.kind]
    for field in ("above", "level"):
        value = getattr(rule, field)
        if field in needs and (value is None or value <= 0):
            raise ValueError(f"rule {rule.name} ({rule.kind}) needs a positive '{field}'")
        if field not in needs and value is not None:
            raise ValueError(f"rule {rule.name} ({rule.kind}) takes no '{field}'")
    if rule.kind == "volatility" and rule.minutes != 1:
        raise ValueError(f"rule {rule.name}: volatility is per minute; drop 'minutes'")
    if rule.direction != "both" and rule.kind != "price_cross":
        raise ValueError(f"rule {rule.name}: 'direction' is only for price_cross")


RULES_ADAPTER = TypeAdapter(list[AlertRule])


def parse_rules(value: str | list[dict[str, Any]]) -> list[AlertRule]:
    """Rules from JSON text or plain dicts (the Dagster resource carries them as JSON)."""
    if isinstance(value, str):
        rules = RULES_ADAPTER.validate_json(value)
    else:
        rules = RULES_ADAPTER.validate_python(value)
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"alert rule names must be unique, got {names}")
    return rules


@dataclass(frozen=True)
class Minute:
    """The columns of one ``trade_analytics_1m`` row that rules read."""

    symbol: str
    window_start: datetime
    high: float
    low: float
    close: float
    price_change_pct: float
    volatility: float | None
    trade_count: int


MINUTE_COLUMNS = (
    "symbol",
    "window_start",
    "high",
    "low",
    "close",
    "price_change_pct",
    "volatility",
    "trade_count",
)


@dataclass(frozen=True)
class Firing:
    """One alert: the rule, the symbol, the window that qualified and why, in words."""

    rule: str
    kind: str
    symbol: str
    window_start: datetime
    window_end: datetime
    value: float
    threshold: float
    message: str

    @property
    def anchor(self) -> datetime:
        """The minute whose data made this firing decidable (the window's last minute)."""
        return self.window_end - MINUTE

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.rule, self.symbol, self.window_start)


def evaluate(
    rules: Sequence[AlertRule],
    minutes: Iterable[Minute],
    start: datetime,
    end: datetime,
    data_until: datetime,
) -> list[Firing]:
    """Firings whose anchor minute is in ``[start, end)``, ordered by anchor, symbol, rule.

    ``minutes`` must hold every row of each symbol from a little before ``start`` (the longest
    rule's window, plus the last row before that, so silences and crossings see their previous
    minute) up to ``end``. ``data_until`` is where the data is known to end (the latest
    ``window_end`` over all symbols): no window past it is judged, and a silence runs up to it.
    """
    rows = sorted(minutes, key=lambda m: (m.symbol, m.window_start))
    firings: list[Firing] = []
    for symbol, group in groupby(rows, key=lambda m: m.symbol):
        series = list(group)
        for rule in rules:
            if rule.symbol is None or rule.symbol == symbol:
                firings.extend(_EVALUATORS[rule.kind](rule, series, data_until))
    chosen = [f for f in firings if start <= f.anchor < end and f.window_end <= data_until]
    return sorted(chosen, key=lambda f: (f.anchor, f.symbol, f.rule))


def _hhmm(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _num(value: float) -> str:
    return f"{value:.8g}"


def _firing(
    rule: AlertRule, row_symbol: str, start: datetime, minutes: int, value: float, text: str
) -> Firing:
    return Firing(
        rule=rule.name,
        kind=rule.kind,
        symbol=row_symbol,
        window_start=start,
        window_end=start + minutes * MINUTE,
        value=value,
        threshold=rule.threshold,
        message=f"[{rule.name}] {row_symbol} {text}",
    )


def _volatility(rule: AlertRule, series: list[Minute], _until: datetime) -> Iterable[Firing]:
    for row in series:
        if row.volatility is not None and row.volatility > rule.threshold:
            text = (
                f"volatility {_num(row.volatility)} above {_num(rule.threshold)} "
                f"in the minute from {_hhmm(row.window_start)}"
            )
            yield _firing(rule, row.symbol, row.window_start, 1, row.volatility, text)


def _bucket(value: datetime, minutes: int) -> datetime:
    offset = int(value.timestamp()) // 60 % minutes
    return value - offset * MINUTE


def _price_change(rule: AlertRule, series: list[Minute], until: datetime) -> Iterable[Firing]:
    for start, group in groupby(series, key=lambda m: _bucket(m.window_start, rule.minutes)):
        window = list(group)
        if start + rule.minutes * MINUTE > until:
            continue
        if rule.minutes == 1:
            change = window[0].price_change_pct
        else:
            low = min(m.low for m in window)
            change = (max(m.high for m in window) - low) / low * 100
        if change > rule.threshold:
            text = (
                f"price moved {change:.4g}% (high-low range) in {rule.minutes} min "
                f"from {_hhmm(start)}, above {_num(rule.threshold)}%"
            )
            yield _firing(rule, window[0].symbol, start, rule.minutes, change, text)


def _no_trades(rule: AlertRule, series: list[Minute], until: datetime) -> Iterable[Firing]:
    nexts = [m.window_start for m in series[1:]] + [until]
    for row, next_start in zip(series, nexts, strict=True):
        silence_start = row.window_start + MINUTE
        silent = int((next_start - silence_start) / MINUTE)
        if silent >= rule.minutes:
            text = (
                f"had no trades for {rule.minutes} min from {_hhmm(silence_start)} "
                f"(last trade in the minute from {_hhmm(row.window_start)})"
            )
            yield _firing(rule, row.symbol, silence_start, rule.minutes, float(silent), text)


def _price_cross(rule: AlertRule, series: list[Minute], _until: datetime) -> Iterable[Firing]:
    level = rule.threshold
    for previous, row in pairwise(series):
        up = previous.close < level <= row.close
        down = previous.close > level >= row.close
        if (up and rule.direction != "down") or (down and rule.direction != "up"):
            text = (
                f"crossed {_num(level)} {'upward' if up else 'downward'}: close "
                f"{_num(row.close)} in the minute from {_hhmm(row.window_start)} "
                f"(previous close {_num(previous.close)})"
            )
            yield _firing(rule, row.symbol, row.window_start, 1, row.close, text)


_EVALUATORS = {
    "price_change": _price_change,
    "volatility": _volatility,
    "no_trades": _no_trades,
    "price_cross": _price_cross,
}


def lookback(rules: Sequence[AlertRule]) -> timedelta:
    """How far before a range :func:`evaluate` needs every row (plus each symbol's prior row)."""
    return max((rule.minutes for rule in rules), default=1) * MINUTE


def webhook_payload(firing: Firing) -> dict[str, Any]:
    """The JSON a webhook receives; ``text`` makes it readable by Slack-style receivers as is."""
    return {
        "text": firing.message,
        "rule": firing.rule,
        "kind": firing.kind,
        "symbol": firing.symbol,
        "window_start": firing.window_start.isoformat(),
        "window_end": firing.window_end.isoformat(),
        "value": firing.value,
        "threshold": firing.threshold,
    }


def alerts_table_ddl(table: str = ALERTS_TABLE) -> str:
    """The firings, one row each (primary key = the firing's key), with webhook delivery state.

    ``delivery`` is ``none`` (no webhook configured), ``pending``, ``sent``, ``failed`` (retries
    exhausted) or ``stale`` (fired by a backfill of old minutes: stored and shown, not sent).
    """
    return f"""CREATE TABLE IF NOT EXISTS {table} (
  rule VARCHAR NOT NULL,
  kind VARCHAR NOT NULL,
  symbol VARCHAR NOT NULL,
  window_start TIMESTAMP WITH TIME ZONE NOT NULL,
  window_end TIMESTAMP WITH TIME ZONE NOT NULL,
  value DOUBLE,
  threshold DOUBLE,
  message VARCHAR NOT NULL,
  fired_at TIMESTAMP WITH TIME ZONE NOT NULL,
  delivery VARCHAR NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error VARCHAR,
  delivered_at TIMESTAMP WITH TIME ZONE,
  PRIMARY KEY (rule, symbol, window_start)
)"""


# Symbol-agnostic defaults, so a fresh platform has alerts worth seeing: a 1% range within one
# minute is rare for the majors, and five silent minutes usually mean the feed is in trouble.
DEFAULT_RULES = (
    AlertRule(name="price_jump_1m", kind="price_change", above=1.0, minutes=1),
    AlertRule(name="no_trades_5m", kind="no_trades", minutes=5),
)
