"""The worker's daily housekeeping job, called directly against the session database.

Other tests share the database: old data is only written for 2002 (nothing else writes that
year), and each test looks only at its own project and at audit rows written after it began.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from agents.housekeeping import run_housekeeping
from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.ops import retention
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject


def event(project_id: str, source_id: int, i: int, at: datetime) -> EventRow:
    received = to_us(datetime.now(UTC))
    return EventRow(
        project_id, uuid.uuid4().hex, source_id, "web", f"u{i}", f"s{i}", "page_view", "{}",
        to_us(at), 1.0, received, None, None,
    )  # fmt: skip


async def add_events(db: asyncpg.Pool, project_id: str, times: list[datetime]) -> None:
    """One event per time, with aggregates, through the sink's own write path."""
    async with db.acquire() as conn:
        source_id = await projects.resolve_source(conn, project_id, "web")
        rows = [event(project_id, source_id, i, at) for i, at in enumerate(times)]
        await write_events(conn, rows, PartitionCache())


async def count(db: asyncpg.Pool, sql: str, *args: object) -> int:
    async with db.acquire() as conn:
        return int(await conn.fetchval(sql, *args))


async def cleanup_audits(db: asyncpg.Pool, since: datetime) -> list[dict[str, object]]:
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT project_id, detail FROM audit_log WHERE action = 'cleanup' AND at >= $1"
            " ORDER BY id",
            since,
        )
    assert all(r["project_id"] is None for r in rows)
    return [orjson.loads(r["detail"]) for r in rows]


async def db_now(db: asyncpg.Pool) -> datetime:
    async with db.acquire() as conn:
        now: datetime = await conn.fetchval("SELECT now()")
    return now


async def test_two_concurrent_runs_remove_old_data_once(
    settings: Settings, db: asyncpg.Pool, project: NewProject
) -> None:
    pid = project.project_id
    old = [datetime(2002, 3, 4, 12, tzinfo=UTC), datetime(2002, 3, 5, 8, tzinfo=UTC)]
    recent = datetime.now(UTC) - timedelta(hours=1)
    await add_events(db, pid, [*old, recent])
    before_2003 = datetime(2003, 1, 1, tzinfo=UTC)
    old_events = 'SELECT count(*) FROM events WHERE project_id = $1 AND "timestamp" < $2'
    assert await count(db, old_events, pid, before_2003) == 2
    # A partition the job must (re)create: the last day ahead, empty (the edge refuses events
    # more than a day ahead, so nothing else writes there).
    last = (datetime.now(UTC) + timedelta(days=settings.partitions_ahead_days)).date()
    ahead = f"events_{last:%Y%m%d}"
    async with db.acquire() as conn:
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", ahead):
            assert not await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {ahead})")
            await conn.execute(f"DROP TABLE {ahead}")
    since = await db_now(db)

    first, second = await asyncio.gather(run_housekeeping(settings), run_housekeeping(settings))

    outcomes = sorted([first["outcome"], second["outcome"]])
    assert outcomes in (["done", "done"], ["done", "skipped"]), (first, second)
    audits = await cleanup_audits(db, since)
    assert sorted(a["outcome"] for a in audits) == outcomes
    assert {a["day"] for a in audits} == {datetime.now(UTC).date().isoformat()}
    done = next(a for a in audits if a["outcome"] == "done")
    assert done["deleted"]["events"] >= 2 and "dropped_partitions" in done
    assert await count(db, old_events, pid, before_2003) == 0
    assert await count(
        db, 'SELECT count(*) FROM event_ids WHERE project_id = $1 AND "timestamp" < $2',
        pid, before_2003,
    ) == 0  # fmt: skip
    for table in ("agg_5min", "agg_hourly", "agg_daily"):
        assert await count(
            db, f"SELECT count(*) FROM {table} WHERE project_id = $1 AND bucket_start < $2",
            pid, before_2003,
        ) == 0, table  # fmt: skip
    assert await count(db, "SELECT count(*) FROM events WHERE project_id = $1", pid) == 1
    assert await count(db, "SELECT count(to_regclass($1))", ahead) == 1


async def test_run_is_skipped_while_another_cleanup_holds_the_lock(
    settings: Settings, db: asyncpg.Pool, project: NewProject
) -> None:
    await add_events(db, project.project_id, [datetime(2002, 6, 7, 12, tzinfo=UTC)])
    since = await db_now(db)
    holder = await asyncpg.connect(settings.database_url)
    try:
        async with retention.exclusive(holder):  # e.g. `analytics cleanup-events` by hand
            result = await asyncio.wait_for(run_housekeeping(settings), 30)
    finally:
        await holder.close()
    assert result["outcome"] == "skipped", result
    assert "cleanup lock" in str(result["error"])
    assert [a["outcome"] for a in await cleanup_audits(db, since)] == ["skipped"]
    # Skipped means untouched: the lock holder does the removing.
    assert await count(
        db, "SELECT count(*) FROM events WHERE project_id = $1", project.project_id
    ) == 1  # fmt: skip
