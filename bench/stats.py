"""Stats API latency (SPEC §10): a 30-day ``event:page`` breakdown over a large project.

``python -m bench.stats`` runs it alone. The project is filled as the sink fills it
(``write_events``: raw rows, visits and rollups; not timed) with ``STATS_EVENTS`` page
views spread over the last 30 days: 1,000 pages (Zipf-like), 50,000 visitors, browser
user agents, a referrer on one visit in five. Then an ``analytics edge`` child answers
sequential requests; the figures are its p50/p95, with ``GET /healthz`` on the same edge
(a bare handler) as the baseline of the run.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson

from analytics.events.models import EventRow
from analytics.storage.events import PartitionCache, write_events
from bench import pipeline
from bench.results import Row, limit_row, render
from bench.stack import Edge, Stack

QUICK = os.environ.get("BENCH_QUICK") == "1"
STATS_EVENTS = int(os.environ.get("STATS_EVENTS", 100_000 if QUICK else 10_000_000))
REQUESTS = 50 if QUICK else 200
DAY_US = 86_400_000_000
AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36"
)


def page_views(project_id: str, source_id: int, n: int) -> Iterator[EventRow]:
    """n page views over the last 30 days, in time order, 10 per visit."""
    now_us = time.time_ns() // 1000
    start = now_us - 30 * DAY_US
    step = (30 * DAY_US) // max(n, 1)
    pages = [f"/docs/page-{i}" for i in range(1000)]
    weights = [1 / (i + 1) for i in range(1000)]
    picks = random.choices(pages, weights, k=min(n, 200_000))
    tag = uuid.uuid4().hex[:6]
    for i in range(n):
        visit = i // 10
        user = f"v-{tag}-{visit % 50_000}"
        props = {"url": f"https://docs.example{picks[i % len(picks)]}"}
        if visit % 5 == 0 and i % 10 == 0:
            props["referrer"] = "https://www.google.com/"
        yield EventRow(
            project_id,
            str(uuid.uuid4()),
            source_id,
            "web",
            user,
            f"s-{tag}-{visit}",
            "page_view",
            orjson.dumps(props).decode(),
            start + i * step,
            1.0,
            now_us,
            "203.0.113.9",
            AGENT,
        )


async def _fill(stack: Stack, n: int) -> str:
    assert stack.pool is not None
    project = await stack.project("stats")
    source = await pipeline.source_for(stack.pool, project.project_id)
    cache = PartitionCache()
    batch: list[EventRow] = []
    done = 0
    async with stack.pool.acquire() as conn:
        for row in page_views(project.project_id, source, n):
            batch.append(row)
            if len(batch) == 25_000:
                await write_events(conn, batch, cache)
                done += len(batch)
                batch = []
                if done % 1_000_000 == 0:
                    print(f"  stats: {done:,} events stored", flush=True)
        if batch:
            await write_events(conn, batch, cache)
        await conn.execute("ANALYZE")
    return project.private_key


async def _latencies(url: str, key: str, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    out: list[float] = []
    async with aiohttp.ClientSession() as http:
        for i in range(count + 5):
            started = time.perf_counter()
            async with http.get(url, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            if i >= 5:  # warm-up
                out.append((time.perf_counter() - started) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def rows_for(stack: Stack, workdir: Path) -> list[Row]:
    """The stats rows of the bench table."""
    key = await _fill(stack, STATS_EVENTS)
    rows: list[Row] = []
    with Edge(stack.settings(), workdir / "stats-edge.log") as edge:
        bare = await _latencies(f"{edge.url}/healthz", key, REQUESTS)
        base = _p(bare, 95)
        asks = {
            "breakdown event:page": "breakdown/?property=event:page&period=30d&limit=10",
            "aggregate": "aggregate/?period=30d&compare=previous_period",
            "breakdown visit:source": "breakdown/?property=visit:source&period=30d&limit=10",
        }
        for name, query in asks.items():
            ms = await _latencies(f"{edge.url}/api/stats/{query}", key, REQUESTS)
            p95 = _p(ms, 95)
            rows.append(
                limit_row(
                    f"stats {name}, 30 days of {STATS_EVENTS:,} events: p95"
                    f" (p50 {statistics.median(ms):.1f} ms, {p95 / base:.0f}x /healthz)",
                    round(p95, 1),
                    "ms",
                    100,
                    "GET /healthz p95",
                    round(base, 2),
                )
            )
    return rows


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="sa-bench-stats-"))
    async with Stack(workdir) as stack:
        rows = await rows_for(stack, workdir)
    print(render(rows))


if __name__ == "__main__":
    asyncio.run(main())
