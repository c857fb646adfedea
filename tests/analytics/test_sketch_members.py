"""Sketch members merged after their batch (``write_events(members=...)`` and
``flush_members``) on real PostgreSQL: the same rows as a merge inside the batch's
transaction, a replay after a lost flush restoring every member, a reused event id at
another time adding none, and a flush after the rows are gone creating nothing."""

from __future__ import annotations

import random
from typing import Any

import asyncpg

from analytics.counting.members import Members
from analytics.events.models import EventRow
from analytics.ops.recount import mismatches
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.sketches import flush_members
from tests.analytics.test_web_stats import (
    CHROME,
    DATASET,
    DAY1,
    LATE,
    Spec,
    at,
    everything,
    new_project,
    rows_of,
)

# Enough users that the daily rows pass the sketch's exact limit and turn HyperLogLog.
CROWD: list[Spec] = [
    (
        f"x{i}",
        f"sx{i % 3000}",
        f"ux{i % 12_000}",
        "page_view",
        at(DAY1, 14, i % 60),
        "/",
        None,
        CHROME,
    )
    for i in range(15_000)
]


async def _write(db: asyncpg.Pool, rows: list[EventRow], members: Members | None) -> list[Any]:
    async with db.acquire() as conn:
        fresh, _ = await write_events(conn, rows, PartitionCache(), members=members)
    return fresh


async def _flush(db: asyncpg.Pool, members: Members) -> dict[str, int]:
    async with db.acquire() as conn:
        return await flush_members(conn, members)


async def _aggregates(db: asyncpg.Pool, project_id: str) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with db.acquire() as conn:
        for table in ("agg_5min", "agg_hourly", "agg_daily"):
            out[table] = [
                tuple(r)
                for r in await conn.fetch(
                    f"SELECT event_source, event_name, bucket_start, event_count, unique_users,"
                    f" unique_sessions, users_sketch, sessions_sketch FROM {table}"
                    " WHERE project_id = $1 ORDER BY 1, 2, 3",
                    project_id,
                )
            ]
        out["days"] = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT day, total_events, unique_users, unique_sessions, users_sketch,"
                " sessions_sketch FROM project_daily_summary WHERE project_id = $1 ORDER BY 1",
                project_id,
            )
        ]
    return out


async def test_merged_later_gives_the_rows_of_a_merge_in_the_transaction(
    db: asyncpg.Pool,
) -> None:
    now, later = await new_project(db), await new_project(db)
    specs = [*DATASET, LATE, *CROWD]
    await _write(db, await rows_of(db, now, specs), None)

    members = Members()
    rows = await rows_of(db, later, specs)
    random.Random(5).shuffle(rows)
    for start in range(0, len(rows), 4000):
        await _write(db, rows[start : start + 4000], members)
    # The counts are there at once; the unique counts wait for the flush.
    assert await mismatches(db, later) != []
    counted = await _aggregates(db, later)
    merged = await _aggregates(db, now)
    for table in ("agg_5min", "agg_hourly", "agg_daily"):
        assert [r[:4] for r in counted[table]] == [r[:4] for r in merged[table]]
        assert {r[4:] for r in counted[table]} == {(0, 0, None, None)}

    written = await _flush(db, members)
    assert written["agg_daily"] >= 2 and written["stats_daily"] >= 4
    assert await mismatches(db, later) == []
    assert await _aggregates(db, later) == await _aggregates(db, now)
    assert await everything(db, later) == await everything(db, now)


async def test_a_replay_after_a_lost_flush_restores_every_member(db: asyncpg.Pool) -> None:
    pid = await new_project(db)
    rows = await rows_of(db, pid, [*DATASET, *CROWD[:3000]])
    half = len(rows) // 2
    lost = Members()
    assert len(await _write(db, rows[:half], lost)) == half
    del lost  # the worker died before its flush: the batch comes again, with new events
    again = Members()
    fresh = await _write(db, rows[::-1], again)
    assert len(fresh) == len(rows) - half  # the first half is stored already
    await _flush(db, again)
    assert await mismatches(db, pid) == []


async def test_a_reused_event_id_at_another_time_adds_no_member(db: asyncpg.Pool) -> None:
    pid = await new_project(db)
    await _write(db, await rows_of(db, pid, DATASET), None)
    before = await _aggregates(db, pid)
    # "a1" again, for another user, two minutes later (the same hour and day rows).
    reused = ("a1", "sz", "intruder", "page_view", at(DAY1, 10, 2), "/", None, CHROME)
    members = Members()
    assert await _write(db, await rows_of(db, pid, [reused]), members) == []
    assert len(members) == 0
    assert await _aggregates(db, pid) == before
    assert await mismatches(db, pid) == []


async def test_a_flush_after_the_rows_are_gone_creates_nothing(db: asyncpg.Pool) -> None:
    pid = await new_project(db)
    members = Members()
    await _write(db, await rows_of(db, pid, DATASET), members)
    async with db.acquire() as conn:
        await conn.execute("DELETE FROM agg_5min WHERE project_id = $1", pid)  # retention
    written = await _flush(db, members)
    assert "agg_5min" not in written and written["agg_hourly"] > 0
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agg_5min WHERE project_id = $1", pid) == 0
