"""The live dashboard page in a real headless Chromium: enter the key, see the numbers."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from analytics.dev.processes import WorkerProcess
from analytics.storage.projects import NewProject
from tests.support.browser import Browser
from tests.support.stack import post


async def test_dashboard_shows_what_was_just_sent(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    project: NewProject,
    run_dir: Path,
) -> None:
    events = [
        {
            "event_name": ("checkout", "page_view", "page_view")[i % 3],
            "event_source": "web",
            "user_id": f"visitor-{i % 4}",
        }
        for i in range(27)
    ]
    status, _ = await post(
        http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
    )
    assert status == 202
    async with Browser() as page:
        await page.call("Network.enable")
        await page.goto(f"{edge}/dashboard/")
        assert await page.evaluate("!document.getElementById('login').hidden")
        # A public key is refused in the page itself, before any request.
        await page.type_into("#key", project.public_key)
        await page.click("#open")
        assert "private key" in await page.wait_for(
            "document.getElementById('login-error').textContent"
        )
        await page.evaluate("document.getElementById('key').value = ''")
        await page.type_into("#key", project.private_key)
        await page.click("#open")
        await page.wait_for("document.getElementById('m5').textContent === '27'")
        assert await page.evaluate("document.getElementById('m60').textContent") == "27"
        assert await page.evaluate("document.getElementById('users').textContent") == "4"
        top = await page.evaluate("document.getElementById('top').innerText")
        assert "page_view" in top and "18" in top and "checkout" in top
        await page.wait_for("document.querySelectorAll('#chart rect').length === 288")
        bars = await page.evaluate(
            "[...document.querySelectorAll('#chart rect')]"
            ".filter(r => +r.getAttribute('height') > 0).length"
        )
        assert bars >= 1  # the 5-minute aggregate from PostgreSQL is drawn
        fresh = await page.evaluate("document.getElementById('freshness').textContent")
        assert fresh.endswith(" s") or fresh.endswith(" min")
        await page.screenshot(run_dir / "dashboard.png")
        # Nothing the page asked for failed: its icon included (it once was a 404).
        assert (200, f"{edge}/favicon.ico") in page.responses()
        assert [r for r in page.responses() if r[0] >= 400] == []
        # The key is kept in the browser: a reload goes straight to the figures.
        await page.goto(f"{edge}/dashboard/")
        await page.wait_for("document.getElementById('m5').textContent === '27'")
