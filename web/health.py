"""Liveness and readiness of the edge."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import asyncpg
from aiohttp import web
from aiokafka.client import AIOKafkaClient

from analytics import metrics
from analytics.kafka import bootstrap
from web.keys import PG_POOL, REDIS, SETTINGS
from web.middleware import json_response

# Each dependency must answer within this; /readyz as a whole stays under about this too,
# because the checks run at the same time.
READY_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return json_response({"status": "ok"})


async def _kafka_answers(broker_url: str) -> None:
    """Connect to a bootstrap broker and fetch cluster metadata; raises when none answers.

    A fresh client per probe: nothing lingers (or reconnects in the background) while
    Kafka is down, and start-up never waits for the broker.
    """
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap(broker_url),
        client_id="analytics-readyz",
        request_timeout_ms=int(READY_TIMEOUT * 1000),
    )
    try:
        await client.bootstrap()
    finally:
        await client.close()


async def _check(checks: dict[str, str], name: str, probe: Awaitable[object]) -> None:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await probe
        checks[name] = "ok"
    except TimeoutError:
        checks[name] = f"fail: no answer within {READY_TIMEOUT:g} s"
    except Exception as exc:  # any failure of a dependency is the finding, not a crash
        checks[name] = f"fail: {type(exc).__name__}"


async def _postgres_answers(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def readyz(request: web.Request) -> web.Response:
    """Redis, PostgreSQL and Kafka answer (each within 2 s, asked at once); else 503 naming them.

    The edge itself needs only Redis and PostgreSQL to accept events; Kafka is checked because
    without it nothing leaves the buffer, and an operator should see that here first.
    """
    app = request.app
    checks: dict[str, str] = {}
    await asyncio.gather(
        _check(checks, "redis", app[REDIS].ping()),
        _check(checks, "postgres", _postgres_answers(app[PG_POOL])),
        _check(checks, "kafka", _kafka_answers(app[SETTINGS].kafka_broker)),
    )
    ready = all(v == "ok" for v in checks.values())
    ordered = {name: checks[name] for name in ("redis", "postgres", "kafka")}
    return json_response(
        {"status": "ok" if ready else "fail", "checks": ordered}, 200 if ready else 503
    )


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus exposition of this edge process."""
    body, content_type = metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
