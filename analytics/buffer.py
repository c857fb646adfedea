"""The Redis Stream buffer between the edge and Kafka.

One stream entry per accepted request, holding all its events, written with
a single XADD: one round trip per request, atomic for the whole batch. The
bridge reads entries with a consumer group and deletes them once Kafka has
acknowledged their events.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from analytics.errors import BufferUnavailable
from analytics.models import EventRow, encode_rows

FIELD = b"e"


async def append(client: aioredis.Redis, stream: str, rows: list[EventRow]) -> None:
    """Make ``rows`` durable in the buffer, or raise ``BufferUnavailable`` (503)."""
    try:
        await client.xadd(stream, {FIELD: encode_rows(rows)})
    except (RedisError, OSError) as exc:
        raise BufferUnavailable(
            "the event buffer is unreachable; nothing was accepted, retry later",
            retry_after=5,
        ) from exc


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A Redis client for the buffer with bounded timeouts (fail fast, answer 503)."""
    options.setdefault("socket_timeout", 2.0)
    options.setdefault("socket_connect_timeout", 2.0)
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    return client
