"""Retention (``cleanup-events``), run for real as a subprocess against the session database.

Other tests share the database: every test uses its own projects, and partitions are dropped
only for days in 2001, which nothing else writes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
import orjson

from analytics.dev.processes import analytics_command
from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.ops.retention import TABLES
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject

TODAY = datetime.now(UTC).date()


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


async def add_events(db: asyncpg.Pool, project_id: str, days: list[date]) -> None:
    """One event per listed day (repeat a day for more), at noon UTC; aggregates included."""
    async with db.acquire() as conn:
        source_id = await projects.resolve_source(conn, project_id, "web")
        rows = [
            EventRow(
                project_id,
                uuid.uuid4().hex,
                source_id,
                "web",
                f"u{i}",
                f"s{i}",
                "page_view",
                "{}",
                to_us(noon(day) + timedelta(seconds=i)),
                1.0,
                to_us(datetime.now(UTC)),
                None,
                None,
            )
            for i, day in enumerate(days)
        ]
        await write_events(conn, rows, PartitionCache())


async def new_project(db: asyncpg.Pool, **settings: Any) -> str:
    async with db.acquire() as conn:
        project = await projects.create_project(conn, f"retention-{uuid.uuid4().hex[:6]}")
        if settings:
            await conn.execute(
                "UPDATE projects SET settings = settings || $2::jsonb WHERE id = $1",
                project.project_id,
                orjson.dumps(settings).decode(),
            )
    return project.project_id


async def set_settings(db: asyncpg.Pool, project_id: str, **settings: Any) -> None:
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE projects SET settings = settings || $2::jsonb WHERE id = $1",
            project_id,
            orjson.dumps(settings).decode(),
        )


async def cleanup(settings: Settings, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run ``analytics --json cleanup-events ARGS``; returns exit code, report and stderr."""
    result = await asyncio.to_thread(
        subprocess.run,
        analytics_command("--json", "cleanup-events", *args),
        env={**os.environ, **settings.as_environ()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.strip().splitlines()
    report = orjson.loads(lines[-1]) if result.returncode == 0 and lines else {}
    return result.returncode, report, result.stderr


async def days_of(db: asyncpg.Pool, table: str, project_id: str) -> list[date]:
    """The UTC days a project has rows for in ``table``, with repeats, sorted."""
    column = {
        "events": '"timestamp"',
        "event_ids": '"timestamp"',
        "project_daily_summary": "day",
        "stats_daily": "day",
        "visits": "started_at",
    }.get(table, "bucket_start")
    async with db.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT ({column} AT TIME ZONE 'UTC')::date FROM {table} WHERE project_id = $1"
            f" ORDER BY 1",
            project_id,
        )
    return [r[0] for r in rows]


async def partition_exists(db: asyncpg.Pool, name: str) -> bool:
    async with db.acquire() as conn:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def test_expired_rows_go_others_stay_and_dry_run_matches(
    db: asyncpg.Pool, settings: Settings, project: NewProject
) -> None:
    short = project.project_id
    await set_settings(db, short, retention_days=30)
    other = await new_project(db)  # default 90 days
    await add_events(db, short, [ago(40), ago(40), ago(10)])
    await add_events(db, other, [ago(40)])

    code, dry, _ = await cleanup(settings, "--project", short, "--dry-run")
    assert code == 0
    assert dry["dry_run"] is True
    assert dry["dropped_partitions"] == []  # 40 days is within the other project's 90
    assert dry["deleted"] == {
        "events": 2,
        "event_ids": 2,
        "visits": 2,  # visits follow the raw events
        "agg_5min": 0,
        "agg_hourly": 0,
        "agg_daily": 0,
        "project_daily_summary": 0,
        "stats_hourly": 0,
        "stats_daily": 0,
    }
    assert await days_of(db, "events", short) == [ago(40), ago(40), ago(10)]
    assert await days_of(db, "event_ids", short) == [ago(40), ago(40), ago(10)]

    code, real, _ = await cleanup(settings, "--project", short)
    assert code == 0
    assert {**real, "dry_run": True} == dry
    assert await days_of(db, "events", short) == [ago(10)]
    assert await days_of(db, "event_ids", short) == [ago(10)]
    assert await days_of(db, "events", other) == [ago(40)]
    assert await days_of(db, "event_ids", other) == [ago(40)]
    # Aggregates keep their own (730-day) retention.
    assert await days_of(db, "agg_daily", short) == [ago(40), ago(10)]

    # The whole-database run (every project) keeps the other project's 40-day-old event too.
    code, _, _ = await cleanup(settings)
    assert code == 0
    assert await days_of(db, "events", other) == [ago(40)]
    assert await days_of(db, "events", short) == [ago(10)]


async def test_old_day_partitions_are_dropped(
    db: asyncpg.Pool, settings: Settings, project: NewProject
) -> None:
    second = await new_project(db)
    await add_events(db, project.project_id, [date(2001, 3, 4), date(2001, 3, 5)])
    await add_events(db, second, [date(2001, 3, 5)])
    names = ["events_20010304", "events_20010305"]

    code, dry, _ = await cleanup(settings, "--dry-run")
    assert code == 0
    assert set(names) <= set(dry["dropped_partitions"])
    assert dry["deleted"]["events"] >= 3
    assert dry["deleted"]["event_ids"] >= 3
    assert dry["deleted"]["agg_daily"] >= 3  # 2001 is past the 730-day aggregate retention too
    for name in names:
        assert await partition_exists(db, name)
    assert len(await days_of(db, "event_ids", project.project_id)) == 2

    code, real, _ = await cleanup(settings)
    assert code == 0
    assert {**real, "dry_run": True} == dry  # nothing was written in between: the same plan
    for name in names:
        assert not await partition_exists(db, name)
    for project_id in (project.project_id, second):
        for table in TABLES[1:]:
            assert await days_of(db, table, project_id) == [], table


async def test_one_project_never_drops_another_projects_rows(
    db: asyncpg.Pool, settings: Settings, project: NewProject
) -> None:
    other = await new_project(db)
    day = date(2001, 4, 1)
    await add_events(db, project.project_id, [day, day])
    await add_events(db, other, [day])

    code, report, _ = await cleanup(settings, "--project", project.project_id)
    assert code == 0
    assert report["dropped_partitions"] == []
    assert report["deleted"]["events"] == 2
    assert await partition_exists(db, "events_20010401")
    assert await days_of(db, "events", project.project_id) == []
    assert await days_of(db, "events", other) == [day]

    # Now only the other project's rows are left: its own run drops the partition.
    code, report, _ = await cleanup(settings, "--project", other)
    assert code == 0
    assert report["dropped_partitions"] == ["events_20010401"]
    assert report["deleted"]["events"] == 1
    assert not await partition_exists(db, "events_20010401")


async def test_aggregates_past_aggregate_retention_are_removed(
    db: asyncpg.Pool, settings: Settings, project: NewProject
) -> None:
    pid = project.project_id
    await set_settings(db, pid, retention_days=30, aggregate_retention_days=60)
    await add_events(db, pid, [ago(100), ago(45), ago(5)])

    code, report, _ = await cleanup(settings, "--project", pid)
    assert code == 0
    assert report["deleted"] == {
        "events": 2,
        "event_ids": 2,
        "visits": 2,
        "agg_5min": 1,
        "agg_hourly": 1,
        "agg_daily": 1,
        "project_daily_summary": 1,
        "stats_hourly": 2,  # the whole site ('') and the event name
        "stats_daily": 2,
    }
    assert await days_of(db, "events", pid) == [ago(5)]
    assert await days_of(db, "event_ids", pid) == [ago(5)]
    for table in ("agg_5min", "agg_hourly", "agg_daily", "project_daily_summary"):
        assert await days_of(db, table, pid) == [ago(45), ago(5)], table
    for table in ("stats_hourly", "stats_daily"):
        assert await days_of(db, table, pid) == [ago(45), ago(45), ago(5), ago(5)], table
    assert await days_of(db, "visits", pid) == [ago(5)]


async def test_a_bad_retention_setting_stops_cleanup(
    db: asyncpg.Pool, settings: Settings, project: NewProject
) -> None:
    await add_events(db, project.project_id, [ago(400)])
    await set_settings(db, project.project_id, retention_days="soon")
    try:
        code, _, stderr = await cleanup(settings, "--project", project.project_id)
        assert code == 1
        assert "retention_days" in stderr and project.project_id in stderr
        assert await days_of(db, "events", project.project_id) == [ago(400)]
    finally:
        # A broken project would stop every later whole-database cleanup in the session.
        await set_settings(db, project.project_id, retention_days=90)


async def test_unknown_project_is_an_error(settings: Settings, db: asyncpg.Pool) -> None:
    code, _, stderr = await cleanup(settings, "--project", "no-such-project", "--dry-run")
    assert code == 1
    assert "no-such-project" in stderr
