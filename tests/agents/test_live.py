"""The live windowed table: fed by new events only, recovered from its changelog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from analytics.counting.live_minute import LiveMinute, realtime_figures
from analytics.dev.broker import free_port
from analytics.dev.processes import WorkerProcess
from analytics.settings import Settings
from analytics.storage import projects
from tests.support.stack import post, start_edge, wait_for


async def live(
    http: aiohttp.ClientSession, port: int, project: projects.NewProject
) -> dict[str, Any]:
    """The worker's live view, turned into widget figures."""
    async with http.get(
        f"http://127.0.0.1:{port}/live/{project.project_id}/",
        headers={"Authorization": f"Bearer {project.private_key}"},
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    minutes = [(float(start), LiveMinute.from_value(value)) for start, value in body["minutes"]]
    return realtime_figures(minutes, time.time())


async def test_live_figures_match_and_survive_sigkill_without_doubling(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
) -> None:
    settings = settings_factory(topic_partitions=1)
    runner = await start_edge(settings)
    edge = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "live")
    port = free_port()
    first = WorkerProcess(settings, run_dir, "live-1").start(web_port=port)
    second = WorkerProcess(settings, run_dir, "live-2")
    try:
        await asyncio.to_thread(first.wait_ready)
        events = [
            {
                "event_name": ("view", "click")[i % 2],
                "event_source": "web",
                "event_id": f"live-{i}",
                "user_id": f"user-{i % 7}",
            }
            for i in range(50)
        ]
        status, _ = await post(
            http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
        )
        assert status == 202
        figures = await wait_for(lambda: _events_are(http, port, project, 50))
        assert figures["active_users_5_minutes"] == 7
        assert {t["event_name"]: t["count"] for t in figures["top_events_5_minutes"]} == {
            "view": 25,
            "click": 25,
        }

        first.kill()  # SIGKILL
        # The same events again (a client retry) while the worker is down.
        status, _ = await post(
            http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
        )
        assert status == 202
        second.start(web_port=port)
        await asyncio.to_thread(second.wait_ready)
        await asyncio.sleep(3)  # the retried batch has been through the sink by now
        figures = await wait_for(lambda: _events_are(http, port, project, 50))
        assert figures["events_last_hour"] == 50
    finally:
        first.kill()
        second.stop()
        await runner.cleanup()


async def _events_are(
    http: aiohttp.ClientSession, port: int, project: projects.NewProject, n: int
) -> dict[str, Any] | None:
    try:
        figures = await live(http, port, project)
    except aiohttp.ClientError:
        return None
    return figures if figures["events_last_5_minutes"] == n else None


async def test_worker_live_view_needs_the_projects_private_key(
    http: aiohttp.ClientSession,
    worker: WorkerProcess,
    settings: Settings,
    project: projects.NewProject,
    db: asyncpg.Pool,
) -> None:
    async with db.acquire() as conn:
        other = await projects.create_project(conn, "other")
    url = f"http://127.0.0.1:{settings.worker_web_port}/live/{project.project_id}/"
    for key in (None, project.public_key, other.private_key):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 401
    async with http.get(url, headers={"Authorization": f"Bearer {project.private_key}"}) as resp:
        assert resp.status == 200
