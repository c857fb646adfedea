"""``make bench``: one table of figures, each beside a baseline measured in the same run.

Writes bench/results/latest.md and latest.json. Exits 0 whatever the figures:
it measures, it does not gate.

- ``BENCH_QUICK=1`` shrinks every scenario (a run of about four minutes).
- ``BENCH_ONLY=edge_single,agents`` runs only those rows (names in ``ROWS``); the
  baselines a row needs are measured with it. ``BENCH_ONLY=ledger`` runs the 10^7-event
  ledger row, which a full run leaves out.
- ``BENCH_PROFILE=1`` records py-spy profiles (folded stacks) of the edge and the worker
  during the freshness run, into the run's log directory.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from analytics.dev.broker import free_port
from analytics.events.models import EventRow
from bench import e2e, openloop, pipeline, stats, transfer
from bench.http_load import BareEdge, wrk
from bench.results import Row, limit_row, ratio_row, write
from bench.stack import REDIS_URL, Edge, Stack, start_worker, wait_count, wait_merged

QUICK = os.environ.get("BENCH_QUICK") == "1"
ONLY = {n.strip() for n in os.environ.get("BENCH_ONLY", "").split(",") if n.strip()}
PROFILE = os.environ.get("BENCH_PROFILE") == "1"

SECONDS = 5 if QUICK else 10
AGENT_EVENTS = 50_000 if QUICK else 200_000
SMALL, LARGE = (10_000, 100_000) if QUICK else (100_000, 1_000_000)
TWO_WORKER_EVENTS = 50_000 if QUICK else 200_000
SEARCH_STEPS, SEARCH_SECONDS = (3, 15) if QUICK else (5, 60)
STEADY_SECONDS = 25 if QUICK else 60
LEDGER_EVENTS = 1_000_000 if QUICK else 10_000_000


@dataclass(slots=True)
class AgentData:
    events: list[EventRow]
    copy_rows: list[EventRow]


@dataclass
class Run:
    """One bench run: the stack, its rows, and the baselines measured once and shared."""

    stack: Stack
    workdir: Path
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cache: dict[str, float] = field(default_factory=dict)
    agent_data: AgentData | None = None

    async def once(self, name: str, measure: Callable[[], Awaitable[float]]) -> float:
        if name not in self.cache:
            self.cache[name] = await measure()
        return self.cache[name]

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.name}: {row.value}", flush=True)


# ---- baselines, each measured once per run on first use -----------------------------------


async def b1(run: Run) -> float:
    async def measure() -> float:
        project = await run.stack.project("b1")
        with BareEdge(free_port()) as bare:
            result = await asyncio.to_thread(
                wrk,
                f"{bare.url}/api/events/ingest/",
                "single.lua",
                project.public_key,
                seconds=SECONDS,
            )
        run.add(Row("B1 bare aiohttp handler (wrk, closed loop)", result.requests_per_s, "req/s"))
        return result.requests_per_s

    return await run.once("b1", measure)


async def b1_prime(run: Run) -> float:
    async def measure() -> float:
        project = await run.stack.project("b1x")
        target = (REDIS_URL, run.stack.stream_key("b1x"))
        with BareEdge(free_port(), redis=target) as bare:
            result = await asyncio.to_thread(
                wrk,
                f"{bare.url}/api/events/ingest/",
                "single.lua",
                project.public_key,
                seconds=SECONDS,
            )
        run.add(Row("B1' bare handler + one XADD of the body", result.requests_per_s, "req/s"))
        return result.requests_per_s

    return await run.once("b1x", measure)


async def edge_single_capacity(run: Run) -> float:
    async def measure() -> float:
        project = await run.stack.project("edge-single")
        with Edge(run.stack.settings(), run.workdir / "edge-single.log") as edge:
            result = await asyncio.to_thread(
                wrk,
                f"{edge.url}/api/events/ingest/",
                "single.lua",
                project.public_key,
                seconds=SECONDS,
            )
        return result.requests_per_s

    return await run.once("edge_single", measure)


async def agent_data(run: Run) -> AgentData:
    """The agents row's events and, for the COPY rows, as many for another project."""
    if run.agent_data is None:
        assert run.stack.pool is not None
        project = await run.stack.project("agents")
        source = await pipeline.source_for(run.stack.pool, project.project_id)
        copy_project = await run.stack.project("copy")
        copy_source = await pipeline.source_for(run.stack.pool, copy_project.project_id)
        run.agent_data = AgentData(
            list(pipeline.make_rows(project.project_id, source, AGENT_EVENTS)),
            list(pipeline.make_rows(copy_project.project_id, copy_source, AGENT_EVENTS)),
        )
    return run.agent_data


async def b3(run: Run) -> float:
    async def measure() -> float:
        assert run.stack.pool is not None
        value = await pipeline.bare_copy(run.stack.pool, (await agent_data(run)).copy_rows)
        run.add(Row("B3 bare COPY, unindexed table", value, "rows/s"))
        return value

    return await run.once("b3", measure)


async def b3_prime(run: Run) -> float:
    async def measure() -> float:
        assert run.stack.pool is not None
        value = await pipeline.bare_copy_indexed(run.stack.pool, (await agent_data(run)).copy_rows)
        run.add(Row("B3' bare COPY, events' indexes + ledger insert", value, "rows/s"))
        return value

    return await run.once("b3x", measure)


async def quix(run: Run) -> float:
    async def measure() -> float:
        value, first = await asyncio.to_thread(
            pipeline.quix_peer, run.stack.settings(), AGENT_EVENTS
        )
        run.add(
            Row(
                "P1 Quix Streams: decode + 5-min windowed count per key, same events and"
                f" count, start to last event ({_s(first)} to the first); no dedup, no raw"
                " rows, nothing written to PostgreSQL",
                value,
                "events/s",
            )
        )
        return value or 0.0

    return await run.once("quix", measure)


async def agents_rate(run: Run) -> float:
    async def measure() -> float:
        settings = run.stack.settings(bridge_enabled=False)
        data = await agent_data(run)
        project_id = data.events[0].project_id
        await pipeline.preload(settings, data.events)
        b2 = await pipeline.raw_consumer(settings, len(data.events))
        run.add(Row("B2 raw aiokafka consumer + orjson", b2, "events/s"))
        # Timed like the peer, from the process's start to the last event stored.
        started = time.perf_counter()
        worker = start_worker(settings, run.workdir, "agents")
        ready = time.perf_counter() - started
        try:
            await wait_count(run.stack, project_id, len(data.events), timeout=900)
            merging = await wait_merged(
                run.stack, project_id, pipeline.users_by_day(data.events), timeout=120
            )
        finally:
            worker.stop()
        took = time.perf_counter() - started
        run.notes.append(
            f"agents row: {took:.1f} s from the worker's start to the last event stored and"
            f" its user merged into the sketches ({merging:.1f} s after the last count),"
            f" {ready:.1f} s of it before the worker was ready"
        )
        return len(data.events) / took

    return await run.once("agents", measure)


# ---- rows: one function each, in table order -------------------------------------------------


async def row_edge_single(run: Run) -> None:
    """Edge single-event capacity (wrk) against B1 and B1'."""
    base, base_x = await b1(run), await b1_prime(run)
    value = await edge_single_capacity(run)
    run.add(ratio_row("edge single-event requests vs B1", value, "req/s", "B1", base, 0.5))
    run.add(ratio_row("edge single-event requests vs B1'", value, "req/s", "B1'", base_x, 0.8))


def _latency_detail(result: openloop.Report) -> str:
    return (
        f"p50 {_ms(result.p50_ms)}, p95 {_ms(result.p95_ms)}, max {_ms(result.max_ms)};"
        f" {result.late} of {result.sent} sent late, {result.dropped} dropped,"
        f" {result.failed} failed"
    )


async def row_edge_p99(run: Run) -> None:
    """Open-loop p99 at exactly half the measured single-event capacity.

    The same schedule against B1 first: the generator shares the two cores with what
    it measures, so B1's p99 at the same rate is the floor this machine can show.
    """
    half = await edge_single_capacity(run) / 2
    processes = openloop.default_processes()
    project = await run.stack.project("edge-paced")
    with BareEdge(free_port()) as bare:
        plan = openloop.Plan(f"{bare.url}/api/events/ingest/", project.public_key, half, SECONDS)
        floor = await asyncio.to_thread(openloop.offer, plan, processes)
    run.add(
        Row(
            f"B1 p99 latency at that rate, open loop ({_latency_detail(floor)})",
            floor.p99_ms,
            "ms",
            "offered req/s",
            floor.offered_per_s,
        )
    )
    with Edge(run.stack.settings(), run.workdir / "edge-paced.log") as edge:
        plan = openloop.Plan(f"{edge.url}/api/events/ingest/", project.public_key, half, SECONDS)
        result = await asyncio.to_thread(openloop.offer, plan, processes)
    run.add(
        limit_row(
            f"edge p99 latency, open loop at half capacity ({_latency_detail(result)})",
            result.p99_ms,
            "ms",
            10,
            "offered req/s",
            result.offered_per_s,
        )
    )
    run.add(
        Row(
            "edge requests answered 2xx at that offered rate",
            result.ok_per_s,
            "req/s",
            "offered",
            result.offered_per_s,
            round(result.ok_per_s / result.offered_per_s, 3),
        )
    )


async def row_edge_batch(run: Run) -> None:
    """Batches of 100: events accepted per second against B1's requests per second."""
    base = await b1(run)
    project = await run.stack.project("edge-batch")
    with Edge(run.stack.settings(), run.workdir / "edge-batch.log") as edge:
        result = await asyncio.to_thread(
            wrk,
            f"{edge.url}/api/events/batch/",
            "batch.lua",
            project.public_key,
            seconds=SECONDS,
            connections=8,
        )
    run.cache["edge_batch_events"] = result.requests_per_s * 100
    run.add(
        ratio_row(
            "edge batches of 100: events accepted",
            result.requests_per_s * 100,
            "events/s",
            "B1 req/s",
            base,
            8.0,
        )
    )


async def row_sink(run: Run) -> None:
    """The sink's raw write (ledger + events) against B3 and B3'."""
    assert run.stack.pool is not None
    base, base_x = await b3(run), await b3_prime(run)
    value = await pipeline.raw_sink_alone(run.stack.pool, (await agent_data(run)).copy_rows)
    run.add(ratio_row("raw sink alone (ledger + events) vs B3", value, "rows/s", "B3", base, 0.5))
    run.add(ratio_row("raw sink alone vs B3'", value, "rows/s", "B3'", base_x, 0.7))


async def row_agents(run: Run) -> None:
    """One worker over a preloaded topic: raw rows, aggregates and live tables."""
    value = await agents_rate(run)
    base, base_x = await b3(run), await b3_prime(run)
    name = "agents (raw + aggregates + live), one worker"
    run.add(ratio_row(f"{name} vs B3", value, "events/s", "B3", base, 0.25))
    run.add(ratio_row(f"{name} vs B3'", value, "events/s", "B3'", base_x, 0.5))
    peer = await quix(run)
    run.add(ratio_row("agents vs the Quix peer", value, "events/s", "P1", peer, 2.0))


async def row_sustainable(run: Run) -> None:
    """Highest open-loop rate one edge + one worker hold with PG freshness p95 <= 5 s."""
    first = run.cache.get("agents", 15_000.0) * 0.8
    search = await e2e.sustainable_rate(
        run.stack, run.workdir, first=first, steps=SEARCH_STEPS, seconds=SEARCH_SECONDS
    )
    run.cache["sustainable"] = search.sustainable
    tried = "; ".join(
        f"{s.offered_events_per_s:,.0f} -> delivered {s.delivered_events_per_s:,.0f},"
        f" PG p95 {_s(s.freshness.q('stored', 0.95))}"
        f"{' held' if s.sustainable(5.0) else ' failed'}"
        for s in search.steps
    )
    run.notes.append(f"sustainable-rate search ({SEARCH_SECONDS} s steps): {tried}")
    run.add(
        Row(
            f"sustainable end-to-end rate, one edge + one worker ({len(search.steps)} steps"
            f" of {SEARCH_SECONDS} s)",
            search.sustainable,
            "events/s",
            target=">= 40000 events/s",
            passed=search.sustainable >= 40_000,
        )
    )


async def row_freshness(run: Run) -> None:
    """80 % of the sustainable rate, offered open loop, probes evenly over the run."""
    if "sustainable" not in run.cache:
        await row_sustainable(run)
    sustainable = run.cache["sustainable"]
    rate = 0.8 * sustainable if sustainable else 1_000.0
    profile = run.workdir / "profiles" if PROFILE else None
    steady = await e2e.steady_load(
        run.stack, run.workdir, rate, STEADY_SECONDS, profile_dir=profile
    )
    step = steady.step
    run.add(
        Row(
            "e2e delivered at 80% of the sustainable rate offered (open loop)",
            step.delivered_events_per_s,
            "events/s",
            "offered",
            step.offered_events_per_s,
            round(step.delivered_events_per_s / step.offered_events_per_s, 3),
        )
    )
    run.add(limit_row("e2e events lost (202 but not stored)", steady.lost, "events", 0))
    run.add(
        Row(
            "e2e aggregates equal the recount",
            1.0 if steady.aggregates_match else 0.0,
            "bool",
            target="= 1",
            passed=steady.aggregates_match,
        )
    )
    fresh = step.freshness
    for which, label, bound in (("live", "realtime metric", 2.0), ("stored", "PostgreSQL", 5.0)):
        quantiles = ", ".join(f"p{q} {_s(fresh.q(which, q / 100))}" for q in (50, 99))
        run.add(
            limit_row(
                f"freshness p95, 202 -> {label} ({quantiles}; {step.probes} probes,"
                f" {fresh.unseen} unseen)",
                fresh.q(which, 0.95),
                "s",
                bound,
            )
        )
    run.add(limit_row("edge peak RSS in the freshness run", steady.edge_rss_mb, "MB", 400))
    if profile is not None:
        run.notes.append(f"py-spy profiles (folded stacks) in {profile}")


async def row_growth(run: Run) -> None:
    """Random-id events: the large run's rate against the small run's, and worker memory."""
    small = await e2e.run_through(run.stack, run.workdir, SMALL)
    large = await e2e.run_through(run.stack, run.workdir, LARGE, distinct_users=True)
    run.cache["through_small"] = small.events_per_s
    run.add(Row(f"e2e {SMALL:,} random-id events", small.events_per_s, "events/s"))
    run.add(
        ratio_row(
            f"e2e {LARGE:,} random-id events (distinct users)",
            large.events_per_s,
            "events/s",
            f"e2e {SMALL:,}",
            small.events_per_s,
            0.9,
        )
    )
    run.add(
        limit_row(
            f"worker peak RSS (VmHWM), {LARGE:,} distinct users in a day",
            large.worker_rss_mb,
            "MB",
            400,
        )
    )
    run.add(limit_row("edge peak RSS (VmHWM) in that run", large.edge_rss_mb, "MB", 400))


async def row_two_workers(run: Run) -> None:
    """The same number of events through one worker and through two (two partitions)."""
    one = await e2e.run_through(run.stack, run.workdir, TWO_WORKER_EVENTS, workers=1)
    two = await e2e.run_through(run.stack, run.workdir, TWO_WORKER_EVENTS, workers=2)
    run.add(
        ratio_row(
            f"e2e 2 workers on 2 partitions, {TWO_WORKER_EVENTS:,} events",
            two.events_per_s,
            "events/s",
            f"1 worker, {TWO_WORKER_EVENTS:,} events",
            one.events_per_s,
            1.5,
        )
    )


async def row_ledger(run: Run) -> None:
    """10^7 random-id events through the sink's raw write: the last tenth against the first.

    Opt-in (``BENCH_ONLY=ledger``, about ten minutes): it shows whether the ledger's
    randomly growing primary key slows the write once it outgrows shared_buffers.
    """
    assert run.stack.pool is not None
    project = await run.stack.project("ledger")
    source = await pipeline.source_for(run.stack.pool, project.project_id)
    chunk = LEDGER_EVENTS // 10
    rates: list[float] = []
    for _ in range(10):
        rows = list(pipeline.make_rows(project.project_id, source, chunk))
        rates.append(await pipeline.raw_sink_alone(run.stack.pool, rows))
        print(f"  ledger: {len(rates) * chunk:,} at {rates[-1]:,.0f} rows/s", flush=True)
    run.notes.append("ledger rows/s per tenth: " + ", ".join(f"{r:,.0f}" for r in rates))
    run.add(
        ratio_row(
            f"raw sink, events {LEDGER_EVENTS - chunk:,}-{LEDGER_EVENTS:,} (random ids)",
            rates[-1],
            "rows/s",
            f"first {chunk:,}",
            rates[0],
            0.9,
        )
    )


async def row_transfer(run: Run) -> None:
    for row in await transfer.rows_for(run.stack, run.workdir):
        run.add(row)


async def row_stats(run: Run) -> None:
    """Opt-in (``BENCH_ONLY=stats``, about 15 minutes for 10^7 events, most of it filling)."""
    for row in await stats.rows_for(run.stack, run.workdir):
        run.add(row)


ROWS: dict[str, Callable[[Run], Awaitable[None]]] = {
    "edge_single": row_edge_single,
    "edge_p99": row_edge_p99,
    "edge_batch": row_edge_batch,
    "sink": row_sink,
    "agents": row_agents,
    "sustainable": row_sustainable,
    "freshness": row_freshness,
    "growth": row_growth,
    "two_workers": row_two_workers,
    "transfer": row_transfer,
}
OPT_IN: dict[str, Callable[[Run], Awaitable[None]]] = {"ledger": row_ledger, "stats": row_stats}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} ms"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


async def main() -> None:
    unknown = ONLY - ROWS.keys() - OPT_IN.keys()
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown rows {sorted(unknown)}; known {[*ROWS, *OPT_IN]}")
    selected = {**ROWS, **OPT_IN} if ONLY else ROWS
    workdir = Path(tempfile.mkdtemp(prefix="sa-bench-"))
    started = time.perf_counter()
    async with Stack(workdir) as stack:
        run = Run(stack, workdir)
        if stack.stale_keys_deleted:
            run.notes.append(f"deleted {stack.stale_keys_deleted} Redis keys of earlier runs")
        meta = await stack.metadata()
        for name, row in selected.items():
            if ONLY and name not in ONLY:
                continue
            print(f"{name} ...", flush=True)
            try:
                await row(run)
            except Exception:
                run.notes.append(f"{name} failed: " + traceback.format_exc(limit=4))
                traceback.print_exc()
    meta["seconds"] = round(time.perf_counter() - started)
    run.notes.append(f"bench took {meta['seconds']} s; logs in {workdir}")
    print(write(run.rows, run.notes, meta))


if __name__ == "__main__":
    asyncio.run(main())
