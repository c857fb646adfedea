"""Realtime metrics from the live tables, gathered from two workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from analytics.dev.broker import free_port
from analytics.dev.processes import WorkerProcess
from analytics.settings import Settings
from analytics.storage import projects
from tests.support.stack import post, start_edge, wait_for


async def realtime(http: aiohttp.ClientSession, edge: str, key: str) -> tuple[int, Any]:
    async with http.get(
        f"{edge}/api/events/metrics/realtime/", headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        return resp.status, await resp.json()


async def test_realtime_figures_with_two_workers(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
) -> None:
    ports = (free_port(), free_port())
    settings = settings_factory(
        topic_partitions=4, worker_urls=tuple(f"http://127.0.0.1:{p}" for p in ports)
    )
    runner = await start_edge(settings)
    edge = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        group = [await projects.create_project(conn, f"rt-{i}") for i in range(4)]
    workers = [
        WorkerProcess(settings, run_dir, f"rt-{i}").start(web_port=p) for i, p in enumerate(ports)
    ]
    try:
        for w in workers:
            await asyncio.to_thread(w.wait_ready)
        sent_at = time.time()
        for n, project in enumerate(group, start=1):
            events = [
                {
                    "event_name": ("signup", "view")[i % 2],
                    "event_source": "web",
                    "user_id": f"u{i % (n + 1)}",
                }
                for i in range(10 * n)
            ]
            status, _ = await post(
                http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
            )
            assert status == 202
        for n, project in enumerate(group, start=1):
            figures = await wait_for(lambda p=project, n=n: _has(http, edge, p.private_key, 10 * n))
            assert figures["events_last_hour"] == 10 * n
            assert figures["active_users_5_minutes"] == n + 1
            assert {t["event_name"] for t in figures["top_events_5_minutes"]} == {"signup", "view"}
            assert sum(m["events"] for m in figures["events_per_minute"]) == 10 * n
            assert figures["workers"] == [
                {"url": f"http://127.0.0.1:{p}", "ok": True} for p in ports
            ]
            assert 0 <= figures["freshness_seconds"] <= time.time() - sent_at + 1
        # Scopes: the public key cannot read, another project's key sees only its own.
        status, body = await realtime(http, edge, group[0].public_key)
        assert (status, body["code"]) == (403, "public_key_not_allowed")
        status, body = await realtime(http, edge, "sa_priv_" + "0" * 40)
        assert status == 401
    finally:
        for w in workers:
            w.stop()
        await runner.cleanup()


async def _has(http: aiohttp.ClientSession, edge: str, key: str, n: int) -> Any:
    status, body = await realtime(http, edge, key)
    assert status == 200, body
    return body if body["events_last_5_minutes"] == n else None


async def test_realtime_without_traffic_says_so(
    http: aiohttp.ClientSession, edge: str, worker: WorkerProcess, project: projects.NewProject
) -> None:
    status, body = await realtime(http, edge, project.private_key)
    assert status == 200
    assert body["events_last_hour"] == 0 and body["freshness_seconds"] is None
    assert body["workers"][0]["ok"] is True
