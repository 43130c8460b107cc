"""Shared fixtures: one real Kafka broker per test session, fresh topics and settings per test.

The broker is a real Apache Kafka (KRaft) JVM on free loopback ports in a temporary folder,
started once for the session and stopped at the end (quix-streams' ``kafka_container`` fixture,
without Docker). Tests that need a clean topic make their own with ``topic_factory``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crypto_platform.kafka import admin
from crypto_platform.kafka.broker import LocalBroker, free_port
from crypto_platform.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tests never reach Binance: anything that forgets to point at the local exchange simulator
# fails fast on a closed loopback port instead of sending traffic off this machine.
LOOPBACK_NOWHERE = {
    "CRYPTO_PLATFORM_BINANCE_WS_URL": "ws://127.0.0.1:9",
    "CRYPTO_PLATFORM_BINANCE_REST_URL": "http://127.0.0.1:9",
}
os.environ.update(LOOPBACK_NOWHERE)
SHARED_BINANCE = REPO_ROOT.parent / "shared" / "data" / "binance"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(
        home=tmp_path_factory.mktemp("kafka"),
        cache_dir=REPO_ROOT / ".cache",
        port=free_port(),
        controller_port=free_port(),
        heap="512m",
        trades_partitions=3,
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def bootstrap(kafka_broker: LocalBroker) -> str:
    return kafka_broker.bootstrap_servers


@pytest.fixture
def topic_factory(bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics for one test; they are deleted afterwards.

    Message timestamps are trade times, so the broker's time-based retention would delete
    replayed old trades within minutes: test topics keep everything (``retention.ms=-1``)
    unless ``config`` says otherwise.
    """
    created: list[str] = []

    def make(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        topic_config = {"retention.ms": "-1"} if config is None else config
        admin.create_topics(bootstrap, [admin.TopicSpec(name, partitions, topic_config)])
        created.append(name)
        return name

    yield make
    if created:
        admin.delete_topics(bootstrap, created)


@pytest.fixture
def settings_factory(tmp_path: Path, bootstrap: str) -> Callable[..., Settings]:
    """Settings on a temporary data folder, pointing at the session's broker."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_bootstrap_servers": bootstrap,
            "data_dir": tmp_path / "data",
            "cache_dir": REPO_ROOT / ".cache",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def shared_binance() -> Path:
    """The real recorded Binance trades beside the project; skip where that folder is absent."""
    if not SHARED_BINANCE.is_dir():
        pytest.skip(f"{SHARED_BINANCE} is absent (it holds the real recorded Binance trades)")
    return SHARED_BINANCE
