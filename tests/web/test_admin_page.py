"""The admin page in a real headless Chromium, on a stack of its own.

Its own database (so ``flush_log`` holds only this stack's flushes), stream, topic and a
worker the test starts and stops. In the browser: sign in; create a project and ingest with
the key the page shows; rotate a key with a short grace period (the old key stops after it);
change a setting (a bad value gets set-setting's message); replay a dead letter (it is then
in ``events``); and watch the health panel turn FAIL while the worker is stopped (after the
flush timeout, with events waiting) and OK again once it is restarted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from analytics.dev.processes import WorkerProcess
from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.storage import projects
from analytics.storage.migrate import migrate
from tests.support.browser import Browser
from tests.support.stack import ADMIN_DSN, make_settings, post, start_edge, wait_for

TOKEN = "admin-page-" + uuid.uuid4().hex
EVENT = {"event_name": "page_view", "event_source": "web"}


@pytest.fixture
async def own_database() -> AsyncIterator[str]:
    name = f"sa_test_admin_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def wait_overall(browser: Browser, want: str, timeout: float) -> None:
    await browser.wait_for(
        f"document.querySelector('#overall').textContent === {want!r}", timeout=timeout
    )


async def test_admin_page_end_to_end(
    broker_url: str, own_database: str, run_dir: Path, http: aiohttp.ClientSession
) -> None:
    settings = make_settings(
        broker_url, own_database, run_dir, admin_token=TOKEN, key_cache_seconds=0.5
    )
    pool = await asyncpg.create_pool(own_database, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await migrate(conn)
    worker = WorkerProcess(settings, run_dir, name="admin-page-worker")
    worker.start()
    edge = await start_edge(settings)
    base = f"http://127.0.0.1:{settings.http_port}"
    ingest = f"{base}/api/events/ingest/"
    try:
        await asyncio.to_thread(worker.wait_ready)
        async with Browser() as browser:
            # Sign in.
            await browser.goto(f"{base}/admin/")
            await browser.wait_for("!document.querySelector('#login').hidden")
            await browser.type_into("#token", TOKEN)
            await browser.click("#login-form button")
            await browser.wait_for("!document.querySelector('#app').hidden")

            # Create a project; ingest with the key the page shows (once).
            await browser.type_into("#new-name", "from-the-browser")
            await browser.click("#create-form button")
            public_key = await browser.wait_for(
                "document.querySelector('#new-public-key')?.textContent"
            )
            assert public_key.startswith("sa_") and not public_key.startswith("sa_priv_")
            project_id = await browser.evaluate(
                "document.querySelector('#new-project-id').textContent"
            )
            status, _ = await post(http, ingest, {**EVENT, "event_id": "first"}, public_key)
            assert status == 202

            async def stored(event_id: str) -> bool:
                async with pool.acquire() as conn:
                    return bool(
                        await conn.fetchval(
                            "SELECT count(*) FROM events WHERE project_id = $1 AND event_id = $2",
                            project_id,
                            event_id,
                        )
                    )

            await wait_for(lambda: stored("first"), timeout=60)
            await wait_overall(browser, "OK", 60)
            await browser.evaluate("window.scrollTo(0, 0)")
            await browser.screenshot(run_dir / "admin-page.png")

            # Rotate the public key with a 4-second grace: the old key works, then stops.
            await browser.evaluate(
                "(() => { const g = document.querySelector('#grace-hours');"
                " g.value = String(4 / 3600); })()"
            )
            rotate = f'[data-rotate="public"][data-project="{project_id}"]'
            await browser.wait_for(f"!!document.querySelector({rotate!r})")
            await browser.click(rotate)
            new_key = await browser.wait_for("document.querySelector('#rotated-key')?.textContent")
            assert new_key.startswith("sa_") and new_key != public_key
            assert (await post(http, ingest, EVENT, public_key))[0] == 202  # within the grace

            async def old_key_refused() -> bool:
                return (await post(http, ingest, EVENT, public_key))[0] == 401

            await wait_for(old_key_refused, timeout=20, interval=0.5)
            assert (await post(http, ingest, EVENT, new_key))[0] == 202

            # Change a setting: a bad value is refused with set-setting's message.
            await browser.evaluate(
                f"document.querySelector('#setting-project').value = {project_id!r}"
            )
            await browser.type_into("#setting-name", "retention_days")
            await browser.type_into("#setting-value", "0")
            await browser.click("#setting-form button")
            message = await browser.wait_for(
                "document.querySelector('#setting-msg.show.error')?.textContent"
            )
            assert "invalid value for retention_days" in message
            await browser.evaluate("document.querySelector('#setting-value').value = ''")
            await browser.type_into("#setting-value", "30")
            await browser.click("#setting-form button")
            await browser.wait_for("!!document.querySelector('#setting-msg.show.info')")
            async with pool.acquire() as conn:
                assert (await projects.stored_settings(conn, project_id, None))[
                    "retention_days"
                ] == 30

            # Replay a dead letter from the page: the event is then in `events`.
            async with pool.acquire() as conn:
                source_id = await projects.resolve_source(conn, project_id, "web")
                now = to_us(datetime.now(UTC))
                row = EventRow(
                    project_id, "replayed", source_id, "web", "u", "s", "page_view", "{}", now,
                    1.0, now, None, None,
                )  # fmt: skip
                letter = await conn.fetchval(
                    "INSERT INTO dead_letters (project_id, event_id, error, payload)"
                    " VALUES ($1, 'replayed', 'DataError: refused in a test', $2) RETURNING id",
                    project_id,
                    orjson.dumps(tuple(row)).decode(),
                )
            await browser.goto(f"{base}/admin/")  # the session cookie keeps us signed in
            replay = f'[data-replay="{letter}"]'
            await browser.wait_for(f"!!document.querySelector({replay!r})")
            await browser.click(replay)
            await browser.wait_for("!!document.querySelector('#dl-msg.show.info')")
            await wait_for(lambda: stored("replayed"), timeout=60)

            # Stop the worker: with events waiting and no flush for the flush timeout, FAIL.
            await wait_overall(browser, "OK", 60)
            await asyncio.to_thread(worker.stop)
            for i in range(3):
                assert (await post(http, ingest, {**EVENT, "event_id": f"w{i}"}, new_key))[0] == 202
            await wait_overall(browser, "FAIL", 150)
            flush = await browser.evaluate(
                "document.querySelector('[data-check=flush]').textContent"
            )
            assert "FAIL" in flush and "is a worker running" in flush
            await browser.evaluate("window.scrollTo(0, 0)")
            await browser.screenshot(run_dir / "admin-page-fail.png")

            # Restart it: the waiting events are stored and the panel is OK again.
            worker.start()
            await asyncio.to_thread(worker.wait_ready)
            await wait_for(lambda: stored("w2"), timeout=90)
            await wait_overall(browser, "OK", 90)
    finally:
        worker.stop()
        await edge.cleanup()
        await pool.close()
