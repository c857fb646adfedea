"""Visits and stats rollups on real PostgreSQL: exact rows for a known dataset, the same rows
after a replay or in any arrival order, a late event that moves a visit's start, and
``rebuild_day`` reproducing them. Events go through ``write_events``, as the sink writes."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from analytics.counting.sketch import Sketch
from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.ops.recount import mismatches
from analytics.storage import projects
from analytics.storage.aggregates import rebuild_day
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject

DAY1 = date(2026, 2, 10)
DAY2 = date(2026, 2, 11)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HN = "https://news.ycombinator.com/item?id=1"


def at(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


# (event_id, session, user, event_name, time, page or None, referrer, user agent)
Spec = tuple[str, str | None, str | None, str, datetime, str | None, str | None, str]

DATASET: list[Spec] = [
    # Session sa, day 1: three page views and a custom event (no page).
    ("a1", "sa", "ua", "page_view", at(DAY1, 10, 0), "/", HN, CHROME),
    ("a2", "sa", "ua", "page_view", at(DAY1, 10, 1), "/pricing", None, CHROME),
    ("a3", "sa", "ua", "signup", at(DAY1, 10, 2, 30), None, None, CHROME),
    ("a4", "sa", "ua", "page_view", at(DAY1, 10, 5), "/docs", None, CHROME),
    # A bot in the same session, before everything: it must change nothing.
    ("bot1", "sa", "crawler", "page_view", at(DAY1, 9, 59), "/robots", None, GOOGLEBOT),
    # Session sb crosses midnight UTC.
    ("b1", "sb", "ub", "page_view", at(DAY1, 23, 58), "/blog", None, CHROME),
    ("b2", "sb", "ub", "page_view", at(DAY2, 0, 3), "/blog/post", None, CHROME),
    # Session sc: one page view, a bounce.
    ("c1", "sc", "ub", "page_view", at(DAY2, 9, 0), "/", None, CHROME),
    # No session: in the stats only.
    ("n1", None, "uc", "page_view", at(DAY2, 12, 0), "/faq", None, CHROME),
]
LATE: Spec = ("a0", "sa", "ua", "page_view", at(DAY1, 9, 30), "/landing", None, CHROME)


async def rows_of(db: asyncpg.Pool, project_id: str, specs: list[Spec]) -> list[EventRow]:
    async with db.acquire() as conn:
        source = await projects.resolve_source(conn, project_id, "web")
    rows = []
    for event_id, session, user, name, when, page, referrer, agent in specs:
        props: dict[str, Any] = {"plan": "pro"}
        if page is not None:
            props = {"url": f"https://example.com{page}"}
        if referrer is not None:
            props["referrer"] = referrer
        ts = to_us(when)
        props_text = orjson.dumps(props).decode()
        row = (project_id, event_id, source, "web", user, session, name, props_text, ts)
        rows.append(EventRow(*row, 1.0, ts, "203.0.113.7", agent))
    return rows


async def write(db: asyncpg.Pool, project_id: str, specs: list[Spec], batch: int = 0) -> None:
    """Write the events in batches of ``batch`` (all in one when 0)."""
    rows = await rows_of(db, project_id, specs)
    size = batch or len(rows)
    async with db.acquire() as conn:
        for start in range(0, len(rows), size):
            await write_events(conn, rows[start : start + size], PartitionCache())


async def new_project(db: asyncpg.Pool) -> str:
    async with db.acquire() as conn:
        return (await projects.create_project(conn, f"web-{uuid.uuid4().hex[:6]}")).project_id


async def visits(db: asyncpg.Pool, project_id: str) -> dict[str, dict[str, Any]]:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM visits WHERE project_id = $1", project_id)
    return {r["session_id"]: {k: v for k, v in r.items() if k != "project_id"} for r in rows}


async def stats(db: asyncpg.Pool, project_id: str, table: str) -> dict[tuple[Any, ...], Any]:
    """Rows as (dimension, bucket, value) -> (events, pageviews, visitors, sketch members)."""
    column = "bucket_start" if table == "stats_hourly" else "day"
    async with db.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT dimension, {column}, value, events, pageviews, visitors, visitors_sketch"
            f" FROM {table} WHERE project_id = $1",
            project_id,
        )
    return {
        (r[0], r[1], r[2]): (r[3], r[4], r[5], Sketch.from_bytes(r[6]).to_bytes()) for r in rows
    }


async def everything(db: asyncpg.Pool, project_id: str) -> tuple[Any, ...]:
    return (
        await visits(db, project_id),
        await stats(db, project_id, "stats_hourly"),
        await stats(db, project_id, "stats_daily"),
    )


def counts(rows: dict[tuple[Any, ...], Any]) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    return {k: v[:3] for k, v in rows.items()}


async def test_known_dataset_gives_exact_visits_and_stats(
    db: asyncpg.Pool, project: NewProject
) -> None:
    pid = project.project_id
    await write(db, pid, DATASET)

    got = await visits(db, pid)
    assert set(got) == {"sa", "sb", "sc"}  # no bot session, no session-less visit
    sa, sb, sc = got["sa"], got["sb"], got["sc"]
    assert (sa["started_at"], sa["first_event_id"], sa["ended_at"]) == (
        at(DAY1, 10, 0),
        "a1",
        at(DAY1, 10, 5),
    )
    assert (sa["entry_page"], sa["entry_event_id"], sa["exit_page"], sa["exit_event_id"]) == (
        "/",
        "a1",
        "/docs",
        "a4",
    )
    assert (sa["pageviews"], sa["events"], sa["user_id"]) == (3, 4, "ua")
    assert (sa["hostname"], sa["referrer_domain"], sa["referrer_source"]) == (
        "example.com",
        "news.ycombinator.com",
        "Hacker News",
    )
    assert (sa["browser"], sa["os"], sa["device_type"]) == ("Chrome", "Windows", "desktop")
    assert (sb["entry_page"], sb["exit_page"], sb["pageviews"], sb["events"]) == (
        "/blog",
        "/blog/post",
        2,
        2,
    )
    assert sb["ended_at"] - sb["started_at"] == timedelta(minutes=5)  # the visit's duration
    assert sb["referrer_domain"] is None
    # sc is a bounce: exactly one page view and no other event; it lasted 0 s.
    assert (sc["entry_page"], sc["exit_page"], sc["pageviews"], sc["events"]) == ("/", "/", 1, 1)
    assert sc["ended_at"] == sc["started_at"] == at(DAY2, 9, 0)

    assert counts(await stats(db, pid, "stats_daily")) == {
        ("", DAY1, ""): (5, 4, 2),
        ("name", DAY1, "page_view"): (4, 4, 2),
        ("name", DAY1, "signup"): (1, 0, 1),
        ("page", DAY1, "/"): (1, 1, 1),
        ("page", DAY1, "/pricing"): (1, 1, 1),
        ("page", DAY1, "/docs"): (1, 1, 1),
        ("page", DAY1, "/blog"): (1, 1, 1),
        ("hostname", DAY1, "example.com"): (4, 4, 2),
        ("", DAY2, ""): (3, 3, 2),
        ("name", DAY2, "page_view"): (3, 3, 2),
        ("page", DAY2, "/blog/post"): (1, 1, 1),
        ("page", DAY2, "/"): (1, 1, 1),
        ("page", DAY2, "/faq"): (1, 1, 1),
        ("hostname", DAY2, "example.com"): (3, 3, 2),
    }
    hourly = counts(await stats(db, pid, "stats_hourly"))
    assert hourly[("", at(DAY1, 10, 0), "")] == (4, 3, 1)
    assert hourly[("", at(DAY1, 23, 0), "")] == (1, 1, 1)
    assert ("", at(DAY1, 9, 0), "") not in hourly  # only the bot was there
    assert sum(v[0] for k, v in hourly.items() if k[0] == "") == 8
    assert await mismatches(db, pid) == []


async def test_replays_and_any_arrival_order_give_the_same_rows(
    db: asyncpg.Pool, project: NewProject
) -> None:
    pid = project.project_id
    await write(db, pid, DATASET)
    want = await everything(db, pid)

    await write(db, pid, DATASET)  # a replay: the ledger drops every row
    await write(db, pid, DATASET[::-1], batch=2)
    assert await everything(db, pid) == want

    rng = random.Random(15)
    for order in (DATASET[::-1], rng.sample(DATASET, len(DATASET))):
        for batch in (1, 3):
            other = await new_project(db)
            await write(db, other, order, batch=batch)
            assert await everything(db, other) == want, (order, batch)
            assert await mismatches(db, other) == []


async def test_a_late_event_moves_the_visits_start_and_entry_page(
    db: asyncpg.Pool, project: NewProject
) -> None:
    pid = project.project_id
    await write(db, pid, DATASET)
    await write(db, pid, [LATE])
    sa = (await visits(db, pid))["sa"]
    assert (sa["started_at"], sa["first_event_id"]) == (at(DAY1, 9, 30), "a0")
    assert (sa["entry_page"], sa["entry_event_id"], sa["entry_at"]) == (
        "/landing",
        "a0",
        at(DAY1, 9, 30),
    )
    assert (sa["exit_page"], sa["ended_at"]) == ("/docs", at(DAY1, 10, 5))
    assert (sa["pageviews"], sa["events"]) == (4, 5)
    # The first event now has no referrer: the visit's source is the late event's.
    assert sa["referrer_domain"] is None
    assert counts(await stats(db, pid, "stats_daily"))[("", DAY1, "")] == (6, 5, 2)
    assert await mismatches(db, pid) == []

    # The same late event first, then the rest: the same rows.
    other = await new_project(db)
    await write(db, other, [LATE])
    await write(db, other, DATASET)
    assert await everything(db, other) == await everything(db, pid)


async def test_a_timestamp_tie_goes_to_the_smaller_event_id_in_code_point_order(
    db: asyncpg.Pool,
) -> None:
    # "B" (0x42) sorts before "a" (0x61) in code point order (COLLATE "C"), not in a
    # linguistic collation: in one batch, in either order, and across two batches.
    when = at(DAY1, 8, 0)
    tied: list[Spec] = [
        ("a", "st", "u1", "page_view", when, "/lower", None, CHROME),
        ("B", "st", "u2", "page_view", when, "/upper", None, CHROME),
    ]
    for order, batch in ((tied, 0), (tied[::-1], 0), (tied, 1), (tied[::-1], 1)):
        pid = await new_project(db)
        await write(db, pid, order, batch=batch)
        visit = (await visits(db, pid))["st"]
        got = (visit["first_event_id"], visit["user_id"], visit["entry_page"], visit["exit_page"])
        assert got == ("B", "u2", "/upper", "/lower"), (order, batch)
        assert await mismatches(db, pid) == []


async def test_a_visit_without_page_views_has_no_entry_or_exit(db: asyncpg.Pool) -> None:
    pid = await new_project(db)
    clicks: list[Spec] = [
        ("c1", "sx", "u1", "click", at(DAY1, 8, 0), None, None, CHROME),
        ("c2", "sx", "u1", "click", at(DAY1, 8, 5), None, None, CHROME),
    ]
    await write(db, pid, clicks)
    visit = (await visits(db, pid))["sx"]
    entry_exit = ("entry_page", "entry_at", "entry_event_id", "exit_page", "exit_at")
    assert [visit[k] for k in entry_exit] == [None] * 5
    assert (visit["pageviews"], visit["events"]) == (0, 2)
    assert visit["ended_at"] - visit["started_at"] == timedelta(minutes=5)
    # A later page view gives it both.
    await write(db, pid, [("c3", "sx", "u1", "page_view", at(DAY1, 8, 1), "/", None, CHROME)])
    visit = (await visits(db, pid))["sx"]
    assert (visit["entry_page"], visit["exit_page"], visit["pageviews"]) == ("/", "/", 1)
    assert await mismatches(db, pid) == []


async def test_rebuild_day_reproduces_the_live_rows(db: asyncpg.Pool, project: NewProject) -> None:
    pid = project.project_id
    await write(db, pid, DATASET, batch=4)
    await write(db, pid, [LATE])
    want = await everything(db, pid)
    async with db.acquire() as conn:
        assert await rebuild_day(conn, pid, DAY1) == 7  # the bot is a raw event too
        assert await everything(db, pid) == want
        for table in ("visits", "stats_hourly", "stats_daily"):
            await conn.execute(f"DELETE FROM {table} WHERE project_id = $1", pid)
        bad = await mismatches(db, pid)  # the recount sees the loss, table by table
        assert [line.split(":")[0] for line in bad] == ["visits", "stats_hourly", "stats_daily"]
        await rebuild_day(conn, pid, DAY1)
        # sb had an event on day 1: its visit is rebuilt from all its events, day 2's too.
        assert set(await visits(db, pid)) == {"sa", "sb"}
        assert await visits(db, pid) == {k: v for k, v in want[0].items() if k != "sc"}
        await rebuild_day(conn, pid, DAY2)
    assert await everything(db, pid) == want
    assert await mismatches(db, pid) == []


async def test_raw_only_writes_leave_visits_and_stats_alone(
    db: asyncpg.Pool, project: NewProject
) -> None:
    rows = await rows_of(db, project.project_id, DATASET)
    async with db.acquire() as conn:
        fresh, written = await write_events(conn, rows, PartitionCache(), aggregate=False)
    assert len(fresh) == len(DATASET) and written == {}
    assert await everything(db, project.project_id) == ({}, {}, {})
