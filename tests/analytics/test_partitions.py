"""The sink recovers when retention dropped a day partition it had created."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from analytics.events.models import EventRow
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject, resolve_source


def row(project_id: str, source_id: int, ts_us: int) -> EventRow:
    return EventRow(
        project_id,
        uuid.uuid4().hex,
        source_id,
        "web",
        "u",
        "s",
        "e",
        "{}",
        ts_us,
        1.0,
        ts_us,
        None,
        None,
    )


async def test_dropped_partition_is_recreated(db: asyncpg.Pool, project: NewProject) -> None:
    day_us = 86_400_000_000
    ts = 11_000 * day_us + 3_600_000_000  # 2000-02-13, a day no other test uses
    name = "events_" + datetime.fromtimestamp(ts / 1e6, UTC).strftime("%Y%m%d")
    cache = PartitionCache()
    async with db.acquire() as conn:
        source_id = await resolve_source(conn, project.project_id, "web")
        fresh, _ = await write_events(conn, [row(project.project_id, source_id, ts)], cache)
        assert len(fresh) == 1
        await conn.execute(f"DROP TABLE {name}")
        fresh, _ = await write_events(conn, [row(project.project_id, source_id, ts)], cache)
        assert len(fresh) == 1
        assert await conn.fetchval(f"SELECT count(*) FROM {name}") == 1
