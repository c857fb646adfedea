"""Kafka plumbing shared by the bridge and the CLI: addresses, topic creation, producer."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


def bootstrap(broker_url: str) -> str:
    """``kafka://h:p;kafka://h2:p`` (faust style) as aiokafka's ``h:p,h2:p``."""
    hosts = [
        part.strip().removeprefix("kafka://") for part in broker_url.replace(";", ",").split(",")
    ]
    return ",".join(h for h in hosts if h)


async def ensure_topic(broker_url: str, name: str, partitions: int) -> None:
    """Create the topic with explicit configs unless it exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(broker_url))
    await admin.start()
    try:
        existing = await admin.list_topics()
        if name in existing:
            return
        topic = NewTopic(
            name=name,
            num_partitions=partitions,
            replication_factor=1,
            topic_configs={"retention.ms": str(7 * 86_400_000), "retention.bytes": "-1"},
        )
        try:
            await admin.create_topics([topic])
            log.info("created topic %s with %d partitions", name, partitions)
        except TopicAlreadyExistsError:
            pass
    finally:
        await admin.close()


def make_producer(broker_url: str) -> AIOKafkaProducer:
    """A producer that waits for the broker's full acknowledgement."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap(broker_url),
        acks="all",
        linger_ms=2,
        max_request_size=8 * 1024 * 1024,
        compression_type=None,
    )
