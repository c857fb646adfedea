"""Readiness probes shared by the edge's and the worker's ``/readyz``.

Each dependency must answer within ``READY_TIMEOUT``; the probes run at the same time.
``readiness(settings)`` opens its own short-lived connections (closed before the answer),
so a probe never competes for a pooled connection and nothing keeps reconnecting in the
background while a service is down; the edge passes its pool and client instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import redis.asyncio as aioredis
from aiokafka.client import AIOKafkaClient
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from analytics.pipeline.kafka import bootstrap
from analytics.settings import Settings

READY_TIMEOUT = 2.0


Probe = Callable[[], Awaitable[object]]
CHECKS = ("redis", "postgres", "kafka")


def fail_fast_redis(redis_url: str, timeout: float = READY_TIMEOUT) -> aioredis.Redis:
    """A Redis client that gives up after ``timeout`` s and never retries (for probes)."""
    return aioredis.Redis.from_url(
        redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


async def redis_answers(redis_url: str) -> None:
    """PING a Redis server on a short-lived connection; raises when it does not answer."""
    client = fail_fast_redis(redis_url)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def postgres_answers(database_url: str) -> None:
    """``SELECT 1`` on a short-lived connection; raises when PostgreSQL does not answer."""
    conn = await asyncpg.connect(database_url, timeout=READY_TIMEOUT)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


async def pool_answers(pool: asyncpg.Pool) -> None:
    """``SELECT 1`` on a pooled connection (the edge's own pool)."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def kafka_answers(broker_url: str) -> None:
    """Connect to a bootstrap broker and fetch cluster metadata; raises when none answers."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap(broker_url),
        client_id="analytics-readyz",
        request_timeout_ms=int(READY_TIMEOUT * 1000),
    )
    try:
        await client.bootstrap()
    finally:
        await client.close()


async def check(name: str, probe: Callable[[], Awaitable[object]]) -> tuple[str, str]:
    """``(name, "ok")`` or ``(name, "fail: <why>")`` for one probe."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await probe()
    except TimeoutError:
        return name, f"fail: no answer within {READY_TIMEOUT:g} s"
    except Exception as exc:  # any failure of a dependency is the finding, not a crash
        return name, f"fail: {type(exc).__name__}"
    return name, "ok"


async def run_checks(probes: dict[str, Probe]) -> dict[str, str]:
    """Every probe at once; ``{name: "ok" | "fail: <why>"}`` in the order given."""
    results = dict(await asyncio.gather(*(check(name, p) for name, p in probes.items())))
    return {name: results[name] for name in probes}


async def readiness(settings: Settings) -> dict[str, str]:
    """``{"redis": …, "postgres": …, "kafka": …}``, each ``"ok"`` or ``"fail: <why>"``."""
    return await run_checks(
        {
            "redis": lambda: redis_answers(settings.redis_url),
            "postgres": lambda: postgres_answers(settings.database_url),
            "kafka": lambda: kafka_answers(settings.kafka_broker),
        }
    )
