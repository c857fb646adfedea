"""``/readyz`` on the edge and on the worker: Redis, PostgreSQL and Kafka, against the real ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import asyncpg

from analytics.dev.broker import free_port
from analytics.dev.processes import WorkerProcess
from analytics.settings import Settings
from tests.support.stack import start_edge

ALL_OK = {"redis": "ok", "postgres": "ok", "kafka": "ok"}


async def test_edge_ready_with_every_service(edge: str, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{edge}/readyz") as resp:
        body = await resp.json()
        assert resp.status == 200, body
    assert body == {"status": "ok", "checks": ALL_OK}


async def test_edge_not_ready_names_kafka(
    http: aiohttp.ClientSession, settings_factory: Callable[..., Settings], db: asyncpg.Pool
) -> None:
    settings = settings_factory(kafka_broker=f"kafka://127.0.0.1:{free_port()}")  # nothing there
    runner = await start_edge(settings)  # starts although Kafka is down
    url = f"http://127.0.0.1:{settings.http_port}"
    try:
        started = time.monotonic()
        async with http.get(f"{url}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503, body
        assert time.monotonic() - started < 3
        assert body["status"] == "fail"
        assert body["checks"]["kafka"].startswith("fail")
        assert body["checks"]["redis"] == "ok" and body["checks"]["postgres"] == "ok"
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 200  # alive, just not ready
    finally:
        await runner.cleanup()


async def test_edge_readiness_is_bounded_when_kafka_hangs(
    http: aiohttp.ClientSession, settings_factory: Callable[..., Settings], db: asyncpg.Pool
) -> None:
    """A broker that accepts connections and never answers costs at most the 2 s bound."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = settings_factory(kafka_broker=f"kafka://127.0.0.1:{port}")
    runner = await start_edge(settings)
    try:
        started = time.monotonic()
        async with http.get(f"http://127.0.0.1:{settings.http_port}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503, body
        elapsed = time.monotonic() - started
        assert 1.5 < elapsed < 3.5, elapsed
        assert body["checks"]["kafka"].startswith("fail")
        assert body["checks"]["redis"] == "ok" and body["checks"]["postgres"] == "ok"
    finally:
        await runner.cleanup()
        server.close()
        for writer in held:
            writer.close()


async def test_worker_ready(
    worker: WorkerProcess, settings: Settings, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"http://127.0.0.1:{settings.worker_web_port}/readyz") as resp:
        body = await resp.json()
        assert resp.status == 200, body
    # The worker also checks its own committed offsets against the log's end.
    assert body == {"status": "ok", "checks": {**ALL_OK, "offsets": "ok"}}
