"""What many tests share: the test services' addresses, settings, an edge, polling, posting.

Test modules import from here (never from ``conftest`` or from one another).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from analytics.dev.broker import free_port
from analytics.settings import Settings
from web.app import edge_runner

ADMIN_DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Every Redis key of one pytest session starts with this, so that two sessions sharing the
# machine's Redis (two checkouts) never delete each other's streams at the end.
REDIS_PREFIX = f"sa_test:{uuid.uuid4().hex[:8]}:"


def make_settings(broker: str, database: str, run_dir: Path, **overrides: Any) -> Settings:
    """Settings with private names (stream, topic, group) for one stack."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "database_url": database,
        "redis_url": REDIS_URL,
        "kafka_broker": broker,
        "app_id": f"sa-test-{tag}",
        "stream_key": f"{REDIS_PREFIX}{tag}:events",
        "events_topic": f"sa-test-{tag}-events",
        "http_port": free_port(),
        "worker_web_port": free_port(),
        "worker_datadir": str(run_dir / f"worker-{tag}"),
        "sink_batch_seconds": 0.1,
        "bridge_claim_idle_ms": 3000,
        "topic_partitions": 2,
    }
    values.update(overrides)
    return Settings(**values)


async def start_edge(settings: Settings) -> web.AppRunner:
    """The edge as production serves it (``edge_runner``), on ``settings.http_port``."""
    runner = edge_runner(settings)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.http_port).start()
    return runner


async def wait_for(
    check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1
) -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, key: str | None, **headers: str
) -> tuple[int, Any]:
    hdrs = {"Content-Type": "application/json", **headers}
    if key:
        hdrs.update(auth(key))
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(url, data=data, headers=hdrs) as resp:
        return resp.status, await resp.json(content_type=None)


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


_ORDERS = {"event_id": "e.event_id", "timestamp": "e.timestamp"}


async def stored_rows(
    db: asyncpg.Pool, project_id: str, n: int, *, order: str = "event_id"
) -> list[asyncpg.Record] | None:
    """A project's events with their source's name, once at least ``n`` are stored."""
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT e.*, s.name AS source FROM events e JOIN event_sources s"
            " ON s.id = e.event_source_id WHERE e.project_id = $1 ORDER BY " + _ORDERS[order],
            project_id,
        )
    return list(rows) if len(rows) >= n else None
