"""faust web views on the worker: health, and the live table state of the partitions it holds.

``/live/{project_id}/`` needs that project's private key; it answers the raw
live minutes this worker holds, and the edge's realtime endpoint gathers
them from every worker (a project's partition may live on any of them).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from agents.faust_internals import committed_offset, table_items
from analytics import metrics
from analytics.projects.api_keys import KeyKind, bearer
from analytics.projects.share_tokens import is_share_token
from analytics.settings import Settings
from analytics.storage.projects import find_key
from analytics.storage.share_links import project_of_token


def local_minutes(live: Any, project_id: str) -> list[tuple[float, dict[str, Any]]]:
    """(window start, value) of every live minute this worker holds for the project."""
    out: list[tuple[float, dict[str, Any]]] = []
    for (project, window), value in table_items(live.table):
        if project == project_id:
            out.append((float(window[0]), value))
    return out


def register(app: Any, settings: Settings, live: Any) -> None:
    """Attach ``/metrics``, ``/healthz`` and ``/live/{project_id}/`` to the worker's web server."""
    pools: list[asyncpg.Pool] = []

    async def allowed(request: Any, project_id: str) -> bool:
        key = bearer(request.headers.get("Authorization"))
        if not key:
            return False
        if not pools:
            pools.append(await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2))
        async with pools[0].acquire() as conn:
            if is_share_token(key):  # a share link reads realtime visitors too
                return await project_of_token(conn, key) == project_id
            record = await find_key(conn, key)
        return (
            record is not None
            and record.kind is KeyKind.PRIVATE
            and record.project_id == project_id
        )

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        for tp in list(app.consumer.assignment()):
            if tp.topic != settings.events_topic:
                continue
            try:
                highwater = app.consumer.highwater(tp)
                if highwater is None:
                    continue
            except Exception:  # noqa: S112 (not known right after an assignment)  # nosec B112
                continue
            committed = committed_offset(app, tp) or 0
            metrics.CONSUMER_LAG.labels(str(tp.partition)).set(max(0, highwater - committed))
        body, content_type = metrics.exposition()
        return web.bytes(body, headers={"Content-Type": content_type})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/live/{project_id}/")
    async def live_view(web: Any, request: Any, project_id: str) -> Any:
        if not await allowed(request, project_id):
            return web.json(
                {"code": "invalid_api_key", "detail": "this project's private key is required"},
                status=401,
            )
        minutes = local_minutes(live, project_id)
        return web.json({"project_id": project_id, "minutes": [[s, v] for s, v in minutes]})
