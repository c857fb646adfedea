"""The private dashboard read API over a real socket, on real PostgreSQL.

Events are stored with ``write_events`` (raw rows and aggregates in one
transaction, as the sink does), so no worker is needed.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import yarl

from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.storage import projects, queries
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject

QUERY = "/api/events/query/"
AGG = "/api/events/aggregations/{}/"
SUMMARIES = "/api/events/summaries/daily/"
NAMES = "/api/events/names/"
SOURCES = "/api/events/sources/"
ALL_PATHS = [QUERY, AGG.format("daily"), AGG.format("hourly"), AGG.format("5min")]
ALL_PATHS += [SUMMARIES, NAMES, SOURCES]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def now_minute() -> datetime:
    """Now, cut to the minute; tests put events a few minutes before it."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


async def source_id(db: asyncpg.Pool, project_id: str, name: str) -> int:
    async with db.acquire() as conn:
        return await projects.resolve_source(conn, project_id, name)


async def store(
    db: asyncpg.Pool,
    project_id: str,
    specs: list[dict[str, Any]],
) -> list[EventRow]:
    """Write events; each spec gives at least ``timestamp``, optionally the other fields."""
    rows = []
    for spec in specs:
        source = spec.get("source", "web")
        rows.append(
            EventRow(
                project_id=project_id,
                event_id=spec.get("event_id", uuid.uuid4().hex),
                event_source_id=await source_id(db, project_id, source),
                event_source=source,
                user_id=spec.get("user_id", "user_1"),
                session_id=spec.get("session_id", "sess_1"),
                event_name=spec.get("event_name", "page_view"),
                properties=orjson.dumps(spec.get("properties", {"page": "/"})).decode(),
                timestamp_us=to_us(spec["timestamp"]),
                sample_rate=spec.get("sample_rate", 1.0),
                received_at_us=to_us(spec.get("received_at", spec["timestamp"])),
                ip_address=spec.get("ip_address", "203.0.113.7"),
                user_agent=spec.get("user_agent", "test-agent/1.0"),
            )
        )
    async with db.acquire() as conn:
        await write_events(conn, rows, PartitionCache())
    return rows


async def get(
    http: aiohttp.ClientSession,
    url: str,
    key: str | None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    hdrs = dict(headers or {})
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    async with http.get(url, params=params, headers=hdrs) as resp:
        return resp.status, await resp.json(content_type=None)


async def ok(
    http: aiohttp.ClientSession, url: str, key: str, params: dict[str, str] | None = None
) -> Any:
    status, body = await get(http, url, key, params)
    assert status == 200, body
    return body


async def other_project(db: asyncpg.Pool) -> NewProject:
    async with db.acquire() as conn:
        return await projects.create_project(conn, f"other-{uuid.uuid4().hex[:6]}")


# --- raw events --------------------------------------------------------------------------


async def test_query_defaults_return_every_field_newest_first(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    now = now_minute()
    rows = await store(
        db,
        project.project_id,
        [
            {
                "timestamp": now - timedelta(minutes=3),
                "event_id": "client_event_id",
                "user_id": "user_123",
                "session_id": "sess_abc",
                "properties": {"page": "/dashboard", "nested": {"n": [1, 2.5, None]}},
                "sample_rate": 0.5,
                "received_at": now - timedelta(minutes=2),
            },
            {"timestamp": now - timedelta(hours=5), "event_name": "signup", "source": "ios"},
            {"timestamp": now - timedelta(hours=30)},  # outside the default 24 h
        ],
    )
    body = await ok(http, f"{edge}{QUERY}", project.private_key)
    assert body["count"] == 2
    assert body["count_is_estimate"] is False
    assert body["next"] is None and body["previous"] is None
    assert [r["event_id"] for r in body["results"]] == [rows[0].event_id, rows[1].event_id]
    first = body["results"][0]
    assert first == {
        "event_id": "client_event_id",
        "project_id": project.project_id,
        "event_source_id": rows[0].event_source_id,
        "event_source": "web",
        "user_id": "user_123",
        "session_id": "sess_abc",
        "event_name": "page_view",
        "properties": {"page": "/dashboard", "nested": {"n": [1, 2.5, None]}},
        "timestamp": first["timestamp"],
        "sample_rate": 0.5,
        "received_at": first["received_at"],
        "ip_address": "203.0.113.7",
        "user_agent": "test-agent/1.0",
    }
    assert parse(first["timestamp"]) == now - timedelta(minutes=3)
    assert parse(first["received_at"]) == now - timedelta(minutes=2)
    assert body["results"][1]["event_source"] == "ios"
    assert abs(parse(body["end_date"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert parse(body["end_date"]) - parse(body["start_date"]) == timedelta(hours=24)


async def test_query_filters(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    now = now_minute()
    t = [now - timedelta(minutes=10 * i) for i in range(1, 7)]
    rows = await store(
        db,
        project.project_id,
        [
            {"timestamp": t[0], "event_name": "click", "source": "web", "user_id": "alice"},
            {"timestamp": t[1], "event_name": "click", "source": "ios", "user_id": "bob"},
            {"timestamp": t[2], "event_name": "view", "source": "web", "user_id": "bob"},
            {"timestamp": t[3], "event_name": "view", "source": "ios", "user_id": "alice"},
            {"timestamp": t[4], "event_name": "click", "source": "web", "user_id": "alice"},
            {"timestamp": now - timedelta(days=3), "event_name": "click", "user_id": "alice"},
        ],
    )
    url = f"{edge}{QUERY}"

    async def ids(**params: str) -> list[str]:
        body = await ok(http, url, project.private_key, params)
        assert body["count"] == len(body["results"])
        return [r["event_id"] for r in body["results"]]

    e = [r.event_id for r in rows]
    ios = str(rows[1].event_source_id)
    assert await ids(event_name="click") == [e[0], e[1], e[4]]
    assert await ids(event_source_id=ios) == [e[1], e[3]]
    assert await ids(user_id="alice") == [e[0], e[3], e[4]]
    assert await ids(user_id="alice", event_name="click", event_source_id=ios) == []
    assert await ids(event_name="view", user_id="bob") == [e[2]]
    assert await ids(user_id="nobody") == []
    # end_date is exclusive, start_date inclusive.
    assert await ids(start_date=iso(t[3]), end_date=iso(t[1])) == [e[2], e[3]]
    assert await ids(start_date=iso(now - timedelta(days=4))) == e
    # Offsets in other zones and naive times (UTC) mean the same instant.
    plus_two = (t[1] + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    naive = t[3].replace(tzinfo=None).isoformat()
    assert await ids(start_date=naive, end_date=plus_two) == [e[2], e[3]]
    # An unencoded "+" offset in a hand-written URL arrives as a space; it still means "+".
    raw = f"{url}?start_date={t[3].isoformat()}&end_date={t[1].isoformat()}"
    assert "+00:00" in raw
    async with http.get(
        yarl.URL(raw, encoded=True), headers={"Authorization": f"Bearer {project.private_key}"}
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert [r["event_id"] for r in body["results"]] == [e[2], e[3]]
    # Empty values are absent values.
    assert await ids(event_name="", user_id="") == e[:5]
    # A bare date is its UTC midnight.
    day = (now - timedelta(days=3)).date()
    old = await ids(start_date=day.isoformat(), end_date=(day + timedelta(days=1)).isoformat())
    assert old == [e[5]]


async def walk(http: aiohttp.ClientSession, url: str, key: str, link: str) -> list[list[Any]]:
    """Follow ``link`` ("next" or "previous") from ``url`` to the end; the pages seen."""
    pages = []
    next_url: str | None = url
    while next_url is not None:
        body = await ok(http, next_url, key)
        pages.append(body["results"])
        next_url = body[link]
        assert len(pages) < 100
    return pages


def order_key(result: dict[str, Any]) -> tuple[datetime, str]:
    return parse(result["timestamp"]), result["event_id"]


async def test_cursor_pages_have_no_gaps_or_repeats_both_ways(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    now = now_minute()
    # Groups of three events share one timestamp (and span sources): ties are broken by id.
    rows = await store(
        db,
        project.project_id,
        [
            {
                "timestamp": now - timedelta(minutes=1, seconds=i // 3),
                "source": ("web", "ios", "android")[i % 3],
            }
            for i in range(250)
        ],
    )
    expected = sorted(((r.timestamp_us, r.event_id) for r in rows), reverse=True)
    url = f"{edge}{QUERY}?page_size=40"
    pages = await walk(http, url, project.private_key, "next")
    assert [len(p) for p in pages] == [40] * 6 + [10]
    seen = [(to_us(parse(r["timestamp"])), r["event_id"]) for p in pages for r in p]
    assert seen == expected

    # Back from the last page: the same pages in reverse, then no previous.
    last = await ok(http, url, project.private_key)
    while last["next"] is not None:
        last = await ok(http, last["next"], project.private_key)
    assert last["results"] == pages[-1]
    back = await walk(http, last["previous"], project.private_key, "previous")
    assert back == pages[-2::-1]

    # The first page (from no cursor) has no previous; reached by "previous" neither.
    first = await ok(http, url, project.private_key)
    assert first["previous"] is None
    second = await ok(http, first["next"], project.private_key)
    again = await ok(http, second["previous"], project.private_key)
    assert again["results"] == first["results"]
    assert again["previous"] is None
    assert again["next"] is not None
    assert second["count"] == 250 and second["count_is_estimate"] is False


async def test_cursor_pages_stay_consistent_while_events_arrive(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    now = now_minute()
    base = now - timedelta(hours=2)
    original = await store(
        db,
        project.project_id,
        [{"timestamp": base - timedelta(seconds=i)} for i in range(300)],
    )
    key = project.private_key
    body = await ok(http, f"{edge}{QUERY}", key, {"page_size": "50"})
    seen = [r["event_id"] for r in body["results"]]
    ordered = [order_key(r) for r in body["results"]]
    late: list[EventRow] = []
    future: list[EventRow] = []
    while body["next"] is not None:
        # Between fetches: events newer than the frozen end_date (never in this walk),
        # events on pages already read, and events older than the cursor (ahead of it).
        future += await store(
            db, project.project_id, [{"timestamp": datetime.now(UTC)} for _ in range(5)]
        )
        await store(db, project.project_id, [{"timestamp": base + timedelta(minutes=1)}])
        oldest = min(ordered)[0]
        late += await store(
            db, project.project_id, [{"timestamp": oldest - timedelta(milliseconds=500)}]
        )
        body = await ok(http, body["next"], key)
        seen += [r["event_id"] for r in body["results"]]
        ordered += [order_key(r) for r in body["results"]]
    assert len(seen) == len(set(seen)), "an event was served twice"
    assert {r.event_id for r in original} <= set(seen), "an event was skipped"
    assert {r.event_id for r in late} <= set(seen)
    assert not {r.event_id for r in future} & set(seen)
    assert ordered == sorted(ordered, reverse=True)


async def test_page_numbers_for_shallow_pages(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    now = now_minute()
    await store(
        db, project.project_id, [{"timestamp": now - timedelta(seconds=i + 1)} for i in range(25)]
    )
    key = project.private_key
    by_cursor = await walk(http, f"{edge}{QUERY}?page_size=10", key, "next")
    end = iso(now)
    for number, expected in enumerate(by_cursor, start=1):
        params = {"page": str(number), "page_size": "10", "end_date": end}
        body = await ok(http, f"{edge}{QUERY}", key, params)
        assert body["results"] == expected
        if number == 1:
            assert body["previous"] is None
        else:
            previous = await ok(http, body["previous"], key)
            assert previous["results"] == by_cursor[number - 2]
    body = await ok(http, f"{edge}{QUERY}", key, {"page": "2", "page_size": "10"})
    following = await ok(http, body["next"], key)
    assert following["results"] == by_cursor[2]
    assert following["next"] is None
    body = await ok(http, f"{edge}{QUERY}", key, {"page": "9", "page_size": "10"})
    assert body["results"] == [] and body["next"] is None and body["count"] == 25


async def test_count_above_the_cap_is_an_estimate(
    http: aiohttp.ClientSession,
    edge: str,
    db: asyncpg.Pool,
    project: NewProject,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queries, "COUNT_CAP", 50)
    now = now_minute()
    # From 3 days to 1 hour ago: whole days come from agg_daily, the ends from agg_hourly.
    span = timedelta(days=3) - timedelta(hours=1)
    await store(
        db,
        project.project_id,
        [
            {"timestamp": now - timedelta(hours=1) - span * i / 119, "user_id": f"u{i % 2}"}
            for i in range(120)
        ],
    )
    key = project.private_key
    params = {"start_date": iso(now - timedelta(days=4, minutes=7)), "page_size": "5"}
    body = await ok(http, f"{edge}{QUERY}", key, params)
    assert body["count_is_estimate"] is True
    assert body["count"] == 120
    assert len(body["results"]) == 5
    # A narrow range under the cap is counted exactly.
    narrow = {"start_date": iso(now - timedelta(hours=7)), "page_size": "5"}
    body = await ok(http, f"{edge}{QUERY}", key, narrow)
    assert body["count_is_estimate"] is False
    assert body["count"] == sum(
        1
        for i in range(120)
        if now - timedelta(hours=1) - span * i / 119 >= now - timedelta(hours=7)
    )
    # A user filter cannot use aggregates: the planner's guess, never below the cap.
    body = await ok(http, f"{edge}{QUERY}", key, {**params, "user_id": "u0"})
    assert body["count_is_estimate"] is True
    assert body["count"] > 50


# --- aggregates and summaries -----------------------------------------------------------


async def test_aggregations_defaults_and_filters(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    now = now_minute()
    recent = now - timedelta(minutes=30)
    await store(
        db,
        project.project_id,
        [
            {"timestamp": recent, "event_name": "click", "user_id": "a", "session_id": "s1"},
            {"timestamp": recent, "event_name": "click", "user_id": "b", "session_id": "s2"},
            {"timestamp": recent, "event_name": "click", "user_id": "a", "session_id": "s1"},
            {"timestamp": recent, "event_name": "view", "source": "ios", "sample_rate": 0.25},
            {"timestamp": now - timedelta(days=2), "event_name": "click"},
            {"timestamp": now - timedelta(days=40), "event_name": "click"},
        ],
    )
    ios = await source_id(db, project.project_id, "ios")
    web_id = await source_id(db, project.project_id, "web")
    key = project.private_key

    for grain, width in (("5min", 300), ("hourly", 3600)):
        body = await ok(http, f"{edge}{AGG.format(grain)}", key)
        assert body["granularity"] == grain
        bucket = datetime.fromtimestamp(to_us(recent) // 1_000_000 // width * width, UTC)
        assert body["results"] == [
            {
                "bucket_start": body["results"][0]["bucket_start"],
                "event_source": "ios",
                "event_source_id": ios,
                "event_name": "view",
                "event_count": 1,
                "estimated_count": 4.0,
                "unique_users": 1,
                "unique_sessions": 1,
            },
            {
                "bucket_start": body["results"][0]["bucket_start"],
                "event_source": "web",
                "event_source_id": web_id,
                "event_name": "click",
                "event_count": 3,
                "estimated_count": 3.0,
                "unique_users": 2,
                "unique_sessions": 2,
            },
        ]
        assert parse(body["results"][0]["bucket_start"]) == bucket

    daily = await ok(http, f"{edge}{AGG.format('daily')}", key)
    assert parse(daily["end_date"]) - parse(daily["start_date"]) == timedelta(days=30)
    clicks = [r for r in daily["results"] if r["event_name"] == "click"]
    assert sum(r["event_count"] for r in clicks) == 4  # not the one 40 days ago
    assert [parse(r["bucket_start"]) for r in daily["results"]] == sorted(
        parse(r["bucket_start"]) for r in daily["results"]
    )

    # Filters: event name, source id (mapped to the source name), explicit range.
    body = await ok(http, f"{edge}{AGG.format('daily')}", key, {"event_name": "view"})
    assert [(r["event_name"], r["event_count"]) for r in body["results"]] == [("view", 1)]
    body = await ok(http, f"{edge}{AGG.format('hourly')}", key, {"event_source_id": str(ios)})
    assert [r["event_source"] for r in body["results"]] == ["ios"]
    params = {"start_date": iso(now - timedelta(days=41)), "end_date": iso(now - timedelta(days=1))}
    body = await ok(http, f"{edge}{AGG.format('daily')}", key, params)
    assert sorted(r["event_count"] for r in body["results"]) == [1, 1]
    params = {"start_date": iso(now - timedelta(days=3)), "end_date": iso(now - timedelta(days=1))}
    body = await ok(http, f"{edge}{AGG.format('5min')}", key, params)
    assert [r["event_count"] for r in body["results"]] == [1]


async def test_daily_summaries(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    now = now_minute()
    today = now - timedelta(minutes=5)
    await store(
        db,
        project.project_id,
        [
            {"timestamp": today, "event_name": "click", "user_id": "a", "session_id": "s1"},
            {"timestamp": today, "event_name": "click", "user_id": "b", "session_id": "s2"},
            {
                "timestamp": today,
                "event_name": "view",
                "source": "ios",
                "user_id": "a",
                "session_id": "s1",
            },
            {"timestamp": now - timedelta(days=40), "event_name": "old"},
        ],
    )
    body = await ok(http, f"{edge}{SUMMARIES}", project.private_key)
    assert body["results"] == [
        {
            "day": today.date().isoformat(),
            "total_events": 3,
            "estimated_events": 3.0,
            "unique_users": 2,
            "unique_sessions": 2,
            "top_events": [{"event_name": "click", "count": 2}, {"event_name": "view", "count": 1}],
            "sources": {"web": 2, "ios": 1},
        }
    ]
    old_day = (now - timedelta(days=40)).date()
    params = {
        "start_date": old_day.isoformat(),
        "end_date": (old_day + timedelta(days=1)).isoformat(),
    }
    body = await ok(http, f"{edge}{SUMMARIES}", project.private_key, params)
    assert [(r["day"], r["total_events"]) for r in body["results"]] == [(old_day.isoformat(), 1)]


async def test_event_names_and_sources(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    now = now_minute()
    latest = now - timedelta(minutes=12)
    await store(
        db,
        project.project_id,
        [
            {"timestamp": now - timedelta(days=5), "event_name": "click"},
            {"timestamp": latest, "event_name": "click", "source": "ios"},
            {"timestamp": now - timedelta(hours=3), "event_name": "click"},
            {"timestamp": now - timedelta(days=60), "event_name": "signup", "sample_rate": 0.5},
        ],
    )
    body = await ok(http, f"{edge}{NAMES}", project.private_key)
    five_min = to_us(latest) // 300_000_000 * 300_000_000
    old_bucket = to_us(now - timedelta(days=60)) // 300_000_000 * 300_000_000
    assert [
        (r["event_name"], r["total_count"], r["estimated_count"], to_us(parse(r["last_seen"])))
        for r in body["results"]
    ] == [("click", 3, 3.0, five_min), ("signup", 1, 2.0, old_bucket)]

    # Once the 5-minute rows of a name are gone, last_seen falls back to its last day.
    async with db.acquire() as conn:
        await conn.execute(
            "DELETE FROM agg_5min WHERE project_id = $1 AND event_name = 'signup'",
            project.project_id,
        )
    body = await ok(http, f"{edge}{NAMES}", project.private_key)
    old_day = datetime.combine((now - timedelta(days=60)).date(), datetime.min.time(), UTC)
    assert parse(body["results"][1]["last_seen"]) == old_day

    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE event_sources SET settings = $3::jsonb WHERE project_id = $1 AND name = $2",
            project.project_id,
            "ios",
            '{"sample_rate": 0.5}',
        )
    body = await ok(http, f"{edge}{SOURCES}", project.private_key)
    ids = {name: await source_id(db, project.project_id, name) for name in ("ios", "web")}
    assert [(r["id"], r["name"], r["settings"]) for r in body["results"]] == [
        (ids["ios"], "ios", {"sample_rate": 0.5}),
        (ids["web"], "web", {}),
    ]
    assert all(
        abs(parse(r["created_at"]) - datetime.now(UTC)) < timedelta(minutes=5)
        for r in body["results"]
    )


# --- errors, auth, isolation ------------------------------------------------------------


def _cursor(body: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(body)).rstrip(b"=").decode()


BAD_PARAMS: list[tuple[str, dict[str, str], str, str]] = [
    (QUERY, {"start_date": "yesterday"}, "start_date_invalid", "start_date"),
    (QUERY, {"end_date": "2024-13-01"}, "end_date_invalid", "end_date"),
    (
        QUERY,
        {"start_date": "2024-02-01T00:00:00Z", "end_date": "2024-01-01T00:00:00Z"},
        "date_range_invalid",
        "start_date",
    ),
    (QUERY, {"end_date": "0001-01-01T00:00:00Z"}, "end_date_invalid", "end_date"),
    (QUERY, {"page_size": "0"}, "page_size_invalid", "page_size"),
    (QUERY, {"page_size": "1001"}, "page_size_invalid", "page_size"),
    (QUERY, {"page_size": "ten"}, "page_size_invalid", "page_size"),
    (QUERY, {"page": "0"}, "page_invalid", "page"),
    (QUERY, {"page": "2.5"}, "page_invalid", "page"),
    (QUERY, {"page": "102", "page_size": "100"}, "page_invalid", "page"),
    (QUERY, {"event_source_id": "web"}, "event_source_id_invalid", "event_source_id"),
    (QUERY, {"event_source_id": "99999999999"}, "event_source_id_invalid", "event_source_id"),
    (QUERY, {"event_source_id": "9" * 30}, "event_source_id_invalid", "event_source_id"),
    (QUERY, {"cursor": "not a cursor!"}, "cursor_invalid", "cursor"),
    (QUERY, {"cursor": _cursor({"d": "sideways", "t": 1, "i": "x"})}, "cursor_invalid", "cursor"),
    (QUERY, {"cursor": _cursor({"d": "after", "t": "1", "i": "x"})}, "cursor_invalid", "cursor"),
    (QUERY, {"cursor": _cursor({"d": "after", "t": 10**18, "i": "x"})}, "cursor_invalid", "cursor"),
    (QUERY, {"cursor": _cursor(["after"])}, "cursor_invalid", "cursor"),
    (
        QUERY,
        {"page": "2", "cursor": _cursor({"d": "after", "t": 0, "i": "x"})},
        "page_invalid",
        "page",
    ),
    (AGG.format("5min"), {"start_date": "nope"}, "start_date_invalid", "start_date"),
    (
        AGG.format("5min"),
        {"start_date": "2024-01-01", "end_date": "2024-03-01"},
        "date_range_too_large",
        "start_date",
    ),
    (
        AGG.format("hourly"),
        {"start_date": "2024-05-02", "end_date": "2024-05-01"},
        "date_range_invalid",
        "start_date",
    ),
    (AGG.format("daily"), {"event_source_id": "-1"}, "event_source_id_invalid", "event_source_id"),
    (SUMMARIES, {"end_date": "31/01/2024"}, "end_date_invalid", "end_date"),
]


@pytest.mark.parametrize(("path", "params", "code", "field"), BAD_PARAMS)
async def test_invalid_parameters_are_400_naming_the_field(
    http: aiohttp.ClientSession,
    edge: str,
    project: NewProject,
    path: str,
    params: dict[str, str],
    code: str,
    field: str,
) -> None:
    status, body = await get(http, f"{edge}{path}", project.private_key, params)
    assert status == 400, body
    assert body["code"] == code
    assert body["field"] == field
    assert body["detail"]


@pytest.mark.parametrize("path", ALL_PATHS)
async def test_auth_failures(
    http: aiohttp.ClientSession, edge: str, project: NewProject, path: str
) -> None:
    url = f"{edge}{path}"
    status, body = await get(http, url, None)
    assert (status, body["code"]) == (401, "missing_api_key")
    status, body = await get(http, url, project.public_key)
    assert (status, body["code"]) == (403, "public_key_not_allowed")
    status, body = await get(http, url, "sa_priv_" + "0" * 40)
    assert (status, body["code"]) == (401, "invalid_api_key")
    status, body = await get(
        http, url, None, headers={"Authorization": f"Basic {project.private_key}"}
    )
    assert (status, body["code"]) == (401, "missing_api_key")


async def test_projects_never_see_each_other(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    now = now_minute()
    await store(
        db,
        project.project_id,
        [{"timestamp": now - timedelta(minutes=m), "event_name": "secret"} for m in range(1, 4)],
    )
    a_source = await source_id(db, project.project_id, "web")
    b = await other_project(db)
    await store(db, b.project_id, [{"timestamp": now - timedelta(minutes=2), "source": "b-web"}])

    a_body = await ok(http, f"{edge}{QUERY}", project.private_key)
    assert a_body["count"] == 3
    b_body = await ok(http, f"{edge}{QUERY}", b.private_key)
    assert b_body["count"] == 1
    assert {r["project_id"] for r in b_body["results"]} == {b.project_id}
    for path in (AGG.format("daily"), AGG.format("hourly"), AGG.format("5min"), SUMMARIES):
        body = await ok(http, f"{edge}{path}", b.private_key)
        assert body["results"], path
        assert "secret" not in orjson.dumps(body).decode(), path
    names = await ok(http, f"{edge}{NAMES}", b.private_key)
    assert [r["event_name"] for r in names["results"]] == ["page_view"]
    sources = await ok(http, f"{edge}{SOURCES}", b.private_key)
    assert [r["name"] for r in sources["results"]] == ["b-web"]
    # A's source id is not B's to filter on, and A's cursor shows B nothing of A.
    status, body = await get(
        http, f"{edge}{QUERY}", b.private_key, {"event_source_id": str(a_source)}
    )
    assert (status, body["code"]) == (400, "event_source_id_invalid")
    page = await ok(http, f"{edge}{QUERY}", project.private_key, {"page_size": "1"})
    assert page["next"] is not None and "cursor=" in page["next"]
    status, body = await get(http, page["next"], b.private_key)
    assert status == 200
    assert {r["project_id"] for r in body["results"]} <= {b.project_id}
