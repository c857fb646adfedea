"""The dashboard page (SPEC §10) in a real headless Chromium, served by a real edge.

What needs no figures is checked against the stats API as it answers in this
tree (any non-2xx must become the error banner). The rendering of figures,
rows and the click-to-filter loop is checked with contract-shaped answers put
in place of ``fetch`` before the page's own script runs.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import asyncpg

from analytics.storage import share_links
from analytics.storage.projects import NewProject
from tests.support.browser import Browser
from tests.web import test_stats as stats_data

CSP = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
STORE = "sa_private_key"


async def _page_html(http: aiohttp.ClientSession, edge: str) -> str:
    async with http.get(f"{edge}/dashboard/") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.content_type == "text/html"
        return await resp.text()


async def test_served_self_contained_with_its_csp(http: aiohttp.ClientSession, edge: str) -> None:
    html = await _page_html(http, edge)
    # Nothing from another origin: no URL with a scheme, no protocol-relative one.
    assert re.findall(r"https?://", html) == []
    assert re.findall(r"""(?:src|href)\s*=\s*["']//""", html) == []
    assert "<script src" not in html and "@import" not in html
    # Values from the API (page paths, referrers) are attacker-controlled: text only.
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html
    assert "document.write" not in html and "eval(" not in html


async def test_inline_script_passes_node_check(
    http: aiohttp.ClientSession, edge: str, tmp_path: Path
) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed (make install puts it in place with npm)"
    scripts = re.findall(r"<script>(.*?)</script>", await _page_html(http, edge), re.S)
    assert len(scripts) == 1
    source = tmp_path / "dashboard.js"
    source.write_text(scripts[0])
    result = subprocess.run([node, "--check", str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


async def test_key_form_and_error_banner(edge: str, project: NewProject, run_dir: Path) -> None:
    async with Browser() as page:
        await page.goto(f"{edge}/dashboard/")
        assert await page.evaluate("!document.getElementById('login').hidden")
        assert await page.evaluate("document.getElementById('app').hidden")
        assert await page.evaluate("document.getElementById('banner').hidden")
        # A public key is refused in the page itself, before any request.
        await page.type_into("#key", project.public_key)
        await page.click("#open")
        assert "private key" in await page.wait_for(
            "document.getElementById('login-error').textContent"
        )
        await page.evaluate("document.getElementById('key').value = ''")
        # A key no project has: refused (401), or any failure of the API, is a banner.
        await page.type_into("#key", "sa_priv_" + "x" * 27)
        await page.click("#open")
        text = await page.wait_for(
            "!document.getElementById('banner').hidden"
            " && document.getElementById('banner-text').textContent"
        )
        assert "refused" in text or "Could not load" in text
        await page.screenshot(run_dir / "dashboard-error.png")


async def test_url_state_round_trips(edge: str, project: NewProject) -> None:
    async with Browser() as page:
        await page.goto(f"{edge}/dashboard/")
        await page.evaluate(f"localStorage.setItem({STORE!r}, {project.private_key!r})")
        await page.goto(f"{edge}/dashboard/?period=7d&filters=visit:country==DE")
        await page.wait_for("!document.getElementById('app').hidden")
        assert await page.evaluate("document.getElementById('period').value") == "7d"
        assert (
            await page.evaluate("document.getElementById('period').selectedOptions[0].textContent")
            == "Last 7 days"
        )
        chips = await page.evaluate(
            "[...document.querySelectorAll('.chip .text')].map(c => c.textContent)"
        )
        assert chips == ["Country is DE"]
        # The picker writes the address bar; the filter stays.
        await page.evaluate(
            "const p = document.getElementById('period');"
            " p.value = 'month'; p.dispatchEvent(new Event('change'))"
        )
        search = await page.evaluate("location.search")
        assert "period=month" in search and "filters=visit:country==DE" in search
        await page.click(".chip button")
        assert await page.evaluate("location.search") == "?period=month"
        assert await page.evaluate("document.querySelectorAll('.chip').length") == 0
        # A bookmark of the custom range opens the range, with both days in the inputs.
        await page.goto(
            f"{edge}/dashboard/?period=custom&date=2026-11-01,2026-11-20"
            "&filters=event:page==/pricing|/a%5C;b&pages=entry"
        )
        await page.wait_for("!document.getElementById('app').hidden")
        assert await page.evaluate("document.getElementById('period').value") == "custom"
        assert await page.evaluate("document.getElementById('from').value") == "2026-11-01"
        assert await page.evaluate("document.getElementById('to').value") == "2026-11-20"
        assert await page.evaluate("document.querySelector('.chip .text').textContent") == (
            "Page is /pricing or /a;b"
        )
        selected = "#panel-pages .tabs button[aria-selected=true]"
        assert await page.evaluate(f"document.querySelector({selected!r}).textContent") == (
            "Entry pages"
        )
        # A new range applied from the two inputs; the other state is kept.
        await page.evaluate(
            "document.getElementById('from').value = '2026-10-01';"
            " document.getElementById('to').value = '2026-10-15'"
        )
        await page.click("#apply")
        search = await page.evaluate("location.search")
        assert search.startswith("?period=custom&date=2026-10-01,2026-10-15&filters=")
        assert search.endswith("&pages=entry")
        # The previous and next buttons step a day (or a month) through the dates.
        await page.goto(f"{edge}/dashboard/?period=day&date=2026-11-02")
        await page.wait_for("!document.getElementById('app').hidden")
        await page.click("#prev")
        assert await page.evaluate("location.search") == "?period=day&date=2026-11-01"
        await page.goto(f"{edge}/dashboard/?period=month&date=2026-01-01")
        await page.wait_for("!document.getElementById('app').hidden")
        await page.click("#prev")
        assert await page.evaluate("location.search") == "?period=month&date=2025-12-01"


# Every stats URL the page asks for is noted in __asked (the answers are the real API's).
RECORD_REQUESTS = """
(() => {
  const real = window.fetch.bind(window);
  window.__asked = [];
  window.fetch = (input, init) => {
    const url = new URL(String(input), location.href);
    if (url.pathname.startsWith("/api/stats/")) window.__asked.push(url.pathname + url.search);
    return real(input, init);
  };
})();
"""
HOSTILE = "/<img src=x onerror=window.__owned=1>"
# The stats tests' dataset, plus one visit to a page whose path is markup.
DATASET = [
    *stats_data.DATASET,
    ("u4", "s5", "page_view", f"https://shop.test{HOSTILE}", stats_data.at(12), None,
     stats_data.CHROME, {}),
]  # fmt: skip
VIEW = "?period=custom&date=2026-11-02,2026-11-03"


async def test_figures_rows_and_click_to_filter(
    edge: str, db: asyncpg.Pool, project: NewProject, run_dir: Path
) -> None:
    await stats_data.fill(db, project.project_id, dataset=DATASET, ip="81.2.69.142")
    async with Browser() as page:
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=RECORD_REQUESTS)
        await page.goto(f"{edge}/dashboard/")
        await page.evaluate(f"localStorage.setItem({STORE!r}, {project.private_key!r})")
        await page.goto(f"{edge}/dashboard/{VIEW}")
        await page.wait_for("document.querySelectorAll('#panel-pages .row').length === 4")
        figures = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.figure')].map(f =>"
            " [f.dataset.metric, [f.querySelector('.value').textContent,"
            " f.querySelector('.change').textContent, f.querySelector('.change').className]]))"
        )
        # u1-u4 in five visits: s1 saw two pages in 3 minutes, the others one page each
        assert [figures[m][0] for m in ("visitors", "visits", "pageviews", "bounce_rate")] == [
            "4",
            "5",
            "6",
            "80%",
        ]
        assert figures["visit_duration"][0] == "36s"
        assert figures["visitors"][1] == "new this period"  # nothing the two days before
        # A hostile page path is shown as text, never parsed as markup.
        labels = await page.evaluate(
            "[...document.querySelectorAll('#panel-pages .row .label')].map(l => l.textContent)"
        )
        assert labels[:2] == ["/", "/pricing"]  # two visitors each, then one
        assert "/about" in labels[2:]
        assert any("img" in label for label in labels[2:])
        assert await page.evaluate("document.querySelectorAll('#app img').length") == 0
        assert await page.evaluate("window.__owned === undefined")
        # Countries by name with their code (81.2.69.142 is in the GB range of the
        # packaged database); custom events leave page_view out.
        country = await page.evaluate("document.querySelector('#panel-countries .row').innerText")
        assert "GB" in country and "United Kingdom" in country
        events = await page.evaluate(
            "[...document.querySelectorAll('#panel-events .row .label')].map(l => l.textContent)"
        )
        assert events == ["signup"]
        assert await page.evaluate("document.querySelectorAll('#chart path').length") == 3
        # Hovering the chart's last point names the interval and its figures.
        point = await page.evaluate(
            "(() => { const r = document.getElementById('chart').getBoundingClientRect();"
            " return [r.right - 20, r.top + r.height / 2]; })()"
        )
        await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=point[0], y=point[1])
        tip = await page.wait_for(
            "!document.getElementById('tip').hidden && document.getElementById('tip').innerText"
        )
        assert tip.split("\n") == ["Tue, Nov 3, 2026", "Visitors: 1", "Pageviews: 1"]
        await page.screenshot(run_dir / "dashboard-figures.png")
        # At a phone's width nothing sticks out sideways.
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=390,
            height=844,
            deviceScaleFactor=1,
            mobile=True,
        )
        await page.wait_for("document.documentElement.clientWidth === 390")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await page.wait_for(  # the chart is drawn again at its new width
            "(c => c.viewBox.baseVal.width === Math.round(c.getBoundingClientRect().width))"
            "(document.getElementById('chart'))"
        )
        await page.screenshot(run_dir / "dashboard-390.png")
        await page.call("Emulation.clearDeviceMetricsOverride")

        # Clicking a row filters the whole page: chip, address bar, every request.
        asked = await page.evaluate("window.__asked.length")
        await page.click("#panel-pages .row:nth-child(2)")
        await page.wait_for("document.querySelectorAll('.chip').length === 1")
        assert await page.evaluate("document.querySelector('.chip .text').textContent") == (
            "Page is /pricing"
        )
        assert "filters=event:page==/pricing" in await page.evaluate("location.search")
        await page.wait_for(
            f"window.__asked.slice({asked}).filter(u => u.includes('/breakdown/')).length === 5"
        )
        later = await page.evaluate(f"window.__asked.slice({asked})")
        stats = [u for u in later if "/realtime/" not in u]
        assert len(stats) == 7  # figures, chart and the five panels
        assert all("filters=event%3Apage%3D%3D%2Fpricing" in u for u in stats)
        # ...and the figures are the filtered ones: u1 and u2 saw /pricing, in s1 and s2.
        await page.wait_for(
            "document.querySelector('.figure[data-metric=visitors] .value').textContent === '2'"
        )
        assert (
            await page.evaluate(
                "document.querySelector('.figure[data-metric=pageviews] .value').textContent"
            )
            == "2"
        )
        await page.screenshot(run_dir / "dashboard-filtered.png")


async def test_a_share_link_shows_the_page_without_a_key(
    edge: str, db: asyncpg.Pool, project: NewProject, run_dir: Path
) -> None:
    await stats_data.fill(db, project.project_id)
    async with db.acquire() as conn:
        token = await share_links.create_link(conn, project.project_id)
    async with Browser() as page:
        await page.goto(f"{edge}/share/{token}{VIEW}")
        await page.wait_for(
            "document.querySelector('.figure[data-metric=visitors] .value')?.textContent === '3'"
        )
        assert await page.evaluate("document.getElementById('login').hidden")
        assert await page.evaluate("document.getElementById('forget').hidden")
        assert await page.evaluate("localStorage.length") == 0  # the token is not kept
        await page.screenshot(run_dir / "dashboard-share.png")
        async with db.acquire() as conn:
            await share_links.revoke_links(conn, project.project_id, token)
        # The open page's next request is refused (the edge's share cache holds an
        # answer for 2 s), and the link itself is gone.
        await asyncio.sleep(2.5)
        await page.evaluate(
            "document.getElementById('period').value = '7d';"
            " document.getElementById('period').dispatchEvent(new Event('change'))"
        )
        text = await page.wait_for(
            "!document.getElementById('banner').hidden"
            " && document.getElementById('banner-text').textContent"
        )
        assert "share link" in text
    async with aiohttp.ClientSession() as http, http.get(f"{edge}/share/{token}") as resp:
        assert resp.status == 404


async def test_a_country_click_filters_the_pages_and_the_picker_redraws_the_chart(
    edge: str, db: asyncpg.Pool, project: NewProject, run_dir: Path
) -> None:
    # u2 browses from the US (8.8.8.8), everyone else from GB
    await stats_data.fill(
        db, project.project_id, dataset=DATASET, ip="81.2.69.142", ips={"u2": "8.8.8.8"}
    )
    async with Browser() as page:
        await page.goto(f"{edge}/dashboard/")
        await page.evaluate(f"localStorage.setItem({STORE!r}, {project.private_key!r})")
        await page.goto(f"{edge}/dashboard/{VIEW}")
        await page.wait_for("document.querySelectorAll('#panel-countries .row').length === 2")
        labels = (
            "[...document.querySelectorAll('#panel-pages .row .label')].map(l => l.textContent)"
        )
        assert len(await page.evaluate(labels)) == 4
        countries = await page.evaluate(
            "[...document.querySelectorAll('#panel-countries .row')].map(r => r.innerText)"
        )
        assert "United Kingdom" in countries[0] and "United States" in countries[1]
        await page.click("#panel-countries .row:nth-child(2)")
        await page.wait_for("document.querySelectorAll('.chip').length === 1")
        assert "filters=visit:country==US" in await page.evaluate("location.search")
        await page.wait_for(f"JSON.stringify({labels}) === JSON.stringify(['/pricing'])")
        await page.screenshot(run_dir / "dashboard-country.png")

        axis = "[...document.querySelectorAll('#chart text')].map(t => t.textContent).join('|')"
        before = await page.evaluate(axis)
        await page.evaluate(
            "const p = document.getElementById('period'); p.value = '12mo';"
            " p.dispatchEvent(new Event('change'))"
        )
        await page.wait_for(f"{axis} !== {before!r}")
        assert "period=12mo" in await page.evaluate("location.search")
