"""Aggregates in PostgreSQL: exact numbers for a known stream, duplicates, late events, rebuilds."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson

from analytics.dev.processes import WorkerProcess, analytics_command
from analytics.settings import Settings
from analytics.storage.projects import NewProject
from tests.support.load import settled
from tests.support.stack import wait_for

T0 = datetime(2026, 3, 14, 9, 58, tzinfo=UTC)  # buckets cross 5-min, hour boundaries


def known_stream() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i in range(120):
        events.append(
            {
                "event_id": f"k{i}",
                "event_name": ("page_view", "signup", "click")[i % 3],
                "event_source": ("web", "ios")[i % 2],
                "user_id": f"u{i % 17}",
                "session_id": f"s{i % 23}",
                "timestamp": (T0 + timedelta(minutes=i)).isoformat(),
            }
        )
    # A late event: months old, in its own day, hour and 5-minute bucket.
    events.append(
        {
            "event_id": "late-1",
            "event_name": "page_view",
            "event_source": "web",
            "user_id": "old",
            "session_id": "old-s",
            "timestamp": "2025-11-02T23:59:59+00:00",
        }
    )
    return events


def expected(
    events: list[dict[str, Any]], width: timedelta
) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        ts = datetime.fromisoformat(e["timestamp"])
        bucket = epoch + ((ts - epoch) // width) * width
        groups[(e["event_source"], e["event_name"], bucket)].append(e)
    return {
        k: (len(v), len({e["user_id"] for e in v}), len({e["session_id"] for e in v}))
        for k, v in groups.items()
    }


async def post_batch(
    http: aiohttp.ClientSession, edge: str, key: str, events: list[dict[str, Any]]
) -> None:
    async with http.post(
        f"{edge}/api/events/batch/",
        data=orjson.dumps({"events": events}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 202, await resp.text()
        assert (await resp.json())["accepted"] == len(events)


async def agg_rows(
    db: asyncpg.Pool, table: str, project_id: str
) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    async with db.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT event_source, event_name, bucket_start, event_count, unique_users,"
            f" unique_sessions FROM {table} WHERE project_id = $1",
            project_id,
        )
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


async def total_in(db: asyncpg.Pool, table: str, project_id: str) -> int:
    async with db.acquire() as conn:
        value = await conn.fetchval(
            f"SELECT coalesce(sum(event_count), 0) FROM {table} WHERE project_id = $1", project_id
        )
    return int(value)


async def test_known_stream_gives_exact_aggregates(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    events = known_stream()
    await post_batch(http, edge, project.public_key, events[:70])
    await post_batch(http, edge, project.public_key, events[70:])
    await post_batch(http, edge, project.public_key, events[10:40])  # resent duplicates
    await wait_for(lambda: _total_is(db, project.project_id, len(events)))
    await asyncio.sleep(0.5)  # the duplicates' batch must have been processed too
    await settled(db, project.project_id)  # unique counts follow their counts
    for table, width in (
        ("agg_5min", timedelta(minutes=5)),
        ("agg_hourly", timedelta(hours=1)),
        ("agg_daily", timedelta(days=1)),
    ):
        assert await agg_rows(db, table, project.project_id) == expected(events, width), table
    async with db.acquire() as conn:
        days = {
            r["day"]: r
            for r in await conn.fetch(
                "SELECT * FROM project_daily_summary WHERE project_id = $1", project.project_id
            )
        }
    assert set(days) == {T0.date(), datetime(2025, 11, 2).date()}
    today = days[T0.date()]
    assert today["total_events"] == 120
    assert today["unique_users"] == 17 and today["unique_sessions"] == 23
    assert orjson.loads(today["sources"]) == {"web": 60, "ios": 60}
    top = orjson.loads(today["top_events"])
    assert {t["event_name"]: t["count"] for t in top} == {
        "page_view": 40,
        "signup": 40,
        "click": 40,
    }
    assert today["estimated_events"] == 120.0


async def _total_is(db: asyncpg.Pool, project_id: str, n: int) -> bool:
    return await total_in(db, "agg_daily", project_id) >= n


async def test_aggregate_events_rebuild_reproduces_the_live_path(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
    settings: Settings,
) -> None:
    events = known_stream()
    await post_batch(http, edge, project.public_key, events)
    await wait_for(lambda: _total_is(db, project.project_id, len(events)))
    await settled(db, project.project_id)
    tables = ("agg_5min", "agg_hourly", "agg_daily")
    live = {t: await agg_rows(db, t, project.project_id) for t in tables}
    async with db.acquire() as conn:
        live_summary = await conn.fetch(
            "SELECT day, total_events, unique_users, unique_sessions, top_events, sources"
            " FROM project_daily_summary WHERE project_id = $1 ORDER BY day",
            project.project_id,
        )
        # Damage the aggregates, as a bug or a manual edit would.
        await conn.execute(
            "UPDATE agg_hourly SET event_count = 0 WHERE project_id = $1", project.project_id
        )
        await conn.execute("DELETE FROM agg_5min WHERE project_id = $1", project.project_id)
    env = {**os.environ, **settings.as_environ()}
    result = await asyncio.to_thread(
        subprocess.run,
        analytics_command(
            "--json",
            "aggregate-events",
            "--from",
            "2025-11-01",
            "--to",
            "2026-03-15",
            "--project",
            project.project_id,
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert report["events"] == len(events) and report["project_days"] == 2
    assert "rebuilding" in result.stderr  # the progress bar
    for table in tables:
        assert await agg_rows(db, table, project.project_id) == live[table], table
    async with db.acquire() as conn:
        rebuilt_summary = await conn.fetch(
            "SELECT day, total_events, unique_users, unique_sessions, top_events, sources"
            " FROM project_daily_summary WHERE project_id = $1 ORDER BY day",
            project.project_id,
        )
    assert [tuple(r) for r in rebuilt_summary] == [tuple(r) for r in live_summary]
    await settled(db, project.project_id)
