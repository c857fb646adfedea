"""``/readyz`` on the worker: Redis, PostgreSQL and Kafka answer, each within 2 s.

A worker needs all three: the bridge reads Redis and produces to Kafka, the sink consumes
Kafka and writes PostgreSQL. The probes open their own short-lived connections (asked at
once, closed before the answer), so a probe never competes with the agents for a pooled
connection and nothing keeps reconnecting in the background while a service is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka.client import AIOKafkaClient
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from analytics.kafka import bootstrap
from analytics.settings import Settings

READY_TIMEOUT = 2.0


async def _redis_answers(redis_url: str) -> None:
    client = aioredis.Redis.from_url(
        redis_url,
        socket_timeout=READY_TIMEOUT,
        socket_connect_timeout=READY_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _postgres_answers(database_url: str) -> None:
    conn = await asyncpg.connect(database_url, timeout=READY_TIMEOUT)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


async def _kafka_answers(broker_url: str) -> None:
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap(broker_url),
        client_id="analytics-readyz",
        request_timeout_ms=int(READY_TIMEOUT * 1000),
    )
    try:
        await client.bootstrap()
    finally:
        await client.close()


async def _check(name: str, probe: Callable[[], Awaitable[None]]) -> tuple[str, str]:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await probe()
    except TimeoutError:
        return name, f"fail: no answer within {READY_TIMEOUT:g} s"
    except Exception as exc:  # any failure of a dependency is the finding, not a crash
        return name, f"fail: {type(exc).__name__}"
    return name, "ok"


async def readiness(settings: Settings) -> dict[str, str]:
    """``{"redis": …, "postgres": …, "kafka": …}``, each ``"ok"`` or ``"fail: <why>"``."""
    results = await asyncio.gather(
        _check("redis", lambda: _redis_answers(settings.redis_url)),
        _check("postgres", lambda: _postgres_answers(settings.database_url)),
        _check("kafka", lambda: _kafka_answers(settings.kafka_broker)),
    )
    return dict(results)


def register(app: Any, settings: Settings) -> None:
    """Attach ``/readyz`` to the worker's web server (200 when all answer, else 503)."""

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        checks = await readiness(settings)
        ready = all(v == "ok" for v in checks.values())
        return web.json(
            {"status": "ok" if ready else "fail", "checks": checks}, status=200 if ready else 503
        )
