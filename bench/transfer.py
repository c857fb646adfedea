"""Export and import rates (SPEC §11), and the edge's peak RSS over a small and a large export.

``python -m bench.transfer`` runs it alone (``BENCH_QUICK=1``: 10^4 and 10^5 events).
Each project is filled as the sink fills it (``write_events``, aggregates included; not
timed); the export is ``GET /api/export/events/`` (NDJSON, no gzip) from an
``analytics edge`` child; the import is ``analytics import-events`` of that file into an
empty project with one worker running, timed until PostgreSQL holds every event.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp

from analytics.dev.processes import analytics_command
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject
from bench import pipeline
from bench.results import Row, limit_row, render
from bench.stack import Edge, Stack, peak_rss_mb, start_worker, wait_count

QUICK = os.environ.get("BENCH_QUICK") == "1"
SMALL, LARGE = (10_000, 100_000) if QUICK else (100_000, 1_000_000)


async def _fill(stack: Stack, n: int) -> NewProject:
    assert stack.pool is not None
    project = await stack.project(f"export-{n}")
    source = await pipeline.source_for(stack.pool, project.project_id)
    rows = pipeline.make_rows(project.project_id, source, n)
    cache = PartitionCache()
    async with stack.pool.acquire() as conn:
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == 20_000:
                await write_events(conn, batch, cache)
                batch = []
        if batch:
            await write_events(conn, batch, cache)
    return project


async def _export(url: str, key: str, path: Path) -> float:
    """Seconds to download the export to ``path``."""
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}", "Accept-Encoding": "identity"}
    timeout = aiohttp.ClientTimeout(total=3600)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{url}/api/export/events/", headers=headers) as resp,
    ):
        assert resp.status == 200, resp.status
        with path.open("wb") as out:
            async for chunk in resp.content.iter_chunked(1 << 16):
                out.write(chunk)
    return time.perf_counter() - started


async def rows_for(stack: Stack, workdir: Path) -> list[Row]:
    """The export/import rows of the bench table."""
    settings = stack.settings()
    assert stack.pool is not None
    keys = {n: (await _fill(stack, n)).private_key for n in (SMALL, LARGE)}
    rss: dict[int, float | None] = {}
    seconds: dict[int, float] = {}
    files: dict[int, Path] = {}
    with Edge(settings, workdir / "export-edge.log") as edge:
        assert edge.proc is not None
        for n in (SMALL, LARGE):
            files[n] = workdir / f"export-{n}.ndjson"
            seconds[n] = await _export(edge.url, keys[n], files[n])
            rss[n] = peak_rss_mb(edge.proc.pid)
    target = await stack.project("import-target")
    worker = start_worker(settings, workdir, "import")
    try:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *analytics_command("import-events", target.project_id, str(files[LARGE])),
            env={**os.environ, **settings.as_environ()},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await wait_count(stack, target.project_id, LARGE, timeout=3600)
        imported = time.perf_counter() - started
        await proc.wait()
    finally:
        worker.stop()
    return [
        Row(f"export {LARGE:,} events over HTTP (NDJSON)", LARGE / seconds[LARGE], "events/s"),
        limit_row(
            f"edge peak RSS after exporting {LARGE:,} events",
            rss[LARGE],
            "MB",
            round((rss[SMALL] or 0) * 1.2, 1),
            f"after {SMALL:,}",
            rss[SMALL],
        ),
        Row(f"import {LARGE:,} events, file -> PostgreSQL", LARGE / imported, "events/s"),
    ]


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="sa-bench-transfer-"))
    async with Stack(workdir) as stack:
        rows = await rows_for(stack, workdir)
    # Alone, it prints its rows and leaves bench/results/ to the whole run.
    print(render(rows))
    print(f"logs in {workdir}")


if __name__ == "__main__":
    asyncio.run(main())
