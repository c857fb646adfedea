"""``/readyz`` on the worker: Redis, PostgreSQL and Kafka answer, each within 2 s.

A worker needs all three: the bridge reads Redis and produces to Kafka, the sink consumes
Kafka and writes PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from agents.faust_internals import committed_offset
from analytics.ops.readiness import readiness
from analytics.settings import Settings


def offsets_beyond_end(app: Any, topic: str) -> list[str]:
    """This worker's partitions whose committed offset lies past the log's end.

    That happens when the broker lost what it had acknowledged (a memory-only broker
    restarted): the worker must not report ready until it has been restarted.
    """
    found: list[str] = []
    for tp in list(app.consumer.assignment()):
        if tp.topic != topic:
            continue
        try:
            end = app.consumer.highwater(tp)
        except Exception:  # noqa: S112 (not known right after an assignment)  # nosec B112
            continue
        committed = committed_offset(app, tp)
        if end is not None and committed is not None and committed > end:
            found.append(f"partition {tp.partition}: committed {committed} > end {end}")
    return found


def register(app: Any, settings: Settings) -> None:
    """Attach ``/readyz`` to the worker's web server (200 when all answer, else 503)."""

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        checks = await readiness(settings)
        beyond = offsets_beyond_end(app, settings.events_topic)
        checks["offsets"] = "fail: " + "; ".join(beyond) if beyond else "ok"
        ready = all(v == "ok" for v in checks.values())
        return web.json(
            {"status": "ok" if ready else "fail", "checks": checks}, status=200 if ready else 503
        )
