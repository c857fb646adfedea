"""``/readyz`` on the worker: Redis, PostgreSQL and Kafka answer, each within 2 s.

A worker needs all three: the bridge reads Redis and produces to Kafka, the sink consumes
Kafka and writes PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from analytics.ops.readiness import readiness
from analytics.settings import Settings


def register(app: Any, settings: Settings) -> None:
    """Attach ``/readyz`` to the worker's web server (200 when all answer, else 503)."""

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        checks = await readiness(settings)
        ready = all(v == "ok" for v in checks.values())
        return web.json(
            {"status": "ok" if ready else "fail", "checks": checks}, status=200 if ready else 503
        )
