"""``event-status`` with the worker stopped: lag grows, and after the flush timeout it FAILs.

A stack of its own (database, stream, topic, consumer group), so the global ``flush_log`` holds
only this stack's flushes. The worker runs, stores a first batch (status OK), and is stopped;
then events keep coming: through the edge into the Redis stream (no bridge moves them on),
and straight into the Kafka topic (as a bridge on another machine would), so the lag of the
stopped worker's group grows. Right after the stop the status cannot yet tell a stopped worker
from a busy one; once the last flush is older than ``FLUSH_STALE_SECONDS`` (60 s, waited for
real) while work waits, ``flush`` is FAIL and the command exits 1 (README: "exits 1 on FAIL").
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from analytics.dev.processes import WorkerProcess, analytics_command
from analytics.events.models import EventRow, encode_rows
from analytics.events.times import to_us
from analytics.ops.status import FLUSH_STALE_SECONDS
from analytics.pipeline.kafka import make_producer
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.migrate import migrate
from tests.support.stack import ADMIN_DSN, start_edge, wait_for


async def event_status(settings: Settings) -> tuple[int, dict[str, Any]]:
    """``analytics --json event-status`` for this stack: exit code and report."""
    result = await asyncio.to_thread(
        subprocess.run,
        analytics_command("--json", "event-status"),
        env={**os.environ, **settings.as_environ()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    report: dict[str, Any] = orjson.loads(lines[-1])
    return result.returncode, report


def levels(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def documented_exit(report: dict[str, Any]) -> int:
    return 1 if report["status"] == "FAIL" else 0


@pytest.fixture
async def own_database() -> AsyncIterator[str]:
    name = f"sa_test_stopped_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def send(http: aiohttp.ClientSession, url: str, key: str, count: int) -> None:
    body = {"events": [{"event_name": "view", "event_source": "web"} for _ in range(count)]}
    async with http.post(
        f"{url}/api/events/batch/",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 202, await resp.text()


async def produce(settings: Settings, project_id: str, source_id: int, messages: int) -> None:
    """Packed event messages straight into the topic, keyed by project like the bridge's."""
    producer = make_producer(settings.kafka_broker)
    await producer.start()
    try:
        now = to_us(datetime.now(UTC))
        for _ in range(messages):
            row = EventRow(
                project_id, uuid.uuid4().hex, source_id, "web", "u", "s", "view", "{}", now, 1.0,
                now, None, None,
            )  # fmt: skip
            # One at a time: the dev broker (Tansu) reports a partition's end as the last
            # *batch's* base offset + 1, so a multi-record batch would hide lag from the test.
            await producer.send_and_wait(
                settings.events_topic, encode_rows([row]), key=project_id.encode()
            )
    finally:
        await producer.stop()


async def test_stopped_worker_lag_grows_then_fails(
    settings_factory: Callable[..., Settings],
    own_database: str,
    run_dir: Path,
    http: aiohttp.ClientSession,
    redis_client: aioredis.Redis,
) -> None:
    settings = settings_factory().model_copy(update={"database_url": own_database})
    pool = await asyncpg.create_pool(own_database, min_size=1, max_size=2)
    worker = WorkerProcess(settings, run_dir, name="stopped-worker")
    runner = None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            project = await projects.create_project(conn, "stopped-worker")
            source_id = await projects.resolve_source(conn, project.project_id, "web")
        worker.start()
        await asyncio.to_thread(worker.wait_ready)
        runner = await start_edge(settings)
        url = f"http://127.0.0.1:{settings.http_port}"

        # Running: the first batch is stored, nothing waits, all OK.
        await send(http, url, project.public_key, 5)

        async def stored() -> bool:
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT count(*) = 5 FROM events"))

        await wait_for(stored)
        code, report = await event_status(settings)
        assert report["status"] == "OK", report["checks"]
        assert code == documented_exit(report) == 0

        worker.stop()
        stopped_at = time.monotonic()

        # Stopped, events keep coming: the buffer and the Kafka lag grow.
        for _ in range(3):
            await send(http, url, project.public_key, 10)
        await produce(settings, project.project_id, source_id, 20)
        code, early = await event_status(settings)
        assert code == documented_exit(early)
        assert early["buffer"]["depth"] == 3
        assert early["kafka"]["total_lag"] == 20, early["kafka"]["partitions"]
        assert levels(early)["kafka"] == "OK" and levels(early)["buffer"] == "OK"

        await send(http, url, project.public_key, 10)
        await produce(settings, project.project_id, source_id, 15)
        # Past the flush timeout with work waiting and no worker: FAIL, exit 1.
        await asyncio.sleep(max(0.0, FLUSH_STALE_SECONDS + 2 - (time.monotonic() - stopped_at)))
        code, late = await event_status(settings)
        assert late["buffer"]["depth"] == 4 > early["buffer"]["depth"]
        assert late["kafka"]["total_lag"] == 35 > early["kafka"]["total_lag"]
        assert late["kafka"]["group"] == settings.app_id
        assert levels(late)["flush"] == "FAIL", late["checks"]
        flush = next(c for c in late["checks"] if c["name"] == "flush")
        assert "Kafka lag 35" in flush["reason"] and "is a worker running" in flush["reason"]
        assert late["status"] == "FAIL"
        assert code == documented_exit(late) == 1
        async with pool.acquire() as conn:  # nothing was stored after the stop
            assert await conn.fetchval("SELECT count(*) FROM events") == 5
    finally:
        worker.stop()
        if runner is not None:
            await runner.cleanup()
        await pool.close()
        await redis_client.delete(settings.stream_key)
