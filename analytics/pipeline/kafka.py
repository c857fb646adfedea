"""Kafka plumbing shared by the bridge and the CLI: addresses, topics, producer, offsets."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
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


class OffsetsProbe:
    """Reads a topic's end offsets and a consumer group's committed offsets.

    Holds one admin client and one group-less consumer, started on first use and
    restarted after a failure, so a caller polling every second opens no new sockets.
    """

    __slots__ = ("_admin", "_consumer", "_servers", "_timeout_ms", "client_id")

    def __init__(self, broker_url: str, *, io_seconds: float, client_id: str) -> None:
        self._servers = bootstrap(broker_url)
        self._timeout_ms = int(io_seconds * 1000)
        self.client_id = client_id
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._servers,
                request_timeout_ms=self._timeout_ms,
                client_id=self.client_id,
            )
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._servers,
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=self._timeout_ms,
                client_id=self.client_id,
            )
            try:
                await admin.start()
                await consumer.start()
            except BaseException:
                await _quietly_close(admin, consumer)
                raise
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    async def read(self, topic: str, group: str) -> TopicOffsets | None:
        """The offsets now, or None when the topic does not exist."""
        try:
            admin, consumer = await self._clients()
            # A metadata request for all topics: asking for one by name may auto-create it.
            numbers = None
            if topic in await consumer.topics():
                numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                # Missing, or just created and not yet in this client's own metadata: a
                # client without subscriptions may never refresh it (seen after a broker
                # restart, for good), so the next read starts from fresh clients.
                await self.close()
                return None
            partitions = [TopicPartition(topic, p) for p in sorted(numbers)]
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
        except BaseException:
            await self.close()
            raise
        done: dict[int, int] = {}
        for tp, meta in committed.items():
            if meta is not None and meta.offset >= 0:
                done[tp.partition] = meta.offset
        return TopicOffsets(
            ends={tp.partition: int(end) for tp, end in ends.items()},
            starts={tp.partition: int(start) for tp, start in starts.items()},
            committed=done,
        )

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        await _quietly_close(admin, consumer)


@dataclass(slots=True, frozen=True)
class TopicOffsets:
    """Per partition: the log end, the log start and the group's committed offset (if any)."""

    ends: dict[int, int]
    starts: dict[int, int]
    committed: dict[int, int]


async def _quietly_close(
    admin: AIOKafkaAdminClient | None, consumer: AIOKafkaConsumer | None
) -> None:
    with contextlib.suppress(Exception):
        if consumer is not None:
            await consumer.stop()
    with contextlib.suppress(Exception):
        if admin is not None:
            await admin.close()
