"""Topic administration and broker health, through confluent-kafka's AdminClient."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from crypto_platform.core.topics import DLQ_TOPIC, PROGRESS_TOPIC, TRADES_TOPIC
from crypto_platform.kafka.logs import librdkafka_logger

ADMIN_TIMEOUT_S = 15.0
# Trades are kept a week by default: the window for re-materialising from Kafka.
TRADES_RETENTION_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def platform_topics(trades_partitions: int) -> list[TopicSpec]:
    """The topics the platform needs: trades (keyed by symbol), its DLQ and the progress marks."""
    retention = {"retention.ms": str(TRADES_RETENTION_MS)}
    return [
        TopicSpec(TRADES_TOPIC, trades_partitions, retention),
        TopicSpec(DLQ_TOPIC, 1, retention),
        TopicSpec(PROGRESS_TOPIC, 1, {"retention.ms": str(TRADES_RETENTION_MS)}),
    ]


def admin_client(bootstrap_servers: str) -> AdminClient:
    return AdminClient(
        {"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 10000},
        logger=librdkafka_logger(),
    )


def cluster_topics(bootstrap_servers: str, timeout_s: float = ADMIN_TIMEOUT_S) -> dict[str, int]:
    """Ask the cluster for its metadata: ``{topic: partition count}``. Raises if unreachable."""
    metadata = admin_client(bootstrap_servers).list_topics(timeout=timeout_s)
    return {name: len(t.partitions) for name, t in metadata.topics.items()}


def create_topics(
    bootstrap_servers: str, specs: list[TopicSpec], timeout_s: float = ADMIN_TIMEOUT_S
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = admin_client(bootstrap_servers)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=-1, config=s.config)
        for s in missing
    ]
    futures = admin.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
    for _name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return [s.name for s in missing]


def delete_topics(
    bootstrap_servers: str, names: list[str], timeout_s: float = ADMIN_TIMEOUT_S
) -> None:
    client = admin_client(bootstrap_servers)  # keep a reference until the futures resolve
    futures = client.delete_topics(names, operation_timeout=timeout_s)
    for future in futures.values():
        future.result(timeout=timeout_s)
