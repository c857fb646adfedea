"""The tracker script run for real by headless Chromium, on a site served from a second origin.

The site (``http://localhost:PORT``) embeds the snippet pointing at the edge
(``http://127.0.0.1:PORT``); what the script sends goes through the whole
pipeline and is checked in ``events``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import orjson
import pytest
from aiohttp import web

from analytics.dev.broker import free_port
from analytics.dev.processes import WorkerProcess
from analytics.storage import projects
from analytics.storage.projects import NewProject
from tests.support.browser import Browser
from tests.support.stack import stored_rows, wait_for

PAGE = """<!doctype html>
<html><head><title>{title}</title>
<script>window.sa = window.sa || function () {{ (sa.q = sa.q || []).push(arguments); }};
sa("before_load", {{when: "queued"}});</script>
<script defer src="{edge}/sa.js" data-key="{key}" data-outbound data-downloads {extra}></script>
</head><body>
<a id="out" href="{outside}/elsewhere">elsewhere</a>
<a id="file" href="/files/report.pdf" download>report</a>
<button id="signup" data-sa-event="signup" data-sa-prop-plan="pro">sign up</button>
</body></html>"""


@dataclass
class Site:
    """A small site on its own origin; pages embed the snippet with ``?key=`` as data-key."""

    url: str
    outside: str


@pytest.fixture
async def site(edge: str) -> AsyncIterator[Site]:
    port = free_port()
    url = f"http://localhost:{port}"
    outside = f"http://127.0.0.1:{port}"

    async def page(request: web.Request) -> web.Response:
        if request.path == "/files/report.pdf":
            return web.Response(
                body=b"%PDF-1.4\n",
                content_type="application/pdf",
                headers={"Content-Disposition": "attachment; filename=report.pdf"},
            )
        if request.path in ("/blank", "/elsewhere"):
            return web.Response(
                text="<!doctype html><title>plain</title>", content_type="text/html"
            )
        extra = " ".join(
            f"data-{flag}" for flag in ("allow-automation", "hash") if request.query.get(flag)
        )
        html = PAGE.format(
            title="Home", edge=edge, key=request.query.get("key", ""), extra=extra, outside=outside
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Site(url, outside)
    await runner.cleanup()


def ingest_sent(browser: Browser) -> list[str]:
    """URLs of the ingest requests the page made (whatever became of them)."""
    return [
        e["params"]["request"]["url"]
        for e in browser.events
        if e["method"] == "Network.requestWillBeSent"
        and "/api/events/ingest/" in e["params"]["request"]["url"]
    ]


def exceptions(browser: Browser) -> list[object]:
    return [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]


async def test_page_views_navigation_clicks_and_custom_events(
    site: Site, worker: WorkerProcess, db: asyncpg.Pool, project: NewProject
) -> None:
    async with Browser() as browser:
        await browser.call("Network.enable")
        await browser.call(
            "Page.navigate",
            url=f"{site.url}/?key={project.public_key}",
            referrer="https://news.ycombinator.com/",
            referrerPolicy="unsafeUrl",  # an https referrer reaches an http page only so
        )
        await browser.wait_for("document.readyState === 'complete' && !window.sa.q")
        await browser.evaluate('sa("after_load", {n: 2})')
        for path in ("/app/one", "/app/two", "/app/three"):
            await browser.evaluate(f"history.pushState({{}}, '', {path!r})")
        await browser.evaluate("history.replaceState({}, '', '/app/three')")  # same path: no view
        await browser.evaluate("history.back()")
        await browser.wait_for("location.pathname === '/app/two'")
        await browser.click("#signup")
        await browser.click("#file")
        await wait_for(lambda: _count(db, project.project_id, 9))
        await browser.click("#out")
        await browser.wait_for(f"location.href === {site.outside + '/elsewhere'!r}")
        rows = await wait_for(lambda: stored_rows(db, project.project_id, 10, order="timestamp"))
        assert exceptions(browser) == []
        # No cookies by default: the edge's sa_uid cookie is never stored for the script.
        cookies = (await browser.call("Network.getAllCookies"))["cookies"]
        assert [c["name"] for c in cookies] == []
        answered = {status for status, url in browser.responses() if "/api/events/ingest/" in url}
        assert answered == {202}
        # A simple request: no CORS preflight was needed for any event.
        assert not [
            e
            for e in browser.events
            if e["method"] == "Network.requestWillBeSent"
            and e["params"]["request"]["method"] == "OPTIONS"
        ]

    names = Counter(r["event_name"] for r in rows)
    assert names == {
        "page_view": 5,
        "before_load": 1,
        "after_load": 1,
        "signup": 1,
        "file_download": 1,
        "outbound_click": 1,
    }
    views = [r for r in rows if r["event_name"] == "page_view"]
    assert Counter(r["pathname"] for r in views) == {
        "/": 1,
        "/app/one": 1,
        "/app/two": 2,
        "/app/three": 1,
    }
    first = min(views, key=lambda r: r["timestamp"])
    props = orjson.loads(first["properties"])
    assert first["pathname"] == "/"
    assert props["referrer"] == "https://news.ycombinator.com/"
    assert first["referrer_domain"] == "news.ycombinator.com"
    assert first["referrer_source"] == "Hacker News"
    assert first["hostname"] == "localhost"
    assert props["title"] == "Home"
    assert isinstance(props["screen_width"], int) and props["language"]
    assert all(r["source"] == "web" for r in rows)
    # Views inside the site carry no referrer (same origin).
    assert [
        r for r in views if r is not first and "referrer" in orjson.loads(r["properties"])
    ] == []

    by_name = {r["event_name"]: orjson.loads(r["properties"]) for r in rows}
    assert by_name["before_load"]["when"] == "queued"
    assert by_name["after_load"]["n"] == 2
    assert by_name["signup"]["plan"] == "pro"
    assert by_name["file_download"]["link"] == f"{site.url}/files/report.pdf"
    assert by_name["outbound_click"]["link"] == f"{site.outside}/elsewhere"
    assert all(r["browser"] == "HeadlessChrome" or r["is_bot"] for r in rows)


async def _count(db: asyncpg.Pool, project_id: str, n: int) -> bool:
    return await stored_rows(db, project_id, n) is not None


async def test_opt_out_sends_nothing(
    site: Site, worker: WorkerProcess, db: asyncpg.Pool, project: NewProject
) -> None:
    async with Browser() as browser:
        await browser.call("Network.enable")
        await browser.goto(f"{site.url}/blank")
        await browser.evaluate('localStorage.sa_ignore = "true"')
        await browser.goto(f"{site.url}/?key={project.public_key}")
        await browser.wait_for("typeof window.sa === 'function' && !window.sa.q")
        await browser.evaluate('sa("signup"); history.pushState({}, "", "/next")')
        await browser.click("#signup")
        await asyncio.sleep(2)
        await browser.evaluate("1")  # read the DevTools events that arrived meanwhile
        assert ingest_sent(browser) == []
        # The same page without the opt-out does send: the check above can fail.
        await browser.evaluate("localStorage.removeItem('sa_ignore')")
        await browser.goto(f"{site.url}/?key={project.public_key}")
        rows = await wait_for(lambda: stored_rows(db, project.project_id, 2))
    # Only the second load's view and queued call: nothing from the opted-out page.
    assert sorted(r["event_name"] for r in rows) == ["before_load", "page_view"]


async def test_automated_browsers_are_skipped_unless_allowed(
    site: Site, worker: WorkerProcess, db: asyncpg.Pool, project: NewProject
) -> None:
    async with Browser() as browser:
        await browser.call("Network.enable")
        await browser.call(
            "Page.addScriptToEvaluateOnNewDocument",
            source="Object.defineProperty(navigator, 'webdriver', {get: () => true})",
        )
        await browser.goto(f"{site.url}/?key={project.public_key}")
        await browser.wait_for("navigator.webdriver === true && typeof window.sa === 'function'")
        await browser.evaluate('sa("from_a_robot")')
        await asyncio.sleep(1.5)
        await browser.evaluate("1")
        assert ingest_sent(browser) == []
        await browser.goto(f"{site.url}/allowed?key={project.public_key}&allow-automation=1")
        rows = await wait_for(lambda: stored_rows(db, project.project_id, 2))
    assert sorted(r["event_name"] for r in rows) == ["before_load", "page_view"]
    assert {r["pathname"] for r in rows} == {"/allowed"}


async def test_origin_not_allowed_stores_nothing_and_raises_nothing(
    site: Site, worker: WorkerProcess, db: asyncpg.Pool
) -> None:
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "tracker-cors")
        await projects.set_setting(
            conn, project.project_id, "cors_origins", ["https://shop.example"], None
        )
    async with Browser() as browser:
        await browser.call("Network.enable")
        await browser.goto(f"{site.url}/?key={project.public_key}")
        await browser.wait_for("typeof window.sa === 'function' && !window.sa.q")
        await browser.evaluate('sa("after_load")')
        await asyncio.sleep(2)
        await browser.evaluate("1")
        # page_view, the queued call and after_load were sent; the edge refused each
        # (403 origin_not_allowed, without CORS headers) and the page went on.
        assert len(ingest_sent(browser)) == 3
        assert await browser.evaluate("document.title") == "Home"
        assert exceptions(browser) == []
    assert await stored_rows(db, project.project_id, 1) is None


async def test_hash_changes_are_page_views_with_data_hash(
    site: Site, worker: WorkerProcess, db: asyncpg.Pool, project: NewProject
) -> None:
    async with Browser() as browser:
        await browser.goto(f"{site.url}/?key={project.public_key}&hash=1")
        await browser.wait_for("typeof window.sa === 'function' && !window.sa.q")
        for route in ("#/inbox", "#/settings"):
            await browser.evaluate(f"location.hash = {route!r}")
            await browser.wait_for(f"location.hash === {route!r}")
        rows = await wait_for(lambda: stored_rows(db, project.project_id, 4))
    views = sorted(r["pathname"] for r in rows if r["event_name"] == "page_view")
    assert views == ["/", "/#/inbox", "/#/settings"]
