"""End-to-end scenarios: steady load with freshness probes, growth, scale-out, memory."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from pathlib import Path

import aiohttp
import orjson
from aiokafka.partitioner import murmur2

from analytics.dev.broker import free_port
from analytics.ops.recount import mismatches
from analytics.storage.projects import NewProject
from bench.http_load import wrk
from bench.stack import Edge, Stack, peak_rss_mb, start_worker, wait_count


async def _probe(
    http: aiohttp.ClientSession,
    edge: str,
    public: str,
    private: str,
    stack: Stack,
    project_id: str,
    index: int,
) -> tuple[float | None, float | None]:
    """Send one event; seconds until the realtime metric and the PostgreSQL aggregate show it."""
    body = orjson.dumps({"event_name": "probe", "event_source": "probe", "event_id": f"p{index}"})
    async with http.post(
        f"{edge}/api/events/ingest/",
        data=body,
        headers={"Authorization": f"Bearer {public}", "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 202
    sent = time.perf_counter()
    live = stored = None
    assert stack.pool is not None
    while time.perf_counter() - sent < 30 and (live is None or stored is None):
        if live is None:
            async with http.get(
                f"{edge}/api/events/metrics/realtime/",
                headers={"Authorization": f"Bearer {private}"},
            ) as resp:
                figures = await resp.json()
            if figures.get("events_last_hour", 0) >= index + 1:
                live = time.perf_counter() - sent
        if stored is None:
            async with stack.pool.acquire() as conn:
                total = await conn.fetchval(
                    "SELECT coalesce(sum(event_count), 0) FROM agg_5min WHERE project_id = $1",
                    project_id,
                )
            if total >= index + 1:
                stored = time.perf_counter() - sent
        await asyncio.sleep(0.05)
    return live, stored


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def steady_load(
    stack: Stack, workdir: Path, events_per_s: float, seconds: int
) -> dict[str, float | None]:
    """Batch load at a fixed rate through edge, bridge and worker; losses and freshness."""
    settings = stack.settings()
    project = await stack.project("steady")
    probe = await stack.project("probe")
    with Edge(settings, workdir / "edge-steady.log") as edge:
        worker = start_worker(settings, workdir, "steady")
        try:
            connections = 4
            per_connection = events_per_s / 100 / connections
            load = asyncio.create_task(
                asyncio.to_thread(
                    wrk,
                    f"{edge.url}/api/events/batch/",
                    "batch.lua",
                    project.public_key,
                    seconds=seconds,
                    connections=connections,
                    rate_per_connection=per_connection,
                )
            )
            live: list[float] = []
            stored: list[float] = []
            async with aiohttp.ClientSession() as http:
                index = 0
                while not load.done():
                    a, b = await _probe(
                        http,
                        edge.url,
                        probe.public_key,
                        probe.private_key,
                        stack,
                        probe.project_id,
                        index,
                    )
                    index += 1
                    if a is not None:
                        live.append(a)
                    if b is not None:
                        stored.append(b)
                    await asyncio.sleep(0.5)
            result = await load
            accepted = (result.requests - result.non_2xx) * 100
            with contextlib.suppress(TimeoutError):
                await wait_count(stack, project.project_id, accepted, timeout=300)
            # Requests still in flight when wrk stopped were accepted but not counted by it:
            # wait until the stored count stops moving before comparing.
            count = await stack.count(project.project_id)
            while True:
                await asyncio.sleep(3)
                again = await stack.count(project.project_id)
                if again == count:
                    break
                count = again
            assert stack.pool is not None
            bad = await mismatches(stack.pool, project.project_id)
            return {
                "offered_events_per_s": events_per_s,
                "accepted_events_per_s": accepted / seconds,
                "lost": float(max(0, accepted - count)),
                "aggregates_match": 1.0 if not bad else 0.0,
                "fresh_live_p95": p95(live),
                "fresh_pg_p95": p95(stored),
                "probes": float(len(stored)),
                "live_median": statistics.median(live) if live else None,
            }
        finally:
            worker.stop()


async def _post_all(
    edge: str,
    key: str,
    n: int,
    *,
    distinct_users: bool,
    concurrency: int = 6,
    per_request: int = 1000,
) -> None:
    tag = uuid.uuid4().hex[:6]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for start in range(0, n, per_request):
        queue.put_nowait(start)

    async def client(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            start = queue.get_nowait()
            events = [
                {
                    "event_name": f"event_{i % 10}",
                    "event_source": "web",
                    "event_id": f"{tag}-{i}",
                    "user_id": f"u-{tag}-{i}" if distinct_users else f"u{i % 5000}",
                }
                for i in range(start, min(n, start + per_request))
            ]
            for _ in range(20):
                async with http.post(
                    f"{edge}/api/events/batch/",
                    data=orjson.dumps({"events": events}),
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                ) as resp:
                    if resp.status == 202:
                        break
                await asyncio.sleep(0.5)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))


async def run_through(
    stack: Stack, workdir: Path, n: int, *, workers: int = 1, distinct_users: bool = False
) -> tuple[float, float | None]:
    """n events through edge -> ... -> PostgreSQL; (events/s, worker peak RSS MB)."""
    partitions = max(1, workers)
    settings = stack.settings(topic_partitions=partitions)
    projects: list[NewProject] = []
    used: set[int] = set()
    while len(projects) < partitions:
        candidate = await stack.project(f"run-{len(projects)}")
        partition = (murmur2(candidate.project_id.encode()) & 0x7FFFFFFF) % partitions
        if partition not in used:
            used.add(partition)
            projects.append(candidate)
    with Edge(settings, workdir / f"edge-{n}-{workers}.log") as edge:
        started_workers = [start_worker(settings, workdir, f"run-{n}-0")]
        for i in range(1, workers):
            started_workers.append(
                start_worker(settings, workdir, f"run-{n}-{i}", port=free_port())
            )
        try:
            share = n // len(projects)
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    _post_all(edge.url, p.public_key, share, distinct_users=distinct_users)
                    for p in projects
                )
            )
            for p in projects:
                await wait_count(stack, p.project_id, share, timeout=900)
            elapsed = time.perf_counter() - started
            rss = max((peak_rss_mb(w.proc.pid) or 0.0) for w in started_workers if w.proc)
            return share * len(projects) / elapsed, rss
        finally:
            for w in started_workers:
                w.stop()
