"""The buffer's group commit on the machine's Redis: merged entries, whole requests, scripts."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as aioredis

from analytics.errors import RateLimited
from analytics.events.models import EventRow, decode_rows, encode_rows
from analytics.pipeline.buffer import ENTRY_EVENTS, FIELD, BufferWriter, merge_payloads
from analytics.projects.limits import minute_limit
from tests.support.stack import REDIS_PREFIX


def rows(tag: str, n: int) -> list[EventRow]:
    now = time.time_ns() // 1000
    return [
        EventRow("p", f"{tag}-{i}", 1, "web", "u", "s", "e", "{}", now, 1.0, now, None, None)
        for i in range(n)
    ]  # fmt: skip


async def entries(client: aioredis.Redis, stream: str) -> list[list[str]]:
    """The event ids of each entry, in stream order."""
    out = []
    for _, fields in await client.xrange(stream):
        out.append([row.event_id for row in decode_rows(fields[FIELD])])
    return out


def test_merge_payloads_is_the_encoding_of_all_rows() -> None:
    a, b = rows("a", 2), rows("b", 3)
    merged = merge_payloads([encode_rows(a), encode_rows(b)])
    assert decode_rows(merged) == a + b
    assert merge_payloads([encode_rows(a)]) == encode_rows(a)


async def test_concurrent_requests_share_entries_and_none_is_split(
    redis_client: aioredis.Redis,
) -> None:
    stream = f"{REDIS_PREFIX}buffer-{uuid.uuid4().hex[:6]}"
    writer = BufferWriter(redis_client, stream)
    singles = [rows(f"s{i}", 1) for i in range(300)]
    big = [rows("big1", 600), rows("big2", 600)]
    await asyncio.gather(*(writer.append(r) for r in [*singles, *big]))

    stored = await entries(redis_client, stream)
    flat = [event_id for entry in stored for event_id in entry]
    expected = [row.event_id for r in [*singles, *big] for row in r]
    assert sorted(flat) == sorted(expected)  # every event once
    assert len(stored) < len(singles)  # merged: far fewer entries than requests
    assert all(len(entry) <= ENTRY_EVENTS for entry in stored)
    for request in big:  # a request is never split across entries
        ids = {row.event_id for row in request}
        assert sum(1 for entry in stored if ids & set(entry)) == 1
    await redis_client.delete(stream)


async def test_limited_requests_survive_a_script_flush(redis_client: aioredis.Redis) -> None:
    stream = f"{REDIS_PREFIX}buffer-{uuid.uuid4().hex[:6]}"
    scope = f"{REDIS_PREFIX}limit-{uuid.uuid4().hex[:6]}"
    writer = BufferWriter(redis_client, stream)
    limit = minute_limit(scope, 3, time.time(), "rate_limited", "this test")
    await writer.append(rows("a", 1), [limit])
    # Redis forgets its scripts (a restart, SCRIPT FLUSH): the next EVALSHA gets NOSCRIPT.
    await redis_client.script_flush()
    await writer.append(rows("b", 1), [limit])
    await writer.append(rows("c", 1), [limit])
    try:
        await writer.append(rows("d", 1), [limit])
        raise AssertionError("the fourth event should exceed a limit of 3")
    except RateLimited as exc:
        assert exc.code == "rate_limited"
    assert [e for entry in await entries(redis_client, stream) for e in entry] == [
        "a-0",
        "b-0",
        "c-0",
    ]
    await redis_client.delete(stream, limit.current_key, limit.previous_key)
