"""Events through the whole pipeline (edge, Redis, broker, worker) land enriched in ``events``.

Addresses are chosen by the test through a trusted proxy's ``X-Forwarded-For``
(the project trusts 127.0.0.1), so real public addresses map to countries.
"""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import asyncpg

from analytics.dev.processes import WorkerProcess
from analytics.storage import projects
from analytics.storage.projects import NewProject
from tests.support.stack import post, stored_rows, wait_for

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CURL = "curl/8.5.0"


async def _project(db: asyncpg.Pool, **settings: Any) -> NewProject:
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "enrichment")
        await projects.set_setting(
            conn, project.project_id, "trusted_proxies", ["127.0.0.1/32"], None
        )
        for name, value in settings.items():
            await projects.set_setting(conn, project.project_id, name, value, None)
    return project


async def _send(
    http: aiohttp.ClientSession,
    edge: str,
    key: str,
    event_id: str,
    *,
    ip: str,
    agent: str = CHROME_WINDOWS,
    properties: dict[str, Any] | None = None,
) -> None:
    body = {
        "event_name": "page_view",
        "event_source": "web",
        "event_id": event_id,
        "properties": properties or {},
    }
    status, answer = await post(
        http,
        f"{edge}/api/events/ingest/",
        body,
        key,
        **{"User-Agent": agent, "X-Forwarded-For": ip},
    )
    assert status == 202, answer


def _by_id(rows: list[asyncpg.Record]) -> dict[str, asyncpg.Record]:
    return {r["event_id"]: r for r in rows}


async def test_user_agents_and_countries(
    http: aiohttp.ClientSession, edge: str, worker: WorkerProcess, db: asyncpg.Pool
) -> None:
    project = await _project(db)
    sent = {
        "chrome": (CHROME_WINDOWS, "8.8.8.8"),
        "iphone": (SAFARI_IPHONE, "81.2.69.142"),
        "tablet": (ANDROID_TABLET, "2a00:1450:4001::1"),
        "googlebot": (GOOGLEBOT, "1.1.1.1"),
        "curl": (CURL, "10.0.0.7"),
        "loopback": (CHROME_WINDOWS, "127.0.0.1"),
    }
    for event_id, (agent, ip) in sent.items():
        await _send(http, edge, project.public_key, event_id, ip=ip, agent=agent)
    rows = _by_id(await wait_for(lambda: stored_rows(db, project.project_id, len(sent))))

    def seen(event_id: str) -> tuple[Any, ...]:
        r = rows[event_id]
        return (r["browser"], r["os"], r["device_type"], r["is_bot"], r["country_code"])

    assert seen("chrome") == ("Chrome", "Windows", "desktop", False, "US")
    assert seen("iphone") == ("Mobile Safari", "iOS", "mobile", False, "GB")
    assert seen("tablet") == ("Chrome", "Android", "tablet", False, "IE")
    assert seen("googlebot") == ("Googlebot", None, "bot", True, "AU")
    assert seen("curl") == ("curl", None, "bot", True, None)  # private address: no country
    assert seen("loopback")[-1] is None
    assert rows["chrome"]["browser_version"] == "120.0"
    assert rows["iphone"]["os_version"] == "17.1"
    assert rows["chrome"]["ip_address"] == "8.8.8.8"  # full is the default


async def test_pages_campaigns_and_referrers(
    http: aiohttp.ClientSession, edge: str, worker: WorkerProcess, db: asyncpg.Pool
) -> None:
    project = await _project(db)
    cases: dict[str, dict[str, Any]] = {
        "google": {"url": "https://www.shop.example/a?x=1", "referrer": "https://www.google.com/"},
        "hn": {"url": "https://shop.example/b", "referrer": "https://news.ycombinator.com/item"},
        "twitter": {"url": "https://shop.example/c", "referrer": "https://t.co/xyz"},
        "utm": {
            "url": "https://shop.example/d?utm_source=newsletter&utm_medium=email"
            "&utm_campaign=spring&utm_term=shoes&utm_content=hero",
            "referrer": "https://www.google.com/",
        },
        "seed": {"page": "/dashboard", "referrer": "https://google.com"},
        "custom": {"plan": "pro"},
    }
    for event_id, properties in cases.items():
        await _send(http, edge, project.public_key, event_id, ip="8.8.8.8", properties=properties)
    rows = _by_id(await wait_for(lambda: stored_rows(db, project.project_id, len(cases))))

    def seen(event_id: str) -> tuple[Any, ...]:
        r = rows[event_id]
        return (r["hostname"], r["pathname"], r["referrer_domain"], r["referrer_source"])

    assert seen("google") == ("shop.example", "/a", "google.com", "Google")
    assert seen("hn") == ("shop.example", "/b", "news.ycombinator.com", "Hacker News")
    assert seen("twitter") == ("shop.example", "/c", "t.co", "Twitter")
    assert seen("utm") == ("shop.example", "/d", "google.com", "newsletter")  # UTM wins
    utm = rows["utm"]
    assert [utm[f"utm_{k}"] for k in ("source", "medium", "campaign", "term", "content")] == [
        "newsletter",
        "email",
        "spring",
        "shoes",
        "hero",
    ]
    assert rows["google"]["utm_source"] is None
    assert seen("seed") == (None, "/dashboard", "google.com", "Google")
    assert seen("custom") == (None, None, None, None)
    assert rows["custom"]["browser"] == "Chrome"  # the agent is enriched on every event


async def test_ip_address_storage(
    http: aiohttp.ClientSession, edge: str, worker: WorkerProcess, db: asyncpg.Pool
) -> None:
    kept: dict[str, tuple[str | None, str | None]] = {}
    for storage in ("full", "truncated", "none"):
        project = await _project(db, ip_address_storage=storage)
        await _send(http, edge, project.public_key, "v4", ip="81.2.69.142")
        await _send(http, edge, project.public_key, "v6", ip="2a00:1450:4001:81c::200e")
        rows = _by_id(await wait_for(lambda p=project: stored_rows(db, p.project_id, 2)))
        assert rows["v4"]["country_code"] == "GB", storage  # found before the address is cut
        assert rows["v6"]["country_code"] == "IE", storage
        kept[storage] = (rows["v4"]["ip_address"], rows["v6"]["ip_address"])
    assert kept == {
        "full": ("81.2.69.142", "2a00:1450:4001:81c::200e"),
        "truncated": ("81.2.69.0", "2a00:1450:4001::"),
        "none": (None, None),
    }


async def test_segment_context_page_user_agent_and_ip(
    http: aiohttp.ClientSession, edge: str, worker: WorkerProcess, db: asyncpg.Pool
) -> None:
    project = await _project(db)
    message = {
        "type": "page",
        "name": "Pricing",
        "anonymousId": "anon-1",
        "messageId": "segment-page-1",
        "context": {
            "page": {
                "url": "https://docs.example/pricing?utm_source=hn",
                "path": "/pricing",
                "referrer": "https://news.ycombinator.com/",
            },
            "userAgent": SAFARI_IPHONE,
            "ip": "81.2.69.142",
        },
    }
    token = base64.b64encode(f"{project.public_key}:".encode()).decode()
    async with http.post(
        f"{edge}/v1/batch",
        json={"batch": [message]},
        headers={"Authorization": f"Basic {token}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
    (row,) = await wait_for(lambda: stored_rows(db, project.project_id, 1))
    assert (row["hostname"], row["pathname"], row["utm_source"]) == (
        "docs.example",
        "/pricing",
        "hn",
    )
    assert (row["referrer_domain"], row["referrer_source"]) == ("news.ycombinator.com", "hn")
    assert (row["browser"], row["device_type"], row["country_code"]) == (
        "Mobile Safari",
        "mobile",
        "GB",
    )
