"""Trimming the buffer once PostgreSQL holds its events, and re-sending what the broker lost.

A broker's acknowledgement is not durability (the development broker keeps its log in
memory), so the bridge acknowledges a stream entry in its consumer group (``XACK``) when
Kafka has it but does not delete it. Instead it records the batch under the stream's
``:sent`` hash: the entry ids and, per partition, the highest offset their messages got.

A confirm pass then looks at every recorded batch, with the topic's end offsets and the
worker group's committed offsets read *after* the batch record:

- an offset at or past its partition's end: the broker no longer has that message (it
  restarted without its log): **re-send** the batch;
- every offset below the group's committed offset: the workers are past it. If every
  event of the batch is in the ledger (``event_ids``) or in ``dead_letters`` (not yet
  replayed: a replay's own entry vouches for it then), **trim** the
  entries (``XDEL``) and forget the batch. If not, the committed offsets belong to a new
  log that reused those numbers: **re-send**;
- otherwise the workers have not reached it yet: wait.

Only a PostgreSQL answer ever deletes an entry, so a wrong guess about the broker costs a
duplicate send (which the ledger drops), never an event. The pass runs under a Redis lock
so that several bridges do not all re-send the same batch; the lock saves work and is not
needed for correctness.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import asyncpg
import orjson
import redis.asyncio as aioredis

from analytics import metrics
from analytics.pipeline.buffer import FIELD
from analytics.pipeline.kafka import OffsetsProbe, TopicOffsets, ensure_topic

log = logging.getLogger(__name__)

# A stream entry as redis-py returns it: (entry id, {field: value}).
Entry = tuple[bytes, dict[bytes, bytes]]
# Sends entries' events to Kafka; returns the event count and the highest offset per partition.
Send = Callable[[list[Entry]], Awaitable[tuple[int, dict[int, int]]]]

T = TypeVar("T")

_SCAN_COUNT = 200
_RESEND_ENTRIES = 500
_LOCK_SECONDS = 30

_MISSING = """
SELECT k.project_id, k.event_id
FROM unnest($1::text[], $2::text[]) AS k(project_id, event_id)
WHERE NOT EXISTS (
        SELECT 1 FROM event_ids i WHERE i.project_id = k.project_id AND i.event_id = k.event_id)
  AND NOT EXISTS (
        SELECT 1 FROM dead_letters d WHERE d.project_id = k.project_id AND d.event_id = k.event_id
        AND d.replayed_at IS NULL)
"""


def sent_key(stream: str) -> str:
    """The hash of batches sent to Kafka and not yet confirmed in PostgreSQL."""
    return f"{stream}:sent"


def lock_key(stream: str) -> str:
    return f"{stream}:confirm-lock"


@dataclass(slots=True)
class SentBatch:
    """Entries sent to Kafka together, and where their messages went."""

    ids: list[bytes]
    offsets: dict[int, int]
    resends: int = 0

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "ids": [i.decode() for i in self.ids],
                "o": {str(p): o for p, o in self.offsets.items()},
                "n": self.resends,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> SentBatch:
        data = orjson.loads(raw)
        return cls(
            ids=[i.encode() for i in data["ids"]],
            offsets={int(p): int(o) for p, o in data["o"].items()},
            resends=int(data.get("n", 0)),
        )

    def verdict(self, offsets: TopicOffsets) -> str:
        """``lost``, ``consumed`` (workers are past it) or ``waiting``."""
        consumed = True
        for partition, offset in self.offsets.items():
            if offset >= offsets.ends.get(partition, 0):
                return "lost"
            done = offsets.committed.get(partition)
            if done is None or offset >= done:
                consumed = False
        return "consumed" if consumed else "waiting"


class SentKeys:
    """The events of each entry this process sent, as (project_id, event_id), until its
    batch is settled: a confirm pass then asks PostgreSQL about them without reading the
    entries back from Redis and decoding them again (that decode was most of a pass's
    cost). Bounded by ``limit`` events: past it the oldest entries are forgotten, and a
    pass reads those from Redis as before; so does one in another process.
    """

    __slots__ = ("_entries", "_size", "limit")

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: dict[bytes, list[tuple[str, str]]] = {}
        self._size = 0
        self.limit = limit

    def remember(self, entry_id: bytes, keys: list[tuple[str, str]]) -> None:
        self.forget([entry_id])
        self._entries[entry_id] = keys
        self._size += len(keys)
        while self._size > self.limit and self._entries:
            oldest = next(iter(self._entries))
            self._size -= len(self._entries.pop(oldest))

    def get(self, entry_id: bytes) -> list[tuple[str, str]] | None:
        return self._entries.get(entry_id)

    def forget(self, entry_ids: Iterable[bytes]) -> None:
        for entry_id in entry_ids:
            keys = self._entries.pop(entry_id, None)
            if keys is not None:
                self._size -= len(keys)

    def __len__(self) -> int:
        return self._size


@dataclass(slots=True)
class ConfirmStats:
    """What confirm passes did, for tests and ``/metrics``."""

    passes: int = 0
    confirmed: int = 0
    resent: int = 0
    dropped: int = 0
    waiting: int = 0


@dataclass(slots=True)
class Confirmer:
    """One confirm pass at a time (``run_once``); see the module docstring."""

    redis: aioredis.Redis
    send: Send
    stream: str
    topic: str
    worker_group: str
    database_url: str
    broker_url: str
    topic_partitions: int
    max_resends: int = 5
    owner: str = "bridge"
    probe: OffsetsProbe | None = None
    stats: ConfirmStats = field(default_factory=ConfirmStats)
    sent_keys: SentKeys = field(default_factory=SentKeys)
    _db: Any = None
    # Times a pass in this process found its topic gone with batches waiting on it.
    broker_losses: ClassVar[int] = 0

    async def run_once(self) -> ConfirmStats:
        """Trim, re-send or leave every recorded batch; returns the running totals."""
        if not await self._hold_lock():
            return self.stats
        self.stats.passes += 1
        waiting = 0
        lost: dict[bytes, tuple[SentBatch, list[Entry]]] = {}
        cursor: Any = 0
        while True:
            reply: Any = await self.redis.hscan(sent_key(self.stream), cursor, count=_SCAN_COUNT)
            cursor, chunk = reply
            if chunk:
                waiting += await self._settle(chunk, lost)
            if not cursor:
                break
        if lost:
            await self._resend(lost)
        self.stats.waiting = waiting
        metrics.BUFFER_UNCONFIRMED.set(waiting + len(lost))
        return self.stats

    async def _hold_lock(self) -> bool:
        key = lock_key(self.stream)
        if await self.redis.set(key, self.owner, nx=True, ex=_LOCK_SECONDS):
            return True
        holder: Any = await self.redis.get(key)
        if holder is not None and holder.decode() == self.owner:
            await self.redis.expire(key, _LOCK_SECONDS)
            return True
        return False

    async def _settle(
        self, chunk: dict[bytes, bytes], lost: dict[bytes, tuple[SentBatch, list[Entry]]]
    ) -> int:
        """Trim the chunk's confirmed batches, add its lost ones to ``lost``; returns waiting."""
        batches = {key: SentBatch.decode(raw) for key, raw in chunk.items()}
        # Offsets are read after the records: a record's messages were acknowledged
        # before it was written, so a healthy broker's end is past every offset in it.
        offsets = await self._offsets()
        if offsets is None:
            return len(batches)
        gone: dict[bytes, SentBatch] = {}
        consumed: dict[bytes, SentBatch] = {}
        for key, batch in batches.items():
            verdict = batch.verdict(offsets)
            if verdict == "lost":
                gone[key] = batch
            elif verdict == "consumed":
                consumed[key] = batch
        if consumed:
            missing = await self._missing(consumed.values())
            for key, batch in consumed.items():
                if any(i in missing for i in batch.ids):
                    gone[key] = batch
                else:
                    await self._trim(key, batch)
        entries = await self._entries([i for batch in gone.values() for i in batch.ids])
        for key, batch in gone.items():
            live = [entries[i] for i in batch.ids if i in entries]
            if live:
                lost[key] = (batch, live)
            else:
                await self.redis.hdel(sent_key(self.stream), key)
                self.sent_keys.forget(batch.ids)
        return len(batches) - len(consumed) - len(gone)

    async def _offsets(self) -> TopicOffsets | None:
        if self.probe is None:
            self.probe = OffsetsProbe(self.broker_url, io_seconds=5.0, client_id="analytics-bridge")
        offsets = await self.probe.read(self.topic, self.worker_group)
        if offsets is None:
            # The broker came back empty and nobody has declared the topic yet.
            log.warning("confirm: topic %s is missing; creating it", self.topic)
            await ensure_topic(self.broker_url, self.topic, self.topic_partitions)
            # Batches were sent to a topic the broker no longer has: it lost its state.
            # A worker in this process holds offsets of the old log (``agents.broker_watch``).
            type(self).broker_losses += 1
        return offsets

    async def _entries(self, ids: Sequence[bytes]) -> dict[bytes, Entry]:
        """The stream entries of these ids that Redis still holds."""
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xrange(self.stream, entry_id, entry_id)
            replies = await pipe.execute()
        found: dict[bytes, Entry] = {}
        for reply in replies:
            for entry_id, fields in reply:
                found[entry_id] = (entry_id, fields)
        return found

    async def _missing(self, batches: Iterable[SentBatch]) -> set[bytes]:
        """Ids of entries holding an event that PostgreSQL does not have."""
        owner: dict[tuple[str, str], bytes] = {}
        unknown: list[bytes] = []
        for batch in batches:
            for entry_id in batch.ids:
                keys = self.sent_keys.get(entry_id)
                if keys is None:
                    unknown.append(entry_id)
                    continue
                for key in keys:
                    owner[key] = entry_id
        for entry_id, (_, fields) in (await self._entries(unknown)).items():
            payload = fields.get(FIELD)
            if payload is None:
                continue  # already trimmed: nothing left to confirm
            for row in orjson.loads(payload):
                owner[(row[0], row[1])] = entry_id
        if not owner:
            return set()
        keys = list(owner)
        rows = await self._query(_MISSING, [k[0] for k in keys], [k[1] for k in keys])
        return {owner[(r[0], r[1])] for r in rows}

    async def _query(self, sql: str, *args: Any) -> list[Any]:
        if self._db is None or self._db.is_closed():
            self._db = await asyncpg.connect(self.database_url, timeout=10)
        try:
            result: list[Any] = await self._db.fetch(sql, *args, timeout=60)
        except BaseException:
            await self._close_db()
            raise
        return result

    async def _trim(self, key: bytes, batch: SentBatch) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xdel(self.stream, *batch.ids)
            pipe.hdel(sent_key(self.stream), key)
            await pipe.execute()
        self.sent_keys.forget(batch.ids)
        self.stats.confirmed += len(batch.ids)
        metrics.BRIDGE_CONFIRMED.inc(len(batch.ids))

    async def _resend(self, lost: dict[bytes, tuple[SentBatch, list[Entry]]]) -> None:
        """Send lost batches again, a few hundred entries per Kafka round, and log once."""
        started = time.monotonic()
        events = entries = 0
        for part in _chunks(list(lost.items()), _RESEND_ENTRIES):
            sendable: list[tuple[bytes, SentBatch, list[Entry]]] = []
            for key, (batch, live) in part:
                if batch.resends >= self.max_resends:
                    log.error(
                        "confirm: giving up on %d buffered entries (first %s) after %d"
                        " re-sends: their events never reached PostgreSQL (removed by"
                        " retention since?)",
                        len(live),
                        key.decode(),
                        batch.resends,
                    )
                    self.stats.dropped += len(live)
                    metrics.BRIDGE_DROPPED.inc(len(live))
                    await self._trim(key, batch)
                else:
                    sendable.append((key, batch, live))
            if not sendable:
                continue
            count, offsets = await self.send([e for _, _, live in sendable for e in live])
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, batch, live in sendable:
                    again = SentBatch([e[0] for e in live], offsets, batch.resends + 1)
                    pipe.hset(sent_key(self.stream), key, again.encode())
                await pipe.execute()
            events += count
            entries += sum(len(live) for _, _, live in sendable)
        self.stats.resent += entries
        metrics.BRIDGE_RESENT.inc(entries)
        if entries:
            log.warning(
                "confirm: the broker lost %d buffered entries (%d events) after acknowledging"
                " them; sent them again in %.2fs (the ledger drops any already stored)",
                entries,
                events,
                time.monotonic() - started,
            )

    async def _close_db(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.terminate()

    async def close(self) -> None:
        await self._close_db()
        if self.probe is not None:
            await self.probe.close()


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
