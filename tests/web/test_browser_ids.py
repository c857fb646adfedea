"""A browser's user id in a real headless Chromium, from a page on another origin.

Without the ``sa_uid`` cookie (``fetch`` without credentials, a browser that
blocks cookies) every load must still store one id: the hash of (IP,
User-Agent, project salt), which the cookie is then set to. With credentials
the cookie carries the id, even once the User-Agent (so the hash) changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from analytics.dev.broker import free_port
from analytics.events.anonymous_ids import anonymous_user_id
from analytics.storage.projects import NewProject, find_key
from tests.support.browser import Browser
from tests.support.stack import wait_for

# The page a site would serve: one event per load, sent with fetch to the edge.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title></head><body>
<script>
const q = new URLSearchParams(location.search);
fetch(q.get("edge") + "/api/events/ingest/", {
  method: "POST",
  credentials: q.get("credentials"),
  headers: {"Content-Type": "application/json", "Authorization": "Bearer " + q.get("key")},
  body: JSON.stringify({event_name: "page_load", event_source: "shop",
                        properties: {pair: q.get("credentials"), load: +q.get("load")}}),
}).then(r => { window.sent = r.status; }, e => { window.sent = String(e); });
</script></body></html>
"""


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """A second origin (another port) serving the page."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def load(browser: Browser, site: str, edge: str, key: str, credentials: str, n: int) -> None:
    await browser.goto(f"{site}/?edge={edge}&key={key}&credentials={credentials}&load={n}")
    assert await browser.wait_for("window.sent") == 202


async def loads(db: asyncpg.Pool, project_id: str, n: int) -> list[Any] | None:
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT user_id, user_agent, properties->>'pair' AS pair,"
            " (properties->>'load')::int AS load FROM events WHERE project_id = $1",
            project_id,
        )
    return list(rows) if len(rows) >= n else None


async def edge_cookie(browser: Browser, edge: str) -> str | None:
    found = await browser.call("Network.getCookies", urls=[edge])
    values = [c["value"] for c in found["cookies"] if c["name"] == "sa_uid"]
    return values[0] if values else None


async def test_browser_keeps_one_id_with_and_without_the_cookie(
    edge: str, worker: Any, db: asyncpg.Pool, project: NewProject, site: str
) -> None:
    async with db.acquire() as conn:
        record = await find_key(conn, project.public_key)
    assert record is not None
    async with Browser() as browser:
        await browser.call("Network.enable")
        agent = await browser.evaluate("navigator.userAgent")
        derived = anonymous_user_id("127.0.0.1", agent, record.salt)

        # Two loads whose fetch sends no credentials: no cookie goes out or is kept.
        for n in (1, 2):
            await load(browser, site, edge, project.public_key, "omit", n)
        assert await edge_cookie(browser, edge) is None

        # Two loads with credentials: the first is given the cookie, the second sends it,
        # from a browser whose User-Agent (so the hash) has changed in between.
        await load(browser, site, edge, project.public_key, "include", 1)
        assert await edge_cookie(browser, edge) == derived
        await browser.call("Network.setUserAgentOverride", userAgent=agent + " changed")
        await load(browser, site, edge, project.public_key, "include", 2)

    rows = await wait_for(lambda: loads(db, project.project_id, 4))
    ids = {pair: {r["user_id"] for r in rows if r["pair"] == pair} for pair in ("omit", "include")}
    assert ids == {"omit": {derived}, "include": {derived}}
    second = next(r for r in rows if (r["pair"], r["load"]) == ("include", 2))
    assert second["user_agent"] == agent + " changed"
    assert anonymous_user_id("127.0.0.1", second["user_agent"], record.salt) != derived
