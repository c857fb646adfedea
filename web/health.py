"""Liveness and readiness of the edge."""

from __future__ import annotations

from aiohttp import web

from analytics import metrics
from analytics.ops.readiness import kafka_answers, pool_answers, run_checks
from web.app_keys import PG_POOL, REDIS, SETTINGS
from web.middleware import json_response


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Redis, PostgreSQL and Kafka answer (each within 2 s, asked at once); else 503 naming them.

    The edge itself needs only Redis and PostgreSQL to accept events; Kafka is checked because
    without it nothing leaves the buffer, and an operator should see that here first.
    """
    app = request.app
    checks = await run_checks(
        {
            "redis": app[REDIS].ping,
            "postgres": lambda: pool_answers(app[PG_POOL]),
            "kafka": lambda: kafka_answers(app[SETTINGS].kafka_broker),
        }
    )
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
