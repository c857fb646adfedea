"""The stats API (SPEC §10) over a real socket, on real PostgreSQL, against a known dataset.

Events go in through ``write_events`` (raw rows, visits and rollups in one transaction,
as the sink writes them), so every figure below is counted by hand from the dataset.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.storage import projects, share_links
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
D = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, in the past
SPAN = {"period": "custom", "date": "2026-11-02,2026-11-03"}


def at(hours: float) -> datetime:
    return D + timedelta(hours=hours)


# (user, session, event, url or None, UTC time, referrer, user agent, extra properties)
DATASET: list[tuple[str, str, str, str | None, datetime, str | None, str, dict[str, Any]]] = [
    ("u1", "s1", "page_view", "https://shop.test/", at(9), "https://news.ycombinator.com/", CHROME, {}),  # noqa: E501
    ("u1", "s1", "page_view", "https://shop.test/pricing", at(9 + 2 / 60), None, CHROME, {}),
    ("u1", "s1", "signup", None, at(9 + 3 / 60), None, CHROME, {"plan": "pro"}),
    (
        "u2", "s2", "page_view", "https://shop.test/pricing?utm_source=newsletter", at(10),
        None, IPHONE, {},
    ),
    ("u1", "s3", "page_view", "https://shop.test/about", at(32), None, CHROME, {}),
    ("bot1", "sb", "page_view", "https://shop.test/", at(11), None, GOOGLEBOT, {}),
    # 23:30 UTC on the 2nd is 00:30 on the 3rd in Berlin
    ("u3", "s4", "page_view", "https://shop.test/", at(23.5), None, IPHONE, {}),
]  # fmt: skip


Row = tuple[str, str, str, str | None, datetime, str | None, str, dict[str, Any]]


async def fill(
    db: asyncpg.Pool,
    project_id: str,
    zone: str = "UTC",
    dataset: list[Row] = DATASET,
    ip: str = "203.0.113.7",
    ips: dict[str, str] | None = None,
) -> None:
    async with db.acquire() as conn:
        source = await projects.resolve_source(conn, project_id, "web")
        if zone != "UTC":
            await projects.set_setting(conn, project_id, "timezone", zone, None, actor="test")
    rows = []
    for user, session, name, url, when, referrer, agent, extra in dataset:
        props: dict[str, Any] = dict(extra)
        if url:
            props["url"] = url
        if referrer:
            props["referrer"] = referrer
        rows.append(
            EventRow(
                project_id=project_id,
                event_id=uuid.uuid4().hex,
                event_source_id=source,
                event_source="web",
                user_id=user,
                session_id=session,
                event_name=name,
                properties=orjson.dumps(props).decode(),
                timestamp_us=to_us(when),
                sample_rate=1.0,
                received_at_us=to_us(when),
                ip_address=(ips or {}).get(user, ip),
                user_agent=agent,
            )
        )
    # Out of order and partly twice, as a flaky network delivers: the later events first,
    # then s1's first three (late: its entry page among them), then a replay of three
    # stored already. Every figure below is the same as for one clean write.
    async with db.acquire() as conn:
        cache = PartitionCache()
        await write_events(conn, rows[3:], cache)
        await write_events(conn, rows[:3], cache)
        await write_events(conn, rows[2:5], cache)


async def get(
    http: aiohttp.ClientSession, url: str, key: str | None, params: dict[str, str]
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with http.get(url, params=params, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def ok(http: aiohttp.ClientSession, url: str, key: str, **params: str) -> Any:
    status, body = await get(http, url, key, params)
    assert status == 200, body
    return body


@pytest.fixture
async def filled(db: asyncpg.Pool, project: NewProject) -> NewProject:
    await fill(db, project.project_id)
    return project


async def test_aggregate_counts_the_dataset_and_leaves_the_bot_out(
    http: aiohttp.ClientSession, edge: str, filled: NewProject
) -> None:
    body = await ok(
        http,
        f"{edge}/api/stats/aggregate/",
        filled.private_key,
        metrics="visitors,visits,pageviews,events,bounce_rate,visit_duration,views_per_visit",
        compare="previous_period",
        **SPAN,
    )
    results = body["results"]
    values = {name: entry["value"] for name, entry in results.items()}
    assert values == {
        "visitors": 3,
        "visits": 4,
        "pageviews": 5,
        "events": 6,
        "bounce_rate": 75.0,  # s2, s3 and s4 saw one page and did nothing else
        "visit_duration": 45,  # s1 lasted 180 s, the others 0
        "views_per_visit": 1.25,
    }
    assert results["visitors"]["change"] is None  # nothing in the two days before
    assert results["bounce_rate"]["change"] is None  # no visits to compare with


async def test_compare_gives_each_change_against_the_day_before(
    http: aiohttp.ClientSession, edge: str, filled: NewProject
) -> None:
    body = await ok(
        http,
        f"{edge}/api/stats/aggregate/",
        filled.private_key,
        period="day",
        date="2026-11-03",
        compare="previous_period",
        metrics="visitors,pageviews,bounce_rate,visit_duration",
    )
    assert body["results"] == {
        "visitors": {"value": 1, "change": -66.7},  # 1 against 3
        "pageviews": {"value": 1, "change": -75.0},  # 1 against 4
        "bounce_rate": {"value": 100.0, "change": 33.3},  # points: 100 against 66.7
        "visit_duration": {"value": 0, "change": -100.0},  # 0 s against 60 s
    }


async def test_filters_narrow_events_and_visits(
    http: aiohttp.ClientSession, edge: str, filled: NewProject
) -> None:
    url, key = f"{edge}/api/stats/aggregate/", filled.private_key
    metrics = "visitors,visits,pageviews,events,bounce_rate"
    pricing = await ok(http, url, key, metrics=metrics, filters="event:page==/pricing", **SPAN)
    assert {n: e["value"] for n, e in pricing["results"].items()} == {
        "visitors": 2,
        "visits": 2,
        "pageviews": 2,
        "events": 2,
        "bounce_rate": 50.0,
    }
    hn = await ok(http, url, key, metrics=metrics, filters="visit:source==Hacker News", **SPAN)
    assert {n: e["value"] for n, e in hn["results"].items()} == {
        "visitors": 1,
        "visits": 1,
        "pageviews": 2,
        "events": 3,
        "bounce_rate": 0.0,
    }
    both = await ok(
        http,
        url,
        key,
        metrics="visitors,pageviews",
        filters="event:page==/about|/pricing;visit:device!=mobile",
        **SPAN,
    )
    assert {n: e["value"] for n, e in both["results"].items()} == {"visitors": 1, "pageviews": 2}
    contains = await ok(http, url, key, metrics="pageviews", filters="event:page~RIC", **SPAN)
    assert contains["results"]["pageviews"]["value"] == 2


async def test_timeseries_buckets_in_the_project_time_zone(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    await fill(db, project.project_id, "Europe/Berlin")
    url = f"{edge}/api/stats/timeseries/"
    body = await ok(http, url, project.private_key, interval="day", **SPAN)
    assert body["results"] == [
        {"date": "2026-11-02", "visitors": 2, "pageviews": 3},
        {"date": "2026-11-03", "visitors": 2, "pageviews": 2},
    ]
    hours = await ok(
        http, url, project.private_key, period="day", date="2026-11-03", metrics="pageviews,visits"
    )
    assert len(hours["results"]) == 24
    assert hours["results"][0] == {"date": "2026-11-03 00:00:00", "pageviews": 1, "visits": 1}
    assert hours["results"][9] == {"date": "2026-11-03 09:00:00", "pageviews": 1, "visits": 1}
    assert sum(r["pageviews"] for r in hours["results"]) == 2
    fine = await ok(
        http, url, project.private_key, period="day", date="2026-11-03", interval="5min"
    )
    assert len(fine["results"]) == 288
    assert fine["results"][6] == {"date": "2026-11-03 00:30:00", "visitors": 1, "pageviews": 1}


async def test_timeseries_in_utc_and_with_comparison(
    http: aiohttp.ClientSession, edge: str, filled: NewProject
) -> None:
    body = await ok(
        http,
        f"{edge}/api/stats/timeseries/",
        filled.private_key,
        interval="day",
        compare="previous_period",
        metrics="visitors,pageviews,visits,bounce_rate",
        **SPAN,
    )
    assert body["results"] == [
        {"date": "2026-11-02", "visitors": 3, "pageviews": 4, "visits": 3, "bounce_rate": 66.7},
        {"date": "2026-11-03", "visitors": 1, "pageviews": 1, "visits": 1, "bounce_rate": 100.0},
    ]
    assert [r["date"] for r in body["comparison"]] == ["2026-10-31", "2026-11-01"]
    assert all(r["visitors"] == 0 for r in body["comparison"])


async def breakdown(http: aiohttp.ClientSession, edge: str, key: str, **params: str) -> Any:
    return (await ok(http, f"{edge}/api/stats/breakdown/", key, **SPAN, **params))["results"]


async def test_every_breakdown_of_the_dataset(
    http: aiohttp.ClientSession, edge: str, filled: NewProject
) -> None:
    key = filled.private_key
    assert await breakdown(
        http, edge, key, property="event:page", metrics="visitors,pageviews"
    ) == [
        {"page": "/", "visitors": 2, "pageviews": 2},
        {"page": "/pricing", "visitors": 2, "pageviews": 2},
        {"page": "/about", "visitors": 1, "pageviews": 1},
    ]
    assert await breakdown(http, edge, key, property="event:name", metrics="events,visitors") == [
        {"name": "page_view", "events": 5, "visitors": 3},
        {"name": "signup", "events": 1, "visitors": 1},
    ]
    assert await breakdown(http, edge, key, property="event:hostname") == [
        {"hostname": "shop.test", "visitors": 3}
    ]
    assert await breakdown(
        http, edge, key, property="visit:entry_page", metrics="visits,bounce_rate"
    ) == [
        {"entry_page": "/", "visits": 2, "bounce_rate": 50.0},
        {"entry_page": "/about", "visits": 1, "bounce_rate": 100.0},
        {"entry_page": "/pricing", "visits": 1, "bounce_rate": 100.0},
    ]
    assert await breakdown(http, edge, key, property="visit:exit_page", metrics="visits") == [
        {"exit_page": "/pricing", "visits": 2},
        {"exit_page": "/", "visits": 1},
        {"exit_page": "/about", "visits": 1},
    ]
    assert await breakdown(http, edge, key, property="visit:source", metrics="visitors,visits") == [
        {"source": "(none)", "visitors": 2, "visits": 2},
        {"source": "Hacker News", "visitors": 1, "visits": 1},
        {"source": "newsletter", "visitors": 1, "visits": 1},
    ]
    assert await breakdown(http, edge, key, property="visit:referrer") == [
        {"referrer": "(none)", "visitors": 3},
        {"referrer": "news.ycombinator.com", "visitors": 1},
    ]
    assert await breakdown(http, edge, key, property="visit:utm_source") == [
        {"utm_source": "(none)", "visitors": 2},
        {"utm_source": "newsletter", "visitors": 1},
    ]
    assert await breakdown(http, edge, key, property="visit:device", metrics="visits") == [
        {"device": "desktop", "visits": 2},
        {"device": "mobile", "visits": 2},
    ]
    browsers = await breakdown(http, edge, key, property="visit:browser", metrics="visits")
    assert {r["browser"]: r["visits"] for r in browsers} == {"Chrome": 2, "Mobile Safari": 2}
    assert await breakdown(http, edge, key, property="event:props:plan") == [
        {"plan": "pro", "visitors": 1}
    ]
    # a filter narrows a breakdown; limit and page walk it
    assert await breakdown(
        http, edge, key, property="event:page", filters="visit:device==mobile"
    ) == [{"page": "/", "visitors": 1}, {"page": "/pricing", "visitors": 1}]
    second = await breakdown(http, edge, key, property="event:page", limit="1", page="2")
    assert second == [{"page": "/pricing", "visitors": 2}]


@pytest.mark.parametrize(
    ("prop", "metrics", "rows"),
    [
        ("visit:entry_page", "visits", [("/", 1), ("/pricing", 1)]),
        ("visit:exit_page", "visits", [("/", 1), ("/pricing", 1)]),
        ("visit:source", "visits", [("(none)", 1), ("newsletter", 1)]),
        ("visit:utm_source", "visitors", [("(none)", 1), ("newsletter", 1)]),
        ("visit:country", "visitors", [("(none)", 2)]),
        ("visit:device", "visits", [("mobile", 2)]),
        ("visit:os", "visits", [("iOS", 2)]),
        ("event:name", "events", [("page_view", 2)]),
        ("event:hostname", "pageviews", [("shop.test", 2)]),
        ("event:page", "visitors", [("/", 1), ("/pricing", 1)]),
    ],
)
async def test_each_breakdown_under_a_visit_filter(
    http: aiohttp.ClientSession,
    edge: str,
    filled: NewProject,
    prop: str,
    metrics: str,
    rows: list[tuple[str, int]],
) -> None:
    """Only the two mobile visits (u2's s2 and u3's s4) are left."""
    got = await breakdown(
        http,
        edge,
        filled.private_key,
        property=prop,
        metrics=metrics,
        filters="visit:device==mobile",
    )
    key = prop.rsplit(":", 1)[1]
    assert [(r[key], r[metrics]) for r in got] == rows


async def test_other_projects_see_none_of_it_and_keys_are_checked(
    http: aiohttp.ClientSession, edge: str, db: asyncpg.Pool, filled: NewProject
) -> None:
    async with db.acquire() as conn:
        other = await projects.create_project(conn, f"other-{uuid.uuid4().hex[:6]}")
    body = await ok(http, f"{edge}/api/stats/aggregate/", other.private_key, **SPAN)
    assert all(entry["value"] == 0 for entry in body["results"].values())
    assert await breakdown(http, edge, other.private_key, property="event:page") == []
    async with db.acquire() as conn:
        other_link = await share_links.create_link(conn, other.project_id)
        own_link = await share_links.create_link(conn, filled.project_id)
    body = await ok(http, f"{edge}/api/stats/aggregate/", other_link, **SPAN)
    assert all(entry["value"] == 0 for entry in body["results"].values())
    body = await ok(http, f"{edge}/api/stats/aggregate/", own_link, metrics="visitors", **SPAN)
    assert body["results"]["visitors"]["value"] == 3
    status, body = await get(http, f"{edge}/api/stats/aggregate/", filled.public_key, SPAN)
    assert status == 403, body
    status, body = await get(http, f"{edge}/api/stats/breakdown/", None, SPAN)
    assert status == 401, body


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("aggregate", {"period": "week"}, "period"),
        ("aggregate", {"period": "custom"}, "date"),
        ("aggregate", {"period": "custom", "date": "2026-11-05,2026-11-01"}, "date"),
        ("aggregate", {"period": "day", "date": "2026-13-01"}, "date"),
        ("aggregate", {"metrics": "visitors,clicks"}, "metrics"),
        ("aggregate", {"compare": "last_year"}, "compare"),
        ("aggregate", {"filters": "visit:planet==Mars"}, "filters"),
        ("aggregate", {"filters": "event:page"}, "filters"),
        ("aggregate", {"filters": "event:page=="}, "filters"),
        ("aggregate", {"property": "event:page"}, "property"),
        ("aggregate", {"colour": "red"}, "colour"),
        ("timeseries", {"interval": "week"}, "interval"),
        ("timeseries", {"period": "12mo", "interval": "hour"}, "interval"),
        ("breakdown", {}, "property"),
        ("breakdown", {"property": "visit:planet"}, "property"),
        ("breakdown", {"property": "event:props:a b"}, "property"),
        ("breakdown", {"property": "event:page", "metrics": "bounce_rate"}, "metrics"),
        ("breakdown", {"property": "event:page", "limit": "0"}, "limit"),
        ("breakdown", {"property": "event:page", "limit": "many"}, "limit"),
        ("breakdown", {"property": "event:page", "page": "-1"}, "page"),
        ("breakdown", {"property": "event:page", "interval": "day"}, "interval"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(
    http: aiohttp.ClientSession,
    edge: str,
    project: NewProject,
    path: str,
    params: dict[str, str],
    field: str,
) -> None:
    status, body = await get(http, f"{edge}/api/stats/{path}/", project.private_key, params)
    assert status == 400, body
    assert body["field"] == field, body
    assert field in body["detail"] or body["code"].startswith(field)


async def test_realtime_visitors_come_from_the_live_tables_without_bots(
    http: aiohttp.ClientSession,
    edge: str,
    worker: object,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    for user, agent in (("rt-1", CHROME), ("rt-2", IPHONE), ("rt-bot", GOOGLEBOT)):
        async with http.post(
            f"{edge}/api/events/ingest/",
            data=orjson.dumps({"event_name": "page_view", "event_source": "web", "user_id": user}),
            headers={
                "Authorization": f"Bearer {project.public_key}",
                "Content-Type": "application/json",
                "User-Agent": agent,
            },
        ) as resp:
            assert resp.status == 202, await resp.text()
    async with db.acquire() as conn:
        token = await share_links.create_link(conn, project.project_id)
    url = f"{edge}/api/stats/realtime/visitors/"
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        body = await ok(http, url, project.private_key)
        if body["results"] >= 2 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.3)
    await asyncio.sleep(1)  # the bot's event went in with the others: it must not show
    assert await ok(http, url, project.private_key) == {"results": 2}
    assert await ok(http, url, token) == {"results": 2}  # a share link reads it too
    status, body = await get(http, url, project.public_key, {})
    assert status == 403, body
