"""Liveness and readiness of the edge."""

from __future__ import annotations

import asyncio

from aiohttp import web

from analytics import metrics
from web.keys import PG_POOL, REDIS
from web.middleware import json_response


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Redis and PostgreSQL answer; 503 naming what does not."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            await request.app[REDIS].ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"fail: {type(exc).__name__}"
    try:
        async with asyncio.timeout(2):
            async with request.app[PG_POOL].acquire() as conn:
                await conn.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"fail: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ok" if ready else "fail", "checks": checks}, 200 if ready else 503
    )


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus exposition of this edge process."""
    body, content_type = metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
