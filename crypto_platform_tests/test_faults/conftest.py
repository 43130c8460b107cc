"""The fault suite's reference: the same trades run once undisturbed, then under a fault.

Every fault test builds two platforms on their own data folders, topics and Dagster instances
(the real definitions, the session's broker): ``reference`` gets the trades produced straight
into its topic and materialised once; the faulted one gets them through whatever the fault
disturbs. The test then asserts the identical-results property with :func:`assert_identical`:
byte-identical Parquet per (symbol, minute) and identical DuckDB analytics rows; the reference
itself is checked against the independent pandas/Decimal computation of B's suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import date

import dagster as dg
import pytest

from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.trades import Trade
from crypto_platform.definitions import build_definitions
from crypto_platform.ingest.replay import RecordedTrade
from crypto_platform.ingest.sim_sources import ReplaySource
from crypto_platform_tests.test_defs.conftest import Platform
from crypto_platform_tests.test_defs.expected import assert_matches, expected_analytics
from crypto_platform_tests.test_defs.helpers import history_topics

START = 1_764_072_000_000  # 2025-11-25 12:00 UTC
M = 60_000
SYMBOLS = ["btcusdt", "ethusdt", "solusdt"]


def simulated_trades(minutes: int, seed: int, start_ms: int = START, scale: float = 1.0):
    """A seeded simulation's trades over ``minutes`` minutes from ``start_ms``, by time."""
    market = MarketSimulation(SYMBOLS, seed=seed, start_ms=start_ms, rate_scale=scale)
    return list(market.trades_between(start_ms, start_ms + minutes * M))


def replay_source(trades: list[Trade], speed: float | None) -> ReplaySource:
    """The trades as an exchange feed whose event time ``E`` equals the trade time ``T``.

    Binance's REST history has no event time, so a REST-filled trade carries ``E`` = ``T``
    (and so does its Parquet row). The simulation's live feed stamps ``E`` with its clock; a
    replay of the same trades with ``E`` = ``T`` makes stream and REST deliveries of a trade
    identical, which is what lets a faulted run be compared byte for byte with the reference.
    """
    from crypto_platform.core.trades import trade_to_event

    return ReplaySource([RecordedTrade(t, trade_to_event(t)) for t in trades], speed=speed)


def minutes_of(trades: list[Trade]) -> list[int]:
    return sorted({t.trade_time_ms - t.trade_time_ms % M for t in trades})


def materialise(platform: Platform, minutes: list[int]) -> None:
    """Run the minutes as the sensor would, one hour partition per run."""
    by_hour: dict[int, list[int]] = {}
    for minute in minutes:
        by_hour.setdefault(minute - minute % 3_600_000, []).append(minute)
    for hour_minutes in by_hour.values():
        assert platform.run_minutes(hour_minutes).success


@pytest.fixture
def platform_factory(
    settings_factory, bootstrap: str, tmp_path
) -> Iterator[Callable[..., Platform]]:
    """Platforms of the real definitions, each on its own data folder, topics and instance."""
    with ExitStack() as stack:
        make_topic = stack.enter_context(history_topics(bootstrap))

        def make(name: str, partitions: int = 3, **overrides: object) -> Platform:
            trades_topic = make_topic(f"{name}-trades", partitions)
            progress_topic = make_topic(f"{name}-progress", 1)
            values: dict[str, object] = {
                "data_dir": tmp_path / name,
                "partitions_start": date(2019, 1, 1),
                "symbols": SYMBOLS,
                "grace_seconds": 5,
            }
            values.update(overrides)
            settings = settings_factory(**values)
            defs = build_definitions(
                settings, trades_topic=trades_topic, progress_topic=progress_topic
            )
            instance = stack.enter_context(dg.instance_for_test())
            return Platform(settings, defs, instance, bootstrap, trades_topic, progress_topic)

        yield make


class Reference:
    """The undisturbed run's results: Parquet bytes per file and the DuckDB rows."""

    def __init__(self, platform: Platform, trades: list[Trade]) -> None:
        self.trades = trades
        self.minutes = minutes_of(trades)
        platform.produce(trades)
        materialise(platform, self.minutes)
        self.files = platform.lake_bytes()
        self.rows = platform.analytics()
        assert len(self.files) == len({(t.symbol, t.trade_time_ms // M) for t in trades})
        assert_matches(self.rows, expected_analytics(trades))  # the reference is right, too


@pytest.fixture
def reference(platform_factory) -> Callable[[list[Trade]], Reference]:
    return lambda trades: Reference(platform_factory("reference"), trades)


def assert_identical(platform: Platform, reference: Reference) -> None:
    """The identical-results property: same Parquet bytes per minute, same analytics rows."""
    files = platform.lake_bytes()
    assert sorted(files) == sorted(reference.files), "a different set of minute files"
    differing = [name for name in files if files[name] != reference.files[name]]
    assert not differing, f"{len(differing)} minute files differ, e.g. {differing[:3]}"
    assert platform.analytics() == reference.rows
    leftovers = [p for p in platform.lake.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, f"temporary files left in the lake: {leftovers[:3]}"
