"""``make bench``: one table of figures, each beside a baseline measured in the same run.

Writes bench/results/latest.md and latest.json. Exits 0 whatever the figures:
it measures, it does not gate. ``BENCH_QUICK=1`` shrinks every scenario.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import traceback
from pathlib import Path

from analytics.dev.broker import free_port
from bench import e2e, pipeline, transfer
from bench.http_load import BareEdge, wrk
from bench.results import Row, limit_row, ratio_row, write
from bench.stack import Edge, Stack, start_worker, wait_count

QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = 5 if QUICK else 10
AGENT_EVENTS = 50_000 if QUICK else 200_000
SMALL, LARGE = (10_000, 100_000) if QUICK else (100_000, 1_000_000)
STEADY_SECONDS = 20 if QUICK else 60


async def main() -> None:
    rows: list[Row] = []
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="sa-bench-"))
    started = time.perf_counter()
    async with Stack(workdir) as stack:
        # ---- edge vs B1 -------------------------------------------------------------
        settings = stack.settings()
        project = await stack.project("edge")
        with BareEdge(free_port()) as bare:
            b1 = wrk(
                f"http://127.0.0.1:{bare.port}/api/events/ingest/",
                "single.lua",
                project.public_key,
                seconds=SECONDS,
            )
        rows.append(Row("B1 bare aiohttp handler", b1.requests_per_s, "req/s"))
        with Edge(settings, workdir / "edge.log") as edge:
            single = wrk(
                f"{edge.url}/api/events/ingest/", "single.lua", project.public_key, seconds=SECONDS
            )
            rows.append(
                ratio_row(
                    "edge single-event requests",
                    single.requests_per_s,
                    "req/s",
                    "B1",
                    b1.requests_per_s,
                    0.5,
                )
            )
            half = single.requests_per_s / 2
            paced = wrk(
                f"{edge.url}/api/events/ingest/",
                "single.lua",
                project.public_key,
                seconds=SECONDS,
                connections=16,
                rate_per_connection=half / 16,
            )
            rows.append(
                limit_row(
                    "edge p99 latency at half that rate",
                    paced.p99_ms,
                    "ms",
                    10,
                    "paced req/s",
                    paced.requests_per_s,
                )
            )
            batch = wrk(
                f"{edge.url}/api/events/batch/",
                "batch.lua",
                project.public_key,
                seconds=SECONDS,
                connections=8,
            )
            batch_events = batch.requests_per_s * 100
            rows.append(
                ratio_row(
                    "edge batches of 100: events accepted",
                    batch_events,
                    "events/s",
                    "B1 req/s",
                    b1.requests_per_s,
                    5.0,
                )
            )
        # ---- agents vs B2, B3, P1 ----------------------------------------------------
        assert stack.pool is not None
        agent_settings = stack.settings(bridge_enabled=False)
        agent_project = await stack.project("agents")
        source_id = await pipeline.source_for(stack.pool, agent_project.project_id)
        events = list(pipeline.make_rows(agent_project.project_id, source_id, AGENT_EVENTS))
        await pipeline.preload(agent_settings, events)
        b2 = await pipeline.raw_consumer(agent_settings, len(events))
        rows.append(Row("B2 raw aiokafka consumer + orjson", b2, "events/s"))
        copy_project = await stack.project("copy")
        copy_source = await pipeline.source_for(stack.pool, copy_project.project_id)
        copy_rows = list(pipeline.make_rows(copy_project.project_id, copy_source, AGENT_EVENTS))
        b3 = await pipeline.bare_copy(stack.pool, copy_rows)
        rows.append(Row("B3 bare COPY, unindexed table", b3, "rows/s"))
        sink = await pipeline.raw_sink_alone(stack.pool, copy_rows)
        rows.append(ratio_row("raw sink alone (ledger + events)", sink, "rows/s", "B3", b3, 0.5))
        worker = start_worker(agent_settings, workdir, "agents")
        try:
            took = await wait_count(stack, agent_project.project_id, len(events), timeout=900)
        finally:
            worker.stop()
        agents = len(events) / took
        rows.append(
            ratio_row(
                "agents (raw + aggregates + live), one worker",
                agents,
                "events/s",
                "min(B2, B3)",
                min(b2, b3),
                0.25,
            )
        )
        p1 = await asyncio.to_thread(pipeline.quix_peer, stack.settings(), AGENT_EVENTS // 2)
        rows.append(Row("P1 Quix Streams 5-min count", p1, "events/s"))
        rows.append(ratio_row("agents vs the Quix peer", agents, "events/s", "P1", p1, 1.0))
        # ---- end to end ----------------------------------------------------------------
        try:
            steady = await e2e.steady_load(stack, workdir, 0.8 * batch_events, STEADY_SECONDS)
            rows.append(
                Row(
                    "e2e steady load accepted (80% of batch capacity offered)",
                    steady["accepted_events_per_s"],
                    "events/s",
                    "offered",
                    steady["offered_events_per_s"],
                )
            )
            rows.append(
                limit_row("e2e events lost (202 but not stored)", steady["lost"], "events", 0)
            )
            rows.append(
                Row(
                    "e2e aggregates equal the recount",
                    steady["aggregates_match"],
                    "bool",
                    target="= 1",
                    passed=steady["aggregates_match"] == 1.0,
                )
            )
            rows.append(
                limit_row("freshness p95, 202 -> realtime metric", steady["fresh_live_p95"], "s", 2)
            )
            rows.append(
                limit_row(
                    "freshness p95, 202 -> PostgreSQL aggregate", steady["fresh_pg_p95"], "s", 10
                )
            )
        except Exception:
            notes.append("steady load failed: " + traceback.format_exc(limit=3))
        small, _ = await e2e.run_through(stack, workdir, SMALL)
        large, rss = await e2e.run_through(stack, workdir, LARGE, distinct_users=True)
        rows.append(Row(f"e2e {SMALL:,} events", small, "events/s"))
        rows.append(
            ratio_row(
                f"e2e {LARGE:,} events (distinct users)",
                large,
                "events/s",
                f"e2e {SMALL:,}",
                small,
                0.9,
            )
        )
        rows.append(
            limit_row(f"worker peak RSS, {LARGE:,} distinct users in a day", rss, "MB", 500)
        )
        two, _ = await e2e.run_through(stack, workdir, SMALL * 2, workers=2)
        rows.append(
            ratio_row(
                "e2e 2 workers on 2 partitions",
                two,
                "events/s",
                f"e2e {SMALL:,} one worker",
                small,
                1.3,
            )
        )
        try:
            rows.extend(await transfer.rows_for(stack, workdir))
        except Exception:
            notes.append("export/import failed: " + traceback.format_exc(limit=3))
    notes.append(f"bench took {time.perf_counter() - started:.0f} s; logs in {workdir}")
    print(write(rows, notes))


if __name__ == "__main__":
    asyncio.run(main())
