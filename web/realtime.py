"""``GET /api/events/metrics/realtime/``: widget figures from the workers' live tables.

The edge asks every worker in ``WORKER_URLS`` for the project's live minutes
(each holds the partitions assigned to it) and merges them, so the answer is
complete whichever worker owns the project. ``freshness_seconds`` is the age
of the newest event the pipeline has processed for the project: small under
traffic, growing when the pipeline falls behind or traffic stops; compare
with the ingest side to tell which.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp import web

from analytics.counting.live_minute import LiveMinute, merge_minutes, realtime_figures
from analytics.projects.api_keys import bearer
from web.app_keys import SETTINGS
from web.middleware import json_response
from web.private_api import private_project_id

HTTP = web.AppKey("realtime_http", aiohttp.ClientSession)


async def _fetch(
    session: aiohttp.ClientSession, url: str, project_id: str, key: str
) -> tuple[str, list[tuple[float, LiveMinute]] | None]:
    try:
        async with asyncio.timeout(2):
            async with session.get(
                f"{url}/live/{project_id}/", headers={"Authorization": f"Bearer {key}"}
            ) as resp:
                if resp.status != 200:
                    return url, None
                body = await resp.json()
    except (aiohttp.ClientError, TimeoutError):
        return url, None
    return url, [(float(start), LiveMinute.from_value(value)) for start, value in body["minutes"]]


async def live_figures(request: web.Request, project_id: str) -> dict[str, Any]:
    """The project's live figures merged from every worker (asked with the request's key)."""
    key = bearer(request.headers.get("Authorization")) or ""
    settings = request.app[SETTINGS]
    urls = settings.worker_urls or (f"http://127.0.0.1:{settings.worker_web_port}",)
    answers = await asyncio.gather(
        *(_fetch(request.app[HTTP], url, project_id, key) for url in urls)
    )
    now = time.time()
    minutes = merge_minutes(part for _, part in answers if part is not None)
    figures = realtime_figures(minutes, now)
    received = figures.pop("newest_received_at")
    figures.pop("newest_minute", None)
    figures["freshness_seconds"] = round(now - received, 3) if received else None
    figures["workers"] = [{"url": url, "ok": part is not None} for url, part in answers]
    return figures


async def realtime(request: web.Request) -> web.Response:
    """Figures for widgets, seconds old, from the live tables of every worker."""
    figures = await live_figures(request, await private_project_id(request))
    figures.pop("visitors_5_minutes")  # the stats API's realtime visitors
    return json_response(figures)


async def _client(app: web.Application) -> Any:
    session = aiohttp.ClientSession()
    app[HTTP] = session
    try:
        yield
    finally:
        await session.close()


def add_routes(app: web.Application) -> None:
    """Register the realtime endpoint and the HTTP client it gathers with."""
    app.cleanup_ctx.append(_client)
    app.router.add_get("/api/events/metrics/realtime/", realtime)
