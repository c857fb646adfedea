"""The dashboard page (SPEC §10) in a real headless Chromium, served by a real edge.

What needs no figures is checked against the stats API as it answers in this
tree (any non-2xx must become the error banner). The rendering of figures,
rows and the click-to-filter loop is checked with contract-shaped answers put
in place of ``fetch`` before the page's own script runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from analytics.storage.projects import NewProject
from tests.support.browser import Browser

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
    if node is None:
        pytest.skip("node is not installed")
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


# Answers shaped as the stats API's contract, so that the page's rendering is checked
# without figures in the database; every URL the page asked for is kept in __asked.
FAKE_API = """
(() => {
  const real = window.fetch.bind(window);
  window.__asked = [];
  const rows = {
    page: ["/", "/pricing", "<img src=x onerror=window.__owned=1>"],
    country: ["DE", "(none)"], name: ["page_view", "signup"],
  };
  const answer = (url) => {
    const q = url.searchParams;
    if (url.pathname === "/api/stats/aggregate/") return {results: {
      visitors: {value: 1234, change: 20.0}, visits: {value: 1500, change: null},
      pageviews: {value: 4000, change: -3.5}, bounce_rate: {value: 40.0, change: -5.0},
      visit_duration: {value: 65, change: 10.0}}};
    if (url.pathname === "/api/stats/timeseries/") return {results: [
      {date: "2026-11-27", visitors: 3, pageviews: 9},
      {date: "2026-11-28", visitors: 0, pageviews: 0},
      {date: "2026-11-29", visitors: 5, pageviews: 12}]};
    if (url.pathname === "/api/stats/breakdown/") {
      const key = q.get("property").split(":").pop();
      const metrics = q.get("metrics").split(",");
      return {page: 1, limit: +q.get("limit"), results: (rows[key] || ["Chrome"]).map(
        (v, i) => Object.fromEntries([[key, v], ...metrics.map((m) => [m, 50 - 10 * i])]))};
    }
    if (url.pathname === "/api/stats/realtime/visitors/") return {results: 4};
    return null;
  };
  window.fetch = async (input, init) => {
    const url = new URL(String(input), location.href);
    const body = answer(url);
    if (body === null) return real(input, init);
    window.__asked.push(url.pathname + url.search);
    return new Response(JSON.stringify(body), {headers: {"Content-Type": "application/json"}});
  };
})();
"""


async def test_figures_rows_and_click_to_filter(
    edge: str, project: NewProject, run_dir: Path
) -> None:
    async with Browser() as page:
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=FAKE_API)
        await page.goto(f"{edge}/dashboard/")
        await page.evaluate(f"localStorage.setItem({STORE!r}, {project.private_key!r})")
        await page.goto(f"{edge}/dashboard/")
        await page.wait_for("document.querySelectorAll('#panel-pages .row').length === 3")
        figures = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.figure')].map(f =>"
            " [f.dataset.metric, [f.querySelector('.value').textContent,"
            " f.querySelector('.change').textContent, f.querySelector('.change').className]]))"
        )
        assert figures["visitors"] == ["1,234", "↑ 20% vs previous", "change good"]
        assert figures["pageviews"] == ["4,000", "↓ 3.5% vs previous", "change bad"]
        # For the bounce rate, down is good, and the change is in percentage points.
        assert figures["bounce_rate"] == ["40%", "↓ 5 pp vs previous", "change good"]
        assert figures["visit_duration"][0] == "1m 05s"
        assert figures["visits"][1] == "new this period"
        assert await page.evaluate("document.getElementById('realtime').textContent") == "4"
        # A hostile page path is shown as text, never parsed as markup.
        labels = await page.evaluate(
            "[...document.querySelectorAll('#panel-pages .row .label')].map(l => l.textContent)"
        )
        assert labels == ["/", "/pricing", "<img src=x onerror=window.__owned=1>"]
        assert await page.evaluate("document.querySelectorAll('#app img').length") == 0
        assert await page.evaluate("window.__owned === undefined")
        # Countries by name with their code; custom events leave page_view out.
        country = await page.evaluate("document.querySelector('#panel-countries .row').innerText")
        assert "DE" in country and "Germany" in country
        events = await page.evaluate(
            "[...document.querySelectorAll('#panel-events .row .label')].map(l => l.textContent)"
        )
        assert events == ["signup"]
        assert await page.evaluate("document.querySelectorAll('#chart path').length") == 3
        # Hovering the chart names the interval and its figures.
        point = await page.evaluate(
            "(() => { const r = document.getElementById('chart').getBoundingClientRect();"
            " return [r.right - 20, r.top + r.height / 2]; })()"
        )
        await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=point[0], y=point[1])
        tip = await page.wait_for(
            "!document.getElementById('tip').hidden && document.getElementById('tip').innerText"
        )
        assert tip.split("\n") == ["Sun, Nov 29, 2026", "Visitors: 5", "Pageviews: 12"]
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
        assert await page.evaluate("location.search") == "?filters=event:page==/pricing"
        await page.wait_for(
            f"window.__asked.slice({asked}).filter(u => u.includes('/breakdown/')).length === 5"
        )
        later = await page.evaluate(f"window.__asked.slice({asked})")
        stats = [u for u in later if "/realtime/" not in u]
        assert len(stats) == 7  # figures, chart and the five panels
        assert all("filters=event%3Apage%3D%3D%2Fpricing" in u for u in stats)
