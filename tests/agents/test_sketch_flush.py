"""Sketches merged after their batch (``agents.sketch_flush``), under real faults: a worker
killed with SIGKILL between a batch's commit and its sketch merge, a second worker joining
in the middle of a merge interval, and PostgreSQL refusing the merge. Counts and unique
counts must equal the recount from the raw events afterwards (every unique count here is
below the sketch's exact limit, so "equal" is exact), and no Kafka offset may be committed
past a merge that has not happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg

from analytics.dev.broker import free_port
from analytics.dev.processes import WorkerProcess
from analytics.ops.recount import mismatches
from analytics.pipeline.kafka import OffsetsProbe
from analytics.settings import Settings
from analytics.storage import projects
from tests.support.load import count_is, send_batches, settled, stored
from tests.support.stack import start_edge, wait_for


async def _merged_users(db: asyncpg.Pool, project_id: str) -> int:
    """The project's daily unique users as stored (0 until a sketch merge)."""
    async with db.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT coalesce(sum(unique_users), 0) FROM agg_daily WHERE project_id = $1",
                project_id,
            )
        )


async def _committed(settings: Settings) -> tuple[int, int]:
    """(messages committed by the worker's group, messages in the topic)."""
    probe = OffsetsProbe(settings.kafka_broker, io_seconds=5.0, client_id="test-offsets")
    try:
        offsets = await probe.read(settings.events_topic, settings.app_id)
    finally:
        await probe.close()
    assert offsets is not None
    return sum(offsets.committed.values()), sum(offsets.ends.values())


async def test_sigkill_between_a_batch_commit_and_its_sketch_merge_loses_no_member(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
) -> None:
    # The first worker would merge sketches only after ten minutes: it is killed first.
    settings = settings_factory(sketch_flush_seconds=600)
    runner = await start_edge(settings)
    url = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "sketch-sigkill")
    first = WorkerProcess(settings, run_dir, "unmerged").start()
    second = WorkerProcess(settings.model_copy(update={"sketch_flush_seconds": 1.0}), run_dir)
    try:
        await asyncio.to_thread(first.wait_ready)
        accepted: list[str] = []
        await send_batches(http, url, project.public_key, 40, 50, accepted, web=True)
        await wait_for(lambda: count_is(db, project.project_id, 2000), timeout=60, interval=0.5)
        # Every count is committed, no sketch merged, no offset committed.
        assert await _merged_users(db, project.project_id) == 0
        assert await mismatches(db, project.project_id) != []
        assert (await _committed(settings))[0] == 0
        first.kill()
        second.start()
        await asyncio.to_thread(second.wait_ready)
        await settled(db, project.project_id, timeout=60)
        assert await stored(db, project.project_id) == (2000, 2000)
        await wait_for(lambda: _all_committed(settings), timeout=30, interval=0.5)
    finally:
        first.kill()
        second.stop()
        await runner.cleanup()


async def _all_committed(settings: Settings) -> bool:
    done, total = await _committed(settings)
    return done == total


async def test_a_second_worker_joining_mid_interval_loses_no_member(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
) -> None:
    # A merge is due only every ten minutes: the merges this test sees are the rebalance's
    # and the stopping workers'.
    settings = settings_factory(topic_partitions=4, sketch_flush_seconds=600)
    runner = await start_edge(settings)
    url = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        group = [await projects.create_project(conn, f"sketch-join-{i}") for i in range(4)]
    one = WorkerProcess(settings, run_dir, "j1").start()
    two = WorkerProcess(settings, run_dir, "j2")
    try:
        await asyncio.to_thread(one.wait_ready)
        accepted: dict[str, list[str]] = {p.project_id: [] for p in group}
        first = [
            send_batches(http, url, p.public_key, 10, 40, accepted[p.project_id], web=True)
            for p in group
        ]
        await asyncio.gather(*first)
        for p in group:
            await wait_for(lambda p=p: count_is(db, p.project_id, 400), timeout=60, interval=0.5)
            assert await _merged_users(db, p.project_id) == 0
        two.start(web_port=free_port())
        more = [
            asyncio.create_task(
                send_batches(http, url, p.public_key, 30, 40, accepted[p.project_id], web=True)
            )
            for p in group
        ]
        # The revoke merged what the first worker held, long before its ten minutes.
        for p in group:
            await wait_for(lambda p=p: _merged_users(db, p.project_id), timeout=60, interval=0.5)
        await asyncio.to_thread(two.wait_ready)
        await asyncio.gather(*more)
        for p in group:
            assert len(accepted[p.project_id]) == 1600
            await wait_for(lambda p=p: count_is(db, p.project_id, 1600), timeout=60, interval=0.5)
        # A stopping worker merges what it holds before its last commit.
        await asyncio.gather(asyncio.to_thread(one.stop), asyncio.to_thread(two.stop))
        for p in group:
            assert await stored(db, p.project_id) == (1600, 1600)
            assert await mismatches(db, p.project_id) == []
        assert await _all_committed(settings)
    finally:
        one.stop()
        two.stop()
        await runner.cleanup()


_REFUSE = """
CREATE TABLE IF NOT EXISTS sa_test_refused_merges (project_id text PRIMARY KEY);
CREATE OR REPLACE FUNCTION sa_test_refuse_merge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM sa_test_refused_merges WHERE project_id = NEW.project_id) THEN
        RAISE EXCEPTION 'sketch merge refused by the test';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS sa_test_refuse_merge ON agg_daily;
CREATE TRIGGER sa_test_refuse_merge BEFORE UPDATE ON agg_daily FOR EACH ROW
    WHEN (OLD.users_sketch IS DISTINCT FROM NEW.users_sketch)
    EXECUTE FUNCTION sa_test_refuse_merge();
"""


async def test_a_refused_sketch_merge_is_retried_and_holds_the_offsets_back(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
) -> None:
    settings = settings_factory(sketch_flush_seconds=0.5)
    runner = await start_edge(settings)
    url = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "sketch-refused")
        # A real refusal by PostgreSQL: a trigger raises on this project's sketch updates
        # (and only those: the counts' upserts leave the sketch alone).
        await conn.execute(_REFUSE)
        await conn.execute("INSERT INTO sa_test_refused_merges VALUES ($1)", project.project_id)
    worker = WorkerProcess(settings, run_dir, "refused").start()
    try:
        await asyncio.to_thread(worker.wait_ready)
        accepted: list[str] = []
        await send_batches(http, url, project.public_key, 10, 50, accepted, web=True)
        await wait_for(lambda: count_is(db, project.project_id, 500), timeout=60, interval=0.5)
        await wait_for(
            lambda: _logged(worker, "sketch merge refused by the test"), timeout=30, interval=0.5
        )
        await asyncio.sleep(3)  # several retries, and faust's commit interval, pass
        assert await _merged_users(db, project.project_id) == 0
        done, total = await _committed(settings)
        assert total > 0 and done == 0
        async with db.acquire() as conn:
            await conn.execute(
                "DELETE FROM sa_test_refused_merges WHERE project_id = $1", project.project_id
            )
        await settled(db, project.project_id)
        await wait_for(lambda: _all_committed(settings), timeout=30, interval=0.5)
        assert await stored(db, project.project_id) == (500, 500)
    finally:
        worker.stop()
        await runner.cleanup()
        async with db.acquire() as conn:
            await conn.execute("DROP TRIGGER IF EXISTS sa_test_refuse_merge ON agg_daily")


async def _logged(worker: WorkerProcess, text: str) -> bool:
    return text in worker.log_path.read_text(errors="replace")
