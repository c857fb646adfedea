"""Agent-side figures: B2 (raw consumer), B3 (bare COPY), raw sink, agents, and the Quix peer."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from analytics.events.models import EventRow
from analytics.pipeline.kafka import bootstrap, ensure_topic
from analytics.settings import Settings
from analytics.storage.events import PartitionCache, copy_records, write_events
from analytics.storage.projects import resolve_source


def users_by_day(rows: list[EventRow]) -> dict[date, int]:
    """Distinct users per UTC day of the rows' timestamps."""
    days: dict[date, set[str]] = {}
    for row in rows:
        if row.user_id is not None:
            day = datetime.fromtimestamp(row.timestamp_us / 1e6, UTC).date()
            days.setdefault(day, set()).add(row.user_id)
    return {day: len(users) for day, users in days.items()}


def make_rows(
    project_id: str,
    source_id: int,
    n: int,
    *,
    distinct_users: bool = False,
    start_us: int | None = None,
) -> Iterator[EventRow]:
    """n events over the last 30 minutes (in order), 10 names, users from a pool or all distinct.

    Event ids are random UUIDv4s, as clients and the edge's default make them: the
    ledger's primary key then grows at random places, as in production.
    """
    now_us = start_us or time.time_ns() // 1000
    tag = uuid.uuid4().hex[:6]
    uuid4 = uuid.uuid4
    for i in range(n):
        user = f"user-{tag}-{i}" if distinct_users else f"user-{random.randrange(5000)}"
        ts = now_us - 1_800_000_000 + i * (1_800_000_000 // max(n, 1))
        yield EventRow(
            project_id,
            str(uuid4()),
            source_id,
            "web",
            user,
            f"s-{user}",
            f"event_{i % 10}",
            '{"page": "/p"}',
            ts,
            1.0,
            now_us,
            "127.0.0.1",
            "bench/1.0",
        )


async def source_for(pool: asyncpg.Pool, project_id: str) -> int:
    async with pool.acquire() as conn:
        return await resolve_source(conn, project_id, "web")


async def preload(settings: Settings, rows: list[EventRow], per_message: int = 500) -> None:
    """Put rows in the events topic as the bridge would (packed, keyed by project)."""
    await ensure_topic(settings.kafka_broker, settings.events_topic, settings.topic_partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap(settings.kafka_broker),
        max_request_size=8 * 1024 * 1024,
        linger_ms=5,
    )
    await producer.start()
    try:
        futures = []
        for start in range(0, len(rows), per_message):
            chunk = rows[start : start + per_message]
            payload = orjson.dumps([tuple(r) for r in chunk])
            futures.append(
                await producer.send(
                    settings.events_topic, payload, key=chunk[0].project_id.encode()
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consumer(settings: Settings, expected_events: int) -> float:
    """B2: a raw aiokafka consumer reading and orjson-decoding the topic; events/s."""
    consumer = AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=bootstrap(settings.kafka_broker),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < expected_events:
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            for messages in batch.values():
                for message in messages:
                    seen += len(orjson.loads(message.value))
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - started)


async def bare_copy(pool: asyncpg.Pool, rows: list[EventRow]) -> float:
    """B3: COPY the very records the sink copies into an unindexed table; rows/s."""
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_copy (event_id text, project_id text,"
            " event_source_id bigint, user_id text, session_id text, event_name text,"
            " properties text, ts_us bigint, sample_rate float8, received_us bigint,"
            " ip_address text, user_agent text)"
        )
        await conn.execute("TRUNCATE bench_copy")
        records = copy_records(rows)
        started = time.perf_counter()
        for start in range(0, len(records), 5000):
            await conn.copy_records_to_table("bench_copy", records=records[start : start + 5000])
        return len(records) / (time.perf_counter() - started)


# B3' copies into a table with the indexes of ``events`` (same columns, in the sink's
# staging types: integer µs where ``events`` has timestamptz, same width) and inserts
# into a ledger shaped like ``event_ids``, as the sink does, with nothing of ours around.
_B3_PRIME_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_copy_indexed (event_id text, project_id text,"
    " event_source_id bigint, user_id text, session_id text, event_name text,"
    " properties text, ts_us bigint, sample_rate float8, received_us bigint,"
    " ip_address text, user_agent text)",
    "CREATE INDEX IF NOT EXISTS bench_copy_indexed_pstn"
    " ON bench_copy_indexed (project_id, event_source_id, ts_us, event_name)",
    "CREATE INDEX IF NOT EXISTS bench_copy_indexed_id ON bench_copy_indexed (event_id)",
    "CREATE TABLE IF NOT EXISTS bench_ledger (project_id text NOT NULL,"
    ' event_id text NOT NULL, "timestamp" timestamptz NOT NULL,'
    " PRIMARY KEY (project_id, event_id))",
    'CREATE INDEX IF NOT EXISTS bench_ledger_time ON bench_ledger ("timestamp")',
)
_B3_PRIME_LEDGER = """
INSERT INTO bench_ledger (project_id, event_id, "timestamp")
SELECT p, e, TIMESTAMPTZ 'epoch' + t * INTERVAL '1 microsecond'
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(p, e, t)
ON CONFLICT DO NOTHING
"""


async def bare_copy_indexed(pool: asyncpg.Pool, rows: list[EventRow]) -> float:
    """B3': COPY into a table indexed like ``events`` plus the ledger insert, per 5,000; rows/s."""
    async with pool.acquire() as conn:
        for statement in _B3_PRIME_DDL:
            await conn.execute(statement)
        await conn.execute("TRUNCATE bench_copy_indexed, bench_ledger")
        records = copy_records(rows)
        started = time.perf_counter()
        for start in range(0, len(records), 5000):
            chunk = records[start : start + 5000]
            async with conn.transaction():
                await conn.execute(
                    _B3_PRIME_LEDGER,
                    [r[1] for r in chunk],
                    [r[0] for r in chunk],
                    [r[7] for r in chunk],
                )
                await conn.copy_records_to_table("bench_copy_indexed", records=chunk)
        return len(records) / (time.perf_counter() - started)


async def raw_sink_alone(pool: asyncpg.Pool, rows: list[EventRow]) -> float:
    """The sink's raw write (ledger + events, no aggregates), batches of 5,000; rows/s."""
    cache = PartitionCache()
    async with pool.acquire() as conn:
        started = time.perf_counter()
        for start in range(0, len(rows), 5000):
            await write_events(conn, rows[start : start + 5000], cache, aggregate=False)
        return len(rows) / (time.perf_counter() - started)


def quix_peer(settings: Settings, n: int) -> tuple[float | None, float | None]:
    """P1: the Quix Streams peer in its own process (it wants the main thread); events/s.

    Same events (``make_rows``, one JSON message each) and the same count as the agents
    row, timed from the application's start to its last event. Returns (events/s,
    seconds from the start to the first event).
    """
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.quix_peer",
            bootstrap(settings.kafka_broker),
            f"{settings.events_topic}-quix",
            f"{settings.app_id}-quix",
            str(n),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    found: dict[str, float] = {}
    for line in result.stdout.splitlines():
        name, _, value = line.partition(" ")
        if name in ("EVENTS_PER_S", "FIRST_EVENT_AFTER_S"):
            found[name] = float(value)
    return found.get("EVENTS_PER_S"), found.get("FIRST_EVENT_AFTER_S")
