"""End-to-end scenarios: open-loop load with freshness probes, growth, scale-out, memory.

Freshness is measured with probes: one event each, sent at regular intervals (on a
clock, not after the previous probe showed) to a probe project while the load runs; one
poller reads the realtime metric and the PostgreSQL aggregate of that project and
records when each probe became visible, counted from its 202.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from aiokafka.partitioner import murmur2

from analytics.dev.broker import free_port
from analytics.dev.processes import WorkerProcess
from analytics.ops.recount import mismatches
from analytics.storage.projects import NewProject
from bench import openloop
from bench.stack import Edge, Stack, peak_rss_mb, start_worker, wait_count

GRACE_S = 30.0


@dataclass(slots=True)
class Freshness:
    """Seconds from each probe's 202 to visible, realtime and PostgreSQL."""

    live: list[float] = field(default_factory=list)
    stored: list[float] = field(default_factory=list)
    unseen: int = 0

    def q(self, which: str, quantile: float) -> float | None:
        return openloop.percentile(self.live if which == "live" else self.stored, quantile)


@dataclass(slots=True, frozen=True)
class Step:
    """One open-loop load step through edge, bridge and worker."""

    offered_events_per_s: float
    delivered_events_per_s: float
    accepted_events: int
    late_sends: int
    dropped: int
    freshness: Freshness
    probes: int

    def sustainable(self, pg_p95_max: float) -> bool:
        """PostgreSQL freshness p95 within the bound and the edge accepted what was offered."""
        p95 = self.freshness.q("stored", 0.95)
        kept_up = self.delivered_events_per_s >= 0.95 * self.offered_events_per_s
        return p95 is not None and p95 <= pg_p95_max and kept_up and not self.freshness.unseen


async def probe_freshness(
    stack: Stack,
    edge_url: str,
    probe: NewProject,
    *,
    seconds: float,
    interval: float,
    warmup: float,
) -> Freshness:
    """Probes every ``interval`` s for ``seconds``; those sent in the warm-up are not kept."""
    assert stack.pool is not None
    pool = stack.pool
    sent: list[float] = []
    live: dict[int, float] = {}
    stored: dict[int, float] = {}
    sending_done = asyncio.Event()

    async def send(http: aiohttp.ClientSession) -> None:
        origin = time.perf_counter()
        k = 0
        while (due := origin + k * interval) < origin + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            body = orjson.dumps(
                {"event_name": "probe", "event_source": "probe", "event_id": str(uuid.uuid4())}
            )
            # Awaiting the 202 keeps the probes in stream order, so "count >= k + 1"
            # means probe k is visible. The next probe is due on the clock regardless.
            async with http.post(
                f"{edge_url}/api/events/ingest/",
                data=body,
                headers={
                    "Authorization": f"Bearer {probe.public_key}",
                    "Content-Type": "application/json",
                },
            ) as resp:
                await resp.read()
                if resp.status != 202:
                    raise RuntimeError(f"probe answered {resp.status}")
            sent.append(time.perf_counter())
            k += 1
        sending_done.set()

    async def poll(http: aiohttp.ClientSession) -> None:
        headers = {"Authorization": f"Bearer {probe.private_key}"}
        while True:
            now = time.perf_counter()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(
                    f"{edge_url}/api/events/metrics/realtime/", headers=headers
                ) as resp:
                    live_count = int((await resp.json()).get("events_last_hour", 0))
                for k in range(len(sent)):
                    if k not in live and live_count >= k + 1:
                        live[k] = now - sent[k]
            async with pool.acquire() as conn:
                stored_count = int(
                    await conn.fetchval(
                        "SELECT coalesce(sum(event_count), 0) FROM agg_5min WHERE project_id = $1",
                        probe.project_id,
                    )
                )
            for k in range(len(sent)):
                if k not in stored and stored_count >= k + 1:
                    stored[k] = now - sent[k]
            if sending_done.is_set():
                pending = [k for k in range(len(sent)) if k not in live or k not in stored]
                if not pending or all(now - sent[k] > GRACE_S for k in pending):
                    return
            await asyncio.sleep(0.1)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(send(http), poll(http))
    keep = [k for k in range(len(sent)) if k * interval >= warmup]
    result = Freshness()
    for k in keep:
        if k in live:
            result.live.append(live[k])
        if k in stored:
            result.stored.append(stored[k])
        if k not in live or k not in stored:
            result.unseen += 1
    return result


async def load_step(
    stack: Stack,
    edge: Edge,
    events_per_s: float,
    seconds: float,
    *,
    probes: int = 60,
    warmup: float = 5.0,
) -> tuple[Step, NewProject]:
    """Offer batches of 100 at events_per_s, open loop, with probes over the run."""
    project = await stack.project(f"load-{uuid.uuid4().hex[:6]}")
    probe = await stack.project(f"probe-{uuid.uuid4().hex[:6]}")
    plan = openloop.Plan(
        f"{edge.url}/api/events/batch/", project.public_key, events_per_s / 100, seconds, "batch"
    )
    interval = max(0.1, (seconds - warmup) / probes)
    load = asyncio.create_task(asyncio.to_thread(openloop.offer, plan, 1))
    fresh = await probe_freshness(
        stack, edge.url, probe, seconds=seconds, interval=interval, warmup=warmup
    )
    result = await load
    accepted = int(result.ok_per_s * seconds) * 100
    step = Step(
        events_per_s,
        result.ok_per_s * 100,
        accepted,
        result.late,
        result.dropped,
        fresh,
        len(fresh.live) + fresh.unseen,
    )
    return step, project


async def drain(stack: Stack, project: NewProject, expected: int, timeout: float) -> int:
    """Wait until the project's stored count reaches expected, or stops moving; the count."""
    with contextlib.suppress(TimeoutError):
        await wait_count(stack, project.project_id, expected, timeout=timeout)
    # Requests answered after the generator's tally may still land: wait for a still count.
    count = await stack.count(project.project_id)
    while True:
        await asyncio.sleep(2)
        again = await stack.count(project.project_id)
        if again == count:
            return count
        count = again


@dataclass(slots=True)
class Search:
    """The steps of a sustainable-rate search and the highest rate that held."""

    steps: list[Step] = field(default_factory=list)
    sustainable: float = 0.0


# The most 1.5x rises a search makes before it gives up looking for a rate that fails.
MAX_RISES = 8


async def sustainable_rate(
    stack: Stack,
    workdir: Path,
    *,
    first: float,
    steps: int,
    seconds: float,
    pg_p95_max: float = 5.0,
) -> Search:
    """Highest offered rate (events/s) at which one edge and one worker keep PG p95 fresh.

    Up by 1.5x while steps hold (however many that takes, at most ``MAX_RISES``: a low
    first guess must not cap the answer); once one fails, ``steps - 1`` more bisect
    between the best that held and the lowest that failed. Each step drains its backlog
    before the next starts.
    """
    settings = stack.settings()
    search = Search()
    with Edge(settings, workdir / "edge-search.log") as edge:
        worker = start_worker(settings, workdir, "search")
        try:
            rate, low, high = first, 0.0, None
            first_failure: int | None = None
            while True:
                step, project = await load_step(stack, edge, rate, seconds)
                search.steps.append(step)
                await drain(stack, project, step.accepted_events, timeout=120)
                if step.sustainable(pg_p95_max):
                    low = max(low, rate)
                else:
                    high = rate if high is None else min(high, rate)
                    if first_failure is None:
                        first_failure = len(search.steps) - 1
                if high is None:
                    if len(search.steps) > MAX_RISES:
                        break
                    rate *= 1.5
                    continue
                assert first_failure is not None
                if len(search.steps) - 1 - first_failure >= max(1, steps - 1):
                    break
                rate = (low + high) / 2 if low else high / 2
            search.sustainable = low
        finally:
            worker.stop()
    return search


@dataclass(slots=True, frozen=True)
class Steady:
    """A steady open-loop run: the step, losses, agreement, and peak RSS of each process."""

    step: Step
    lost: int
    aggregates_match: bool
    edge_rss_mb: float | None
    worker_rss_mb: float | None


async def steady_load(
    stack: Stack,
    workdir: Path,
    events_per_s: float,
    seconds: float,
    *,
    profile_dir: Path | None = None,
) -> Steady:
    """One edge and one worker at a fixed offered rate; freshness, losses, agreement."""
    settings = stack.settings()
    with Edge(settings, workdir / "edge-steady.log") as edge:
        worker = start_worker(settings, workdir, "steady")
        profilers: list[asyncio.subprocess.Process] = []
        try:
            if profile_dir is not None:
                profilers = await _profile(profile_dir, seconds, edge=edge.proc, worker=worker.proc)
            step, project = await load_step(stack, edge, events_per_s, seconds, probes=60)
            count = await drain(stack, project, step.accepted_events, timeout=300)
            assert stack.pool is not None
            bad = await mismatches(stack.pool, project.project_id)
            return Steady(
                step,
                max(0, step.accepted_events - count),
                not bad,
                peak_rss_mb(edge.proc.pid) if edge.proc else None,
                peak_rss_mb(worker.proc.pid) if worker.proc else None,
            )
        finally:
            for p in profilers:
                with contextlib.suppress(ProcessLookupError, TimeoutError):
                    await asyncio.wait_for(p.wait(), timeout=30)
            worker.stop()


async def _profile(out: Path, seconds: float, **pids: object) -> list[asyncio.subprocess.Process]:
    """py-spy record on each named process for the run (BENCH_PROFILE=1).

    Folded stacks (one line per stack, with its sample count): flamegraph.pl, speedscope
    and inferno read them, and ``sort -t' ' -k2 -n`` finds the heaviest by hand.
    """
    import shutil

    binary = shutil.which("py-spy")
    if binary is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, proc in pids.items():
        pid = getattr(proc, "pid", None)
        if pid is None:
            continue
        procs.append(
            await asyncio.create_subprocess_exec(
                binary,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--format",
                "raw",
                "--output",
                str(out / f"{name}.folded.txt"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    return procs


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
                    "event_id": str(uuid.uuid4()),
                    "user_id": f"u-{tag}-{i}" if distinct_users else f"u{i % 5000}",
                }
                for i in range(start, min(n, start + per_request))
            ]
            body = orjson.dumps({"events": events})
            for _ in range(20):
                async with http.post(
                    f"{edge}/api/events/batch/",
                    data=body,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                ) as resp:
                    if resp.status == 202:
                        break
                await asyncio.sleep(0.5)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))


@dataclass(slots=True, frozen=True)
class Through:
    """n events pushed through as fast as the edge takes them, until all are stored."""

    events_per_s: float
    worker_rss_mb: float | None
    edge_rss_mb: float | None


async def run_through(
    stack: Stack, workdir: Path, n: int, *, workers: int = 1, distinct_users: bool = False
) -> Through:
    """n events (random ids) through edge -> ... -> PostgreSQL, split over one project per
    worker, each on its own partition; events/s from the first post to the last stored."""
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
        started_workers: list[WorkerProcess] = [start_worker(settings, workdir, f"run-{n}-0")]
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
            edge_rss = peak_rss_mb(edge.proc.pid) if edge.proc else None
            return Through(share * len(projects) / elapsed, rss, edge_rss)
        finally:
            for w in started_workers:
                w.stop()
