"""Real services for the suite: the Tansu broker (started here), PostgreSQL and Redis.

PostgreSQL and Redis are the machine's (``TEST_DATABASE_URL`` / ``TEST_REDIS_URL``
point elsewhere); each session gets its own database, and its own stream
keys, topics and consumer groups, so runs never see each other.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from analytics.dev.broker import free_port, start_broker
from analytics.dev.processes import WorkerProcess
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.migrate import migrate
from tests.support.stack import ADMIN_DSN, REDIS_PREFIX, REDIS_URL, make_settings, start_edge


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def broker_url(run_dir: Path) -> Iterator[str]:
    if os.environ.get("TEST_KAFKA_BROKER"):
        yield os.environ["TEST_KAFKA_BROKER"]
        return
    port = free_port()
    proc = start_broker(port, run_dir / "broker.log")
    yield f"kafka://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


async def _create_db(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_db(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"sa_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_db(name))
    base = ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_drop_db(name))


@pytest.fixture(scope="session")
def settings(broker_url: str, database_url: str, run_dir: Path) -> Settings:
    return make_settings(broker_url, database_url, run_dir)


@pytest.fixture(scope="session")
def settings_factory(broker_url: str, database_url: str, run_dir: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        return make_settings(broker_url, database_url, run_dir, **overrides)

    return factory


@pytest.fixture(scope="session")
async def db(database_url: str, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{REDIS_PREFIX}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(scope="session")
async def edge(settings: Settings, db: asyncpg.Pool) -> AsyncIterator[str]:
    """The edge serving on a real socket; yields its base URL."""
    runner = await start_edge(settings)
    yield f"http://127.0.0.1:{settings.http_port}"
    await runner.cleanup()


@pytest.fixture(scope="session")
def worker(settings: Settings, db: asyncpg.Pool, run_dir: Path) -> Iterator[WorkerProcess]:
    """One faust worker (bridge + agents) for the session's stack."""
    proc = WorkerProcess(settings, run_dir).start()
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One client for the session's tests.

    It drops a kept-alive connection after 5 s idle: the edge closes one after
    ``http_header_timeout_seconds`` (10 s), and a client that reuses a connection the
    server is closing gets a reset (a test that waits between requests hit it).
    """
    connector = aiohttp.TCPConnector(keepalive_timeout=5)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


@pytest.fixture
async def project(db: asyncpg.Pool) -> projects.NewProject:
    """A fresh project per test, so tests never see each other's events."""
    async with db.acquire() as conn:
        return await projects.create_project(conn, f"test-{uuid.uuid4().hex[:6]}")
