"""``event-status`` against the real services (the pure check rules: tests/unit/test_status.py).

``settings_factory`` cannot override ``database_url`` (it is a positional parameter of
``make_settings``), so those tests use ``model_copy``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from analytics.dev.broker import free_port
from analytics.dev.processes import WorkerProcess, analytics_command
from analytics.events.models import EventRow, encode_rows
from analytics.events.times import to_us
from analytics.pipeline.buffer import FIELD
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.migrate import migrate
from analytics.storage.projects import NewProject
from tests.support.stack import ADMIN_DSN, wait_for


async def event_status(settings: Settings, *, json: bool = True) -> tuple[int, Any, float]:
    """Run ``analytics [--json] event-status``: exit code, output (parsed if JSON), seconds."""
    argv = analytics_command(*(["--json"] if json else []), "event-status")
    started = time.monotonic()
    result = await asyncio.to_thread(
        subprocess.run,
        argv,
        env={**os.environ, **settings.as_environ()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    if not json:
        return result.returncode, result.stdout, elapsed
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    return result.returncode, orjson.loads(lines[-1]), elapsed


def checks(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A database of its own (migrated, nothing flushed), for rules on the global flush_log."""
    name = f"sa_test_status_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield url
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_healthy_stack_is_ok(
    worker: WorkerProcess,
    settings: Settings,
    db: asyncpg.Pool,
    project: NewProject,
    redis_client: aioredis.Redis,
) -> None:
    async with db.acquire() as conn:
        source_id = await projects.resolve_source(conn, project.project_id, "web")
    now = to_us(datetime.now(UTC))
    row = EventRow(
        project.project_id, "status-1", source_id, "web", "u", "s", "page_view", "{}", now, 1.0,
        now, None, None,
    )  # fmt: skip
    await redis_client.xadd(settings.stream_key, {FIELD: encode_rows([row])})

    async def stored() -> bool:
        async with db.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM events WHERE project_id = $1", project.project_id
                )
            )

    await wait_for(stored)
    code, report, _ = await event_status(settings)
    assert code == 0, report
    assert report["status"] == "OK", report["checks"]
    assert set(checks(report)) >= {
        "postgresql", "redis", "kafka", "buffer", "kafka_lag", "flush", "freshness",
    }  # fmt: skip
    assert report["kafka"]["topic"] == settings.events_topic
    assert report["kafka"]["group"] == settings.app_id
    assert len(report["kafka"]["partitions"]) == settings.topic_partitions
    assert report["buffer"]["group_exists"] is True
    pg = report["postgres"]
    assert pg["freshness_seconds"] is not None and pg["freshness_seconds"] < 120
    assert pg["rate_5m"] > 0
    assert {f["table"] for f in pg["flushes"]} >= {"agg_5min", "agg_hourly", "agg_daily"}
    assert min(f["age_seconds"] for f in pg["flushes"]) < 60
    assert pg["raw_total_bytes"] > 0 and pg["aggregate_total_bytes"] > 0

    code, text, _ = await event_status(settings, json=False)
    assert code == 0
    assert "kafka_lag" in text and "OK" in text and "FAIL" not in text
    assert settings.events_topic in text


async def test_buffer_depth_and_pending_are_reported(
    settings_factory: Callable[..., Settings], db: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    settings = settings_factory(bridge_claim_idle_ms=600_000)  # a private stream and group
    try:
        for i in range(5):
            await redis_client.xadd(settings.stream_key, {b"probe": str(i)})
        await redis_client.xgroup_create(settings.stream_key, settings.stream_group, id="0")
        await redis_client.xreadgroup(
            settings.stream_group, "probe", {settings.stream_key: ">"}, count=2
        )
        code, report, _ = await event_status(settings)
        assert code == 0, report
        assert report["buffer"]["stream"] == settings.stream_key
        assert report["buffer"]["depth"] == 5
        assert report["buffer"]["pending"] == 2
        assert report["buffer"]["stale_pending"] == 0
        assert checks(report)["buffer"] == "OK"
        # No worker ever ran for this app id: its topic does not exist yet.
        assert checks(report)["kafka_lag"] == "WARN"
        assert report["status"] == "WARN"
    finally:
        await redis_client.delete(settings.stream_key)


async def test_stalled_buffer_fails(
    settings_factory: Callable[..., Settings],
    empty_database: str,
    redis_client: aioredis.Redis,
) -> None:
    settings = settings_factory(bridge_claim_idle_ms=1).model_copy(
        update={"database_url": empty_database}
    )
    try:
        # The first entry is from 1970: long overdue; nothing was ever flushed here.
        await redis_client.xadd(settings.stream_key, {b"probe": b"old"}, id="1000-0")
        async with redis_client.pipeline(transaction=False) as pipe:
            for i in range(10_000):
                pipe.xadd(settings.stream_key, {b"probe": str(i)})
            await pipe.execute()
        await redis_client.xgroup_create(settings.stream_key, settings.stream_group, id="0")
        await redis_client.xreadgroup(
            settings.stream_group, "probe", {settings.stream_key: ">"}, count=3
        )
        code, report, _ = await event_status(settings)
        assert code == 1
        assert report["buffer"]["depth"] == 10_001
        assert report["buffer"]["pending"] == 3
        assert report["buffer"]["stale_pending"] == 3
        assert checks(report)["buffer"] == "WARN"
        assert checks(report)["flush"] == "FAIL"
        assert report["status"] == "FAIL"
    finally:
        await redis_client.delete(settings.stream_key)


async def test_unreachable_postgres_fails_fast(settings_factory: Callable[..., Settings]) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/analytics"
    settings = settings_factory().model_copy(update={"database_url": closed})
    code, report, elapsed = await event_status(settings)
    assert code == 1
    assert report["status"] == "FAIL"
    assert checks(report)["postgresql"] == "FAIL"
    assert checks(report)["redis"] == "OK"
    assert checks(report)["kafka"] == "OK"
    assert "postgresql" in report["errors"]
    assert report["postgres"] is None
    assert elapsed < 30


async def test_every_service_unreachable(settings_factory: Callable[..., Settings]) -> None:
    port = free_port()
    settings = settings_factory(
        redis_url=f"redis://127.0.0.1:{port}/0", kafka_broker=f"kafka://127.0.0.1:{port}"
    ).model_copy(update={"database_url": f"postgresql://postgres@127.0.0.1:{port}/analytics"})
    code, report, elapsed = await event_status(settings)
    assert code == 1
    assert {checks(report)[name] for name in ("postgresql", "redis", "kafka")} == {"FAIL"}
    assert elapsed < 30
