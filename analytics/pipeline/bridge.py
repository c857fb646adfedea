"""The bridge: Redis Stream (consumer group) -> Kafka topic.

Order of effects for every entry: produce its events to Kafka, wait for the broker's
acknowledgement, then XACK the entry and record the batch (entry ids and the offsets its
messages got) in one transaction. The entry itself stays in the stream until PostgreSQL
holds its events: ``analytics.pipeline.confirm`` trims it then, and sends it again if the
broker lost it. A bridge that dies before XACK leaves the entry pending; any bridge
reclaims entries idle for longer than ``claim_idle_ms`` (XAUTOCLAIM) and sends them again.
The duplicates either path can put in Kafka are harmless: the sink stores
(project_id, event_id) once.

Events are packed: one Kafka message carries up to ``events_per_message`` events of one
project, keyed by project id so a project's events stay in one partition and the agents
work per batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from redis.exceptions import RedisError, ResponseError

from analytics import metrics
from analytics.pipeline import buffer
from analytics.pipeline.buffer import FIELD
from analytics.pipeline.confirm import Confirmer, Entry, SentBatch, sent_key
from analytics.pipeline.kafka import make_producer
from analytics.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BridgeStats:
    """Counters an operator reads in ``event-status`` and ``/metrics``."""

    entries: int = 0
    events: int = 0
    messages: int = 0
    reclaimed: int = 0
    errors: int = 0


@dataclass(slots=True)
class Bridge:
    """Moves buffered events to Kafka; ``run_once`` drains, ``run`` loops until cancelled."""

    redis: aioredis.Redis
    producer: AIOKafkaProducer
    stream: str
    group: str
    topic: str
    read_count: int = 500
    block_ms: int = 200
    claim_idle_ms: int = 30_000
    events_per_message: int = 500
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    stats: BridgeStats = field(default_factory=BridgeStats)
    confirmer: Confirmer | None = None
    confirm_interval: float = 1.0

    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _forward(self, entries: list[Entry]) -> int:
        """Produce the entries' events, wait for Kafka, then ack them and record the batch."""
        if not entries:
            return 0
        count, offsets = await self.send(entries)
        await self._ack([entry_id for entry_id, _ in entries], offsets)
        self.stats.entries += len(entries)
        return count

    async def send(self, entries: list[Entry]) -> tuple[int, dict[int, int]]:
        """Produce the entries' events and wait until Kafka acknowledged every message.

        Returns the event count and the highest offset per partition the messages got.
        """
        by_project: dict[str, list[list[Any]]] = defaultdict(list)
        sent: list[tuple[bytes, list[tuple[str, str]]]] = []
        projects: dict[str, str] = {}
        for entry_id, fields in entries:
            payload = fields.get(FIELD)
            if payload is None:
                continue
            rows = orjson.loads(payload)
            for row in rows:
                by_project[row[0]].append(row)
            # Each row decodes its own copy of the project id: keep one per project.
            sent.append((entry_id, [(projects.setdefault(r[0], r[0]), r[1]) for r in rows]))
        sends = []
        count = 0
        for project_id, rows in by_project.items():
            key = project_id.encode()
            for start in range(0, len(rows), self.events_per_message):
                chunk = rows[start : start + self.events_per_message]
                count += len(chunk)
                sends.append(await self.producer.send(self.topic, orjson.dumps(chunk), key=key))
        # Every delivery must be acknowledged before any entry is acked in Redis.
        offsets: dict[int, int] = {}
        for meta in await asyncio.gather(*sends):
            offsets[meta.partition] = max(offsets.get(meta.partition, -1), meta.offset)
        if self.confirmer is not None:
            for entry_id, keys in sent:
                self.confirmer.sent_keys.remember(entry_id, keys)
        self.stats.events += count
        self.stats.messages += len(sends)
        metrics.BRIDGE_EVENTS.inc(count)
        metrics.BRIDGE_MESSAGES.inc(len(sends))
        return count, offsets

    async def _ack(self, ids: list[bytes], offsets: dict[int, int]) -> None:
        """Acknowledge entries Kafka has, and record them until PostgreSQL holds them."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, *ids)
            pipe.hset(sent_key(self.stream), ids[0], SentBatch(ids, offsets).encode())
            await pipe.execute()

    async def _reclaim(self) -> int:
        """Take over entries another (dead) bridge left pending, and forward them."""
        total = 0
        start = "0-0"
        while True:
            reply: Any = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start,
                count=self.read_count,
            )
            start_id, claimed = reply[0], reply[1]
            live = [(eid, fields) for eid, fields in claimed if fields]
            # Entries deleted after being read but before their ack are gone: ack them away.
            gone = [eid for eid, fields in claimed if not fields]
            if gone:
                await self.redis.xack(self.stream, self.group, *gone)
            total += await self._forward(live)
            self.stats.reclaimed += len(live)
            metrics.BRIDGE_RECLAIMED.inc(len(live))
            if start_id in (b"0-0", "0-0") or not claimed:
                return total
            start = start_id

    async def _read_new(self, block_ms: int | None) -> int:
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.read_count, block=block_ms
        )
        if not reply:
            return 0
        return await self._forward(reply[0][1])

    async def run_once(self) -> int:
        """Forward everything buffered now (including abandoned entries); returns events sent."""
        await self.ensure_group()
        total = await self._reclaim()
        while True:
            sent = await self._read_new(None)
            total += sent
            if sent == 0:
                pending: Any = await self.redis.xpending(self.stream, self.group)
                if not pending["pending"]:
                    return total
                # Entries pending for this consumer (an earlier failed attempt): retry them.
                total += await self._retry_own()

    async def _retry_own(self) -> int:
        sent = await self._forward_own_pending()
        if sent == 0:
            # Pending entries belong to another live consumer; wait for them to be reclaimable.
            await asyncio.sleep(0.5)
            return await self._reclaim()
        return sent

    async def run(self) -> None:
        """Forward continuously until cancelled; transient failures are logged and retried."""
        await self.ensure_group()
        last_claim = last_confirm = 0.0
        loop = asyncio.get_running_loop()
        backoff = 0.1
        while True:
            try:
                if loop.time() - last_claim > min(5.0, self.claim_idle_ms / 2000):
                    last_claim = loop.time()
                    await self._forward_own_pending()
                    await self._reclaim()
                    await self._gauge()
                confirmer = self.confirmer
                if confirmer is not None and loop.time() - last_confirm > self.confirm_interval:
                    last_confirm = loop.time()
                    await confirmer.run_once()
                await self._read_new(self.block_ms)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, Exception) as exc:
                self.stats.errors += 1
                metrics.ERRORS.labels("bridge", type(exc).__name__).inc()
                last_claim = 0.0  # retry what this bridge left pending at once
                log.warning("bridge: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _gauge(self) -> None:
        depth = await self.redis.xlen(self.stream)
        pending: Any = await self.redis.xpending(self.stream, self.group)
        metrics.BUFFER_DEPTH.set(depth)
        metrics.BUFFER_PENDING.set(pending["pending"])

    async def _forward_own_pending(self) -> int:
        """Send again what this bridge read but could not acknowledge (an earlier failure)."""
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: "0"}, count=self.read_count
        )
        entries = reply[0][1] if reply else []
        return await self._forward([(eid, f) for eid, f in entries if f])

    async def close(self) -> None:
        """Close the bridge's own connections (not the producer, which the caller started)."""
        if self.confirmer is not None:
            await self.confirmer.close()
        await self.redis.aclose()


def make_bridge(settings: Settings) -> tuple[Bridge, Any]:
    """A bridge for these settings and the producer it owns (not yet started)."""
    producer = make_producer(settings.kafka_broker)
    redis = buffer.connect(settings.redis_url, socket_timeout=5.0)
    bridge = Bridge(
        redis=redis,
        producer=producer,
        stream=settings.stream_key,
        group=settings.stream_group,
        topic=settings.events_topic,
        read_count=settings.bridge_read_count,
        block_ms=settings.bridge_block_ms,
        claim_idle_ms=settings.bridge_claim_idle_ms,
        events_per_message=settings.bridge_events_per_message,
        confirm_interval=settings.bridge_confirm_interval_seconds,
    )
    bridge.confirmer = Confirmer(
        redis=redis,
        send=bridge.send,
        stream=settings.stream_key,
        topic=settings.events_topic,
        worker_group=settings.app_id,
        database_url=settings.database_url,
        broker_url=settings.kafka_broker,
        topic_partitions=settings.topic_partitions,
        max_resends=settings.bridge_max_resends,
        owner=bridge.consumer,
    )
    return bridge, producer
