"""A record the database refuses is dead-lettered; the rest of its batch and partition go on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from analytics.dev.processes import WorkerProcess
from analytics.events.models import EventRow
from analytics.pipeline.kafka import bootstrap, ensure_topic
from analytics.settings import Settings
from analytics.storage import projects
from tests.support.load import settled
from tests.support.stack import wait_for


async def test_poison_event_is_dead_lettered_not_blocking(
    db: asyncpg.Pool, settings_factory: Callable[..., Settings], run_dir: Path
) -> None:
    settings = settings_factory(bridge_enabled=False, topic_partitions=1)
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "poison")
        source_id = await projects.resolve_source(conn, project.project_id, "web")
    now = time.time_ns() // 1000
    rows = [
        EventRow(
            project.project_id,
            f"ok-{i}",
            source_id,
            "web",
            "u",
            "s",
            "fine",
            "{}",
            now,
            1.0,
            now,
            None,
            None,
        )
        for i in range(9)
    ]
    # Bypasses the edge (which refuses it): PostgreSQL cannot store U+0000 in text.
    rows.insert(4, rows[0]._replace(event_id="bad", event_name="a\x00b"))
    await ensure_topic(settings.kafka_broker, settings.events_topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(settings.kafka_broker))
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.events_topic,
            orjson.dumps([tuple(r) for r in rows]),
            key=project.project_id.encode(),
        )
        later = [rows[0]._replace(event_id="after")]
        await producer.send_and_wait(
            settings.events_topic,
            orjson.dumps([tuple(r) for r in later]),
            key=project.project_id.encode(),
        )
    finally:
        await producer.stop()
    worker = WorkerProcess(settings, run_dir, "poison").start()
    try:
        await asyncio.to_thread(worker.wait_ready)

        async def stored() -> set[str] | None:
            async with db.acquire() as conn:
                ids = {
                    r[0]
                    for r in await conn.fetch(
                        "SELECT event_id FROM events WHERE project_id = $1", project.project_id
                    )
                }
            return ids if "after" in ids else None

        ids = await wait_for(stored)
        assert ids == {f"ok-{i}" for i in range(9)} | {"after"}
        async with db.acquire() as conn:
            dead = await conn.fetch(
                "SELECT event_id, error FROM dead_letters WHERE project_id = $1", project.project_id
            )
        assert [r["event_id"] for r in dead] == ["bad"]
        assert "CharacterNotInRepertoire" in dead[0]["error"]
        await settled(db, project.project_id)
    finally:
        worker.stop()
