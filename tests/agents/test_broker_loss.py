"""The broker killed (-9) under load and restarted empty: every event answered 202 is stored once.

The development broker keeps its log in memory, so a restart loses every topic, every
message and every committed offset. These tests run their own broker on a free port and
kill that one for real; Redis and PostgreSQL are the machine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from analytics.dev.broker import free_port, start_broker
from analytics.dev.processes import WorkerProcess
from analytics.ops.status import Level, collect, evaluate
from analytics.pipeline.confirm import sent_key
from analytics.pipeline.kafka import OffsetsProbe
from analytics.settings import Settings
from analytics.storage import projects
from tests.support.load import count_is, post_batch, settled, stored
from tests.support.stack import REDIS_URL, start_edge, wait_for


class Broker:
    """A private broker that can be killed and started again on the same port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log = log_dir / f"broker-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = start_broker(self.port, self.log)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Load:
    """Batches of 50 new events every 20 ms until stopped; counts 202s while the broker is down."""

    def __init__(self, http: aiohttp.ClientSession, url: str, key: str) -> None:
        self.http, self.url, self.key = http, url, key
        self.accepted: list[str] = []
        self.statuses: dict[int, int] = {}
        self.broker_down = False
        self.accepted_while_down = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            status = await post_batch(self.http, self.url, self.key, 50, self.accepted)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 202 and self.broker_down:
                self.accepted_while_down += 1
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()


async def _run_outage(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
    *,
    down_seconds: float,
) -> None:
    broker = Broker(run_dir)
    broker.start()
    settings = settings_factory(kafka_broker=broker.url, topic_partitions=2)
    runner = await start_edge(settings)
    url = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        project = await projects.create_project(conn, f"broker-loss-{int(down_seconds)}")
    worker = WorkerProcess(settings, run_dir, f"broker-loss-{int(down_seconds)}").start()
    redis = aioredis.Redis.from_url(REDIS_URL)
    load = Load(http, url, project.public_key)
    sender = asyncio.create_task(load.run())
    try:
        await asyncio.to_thread(worker.wait_ready)
        await wait_for(lambda: count_is(db, project.project_id, 1000), timeout=60)
        broker.kill()  # -9, under load: the broker's whole log is gone
        load.broker_down = True
        await asyncio.sleep(down_seconds)
        broker.start()
        load.broker_down = False
        restarted = time.monotonic()
        await asyncio.sleep(3.0)  # traffic after the restart too
        load.stop()
        await sender
        assert set(load.statuses) == {202}, load.statuses
        assert load.accepted_while_down > 0  # Redis kept answering for the broker

        accepted = len(load.accepted)
        try:
            await wait_for(
                lambda: count_is(db, project.project_id, accepted), timeout=60, interval=0.5
            )
        except AssertionError as exc:
            raise AssertionError(await _diagnosis(db, redis, settings, worker, accepted)) from exc
        resumed = time.monotonic() - restarted
        assert resumed < 60, f"the pipeline took {resumed:.0f}s to store everything"
        await asyncio.sleep(2.0)  # anything doubled would have landed by now
        count, distinct = await stored(db, project.project_id)
        assert count == distinct == accepted
        async with db.acquire() as conn:
            ids = {
                r["event_id"]
                for r in await conn.fetch(
                    "SELECT event_id FROM events WHERE project_id = $1", project.project_id
                )
            }
        assert ids == set(load.accepted)
        await settled(db, project.project_id)

        # Once PostgreSQL holds everything, the buffer is trimmed and nothing waits.
        async def drained() -> bool:
            depth = await redis.xlen(settings.stream_key)
            return depth == 0 and await redis.hlen(sent_key(settings.stream_key)) == 0

        await wait_for(drained, timeout=30, interval=0.5)
        assert "the broker lost" in worker.log_path.read_text(errors="replace")
        checks = {c.name: c for c in evaluate(await collect(settings))}
        assert checks["kafka_lag"].level is Level.OK, checks["kafka_lag"].reason

        # A worker started after the broker lost its state recovers too (an empty
        # changelog, no committed offsets) and stores new events.
        worker.kill()
        worker = WorkerProcess(settings, run_dir, f"after-loss-{int(down_seconds)}").start()
        await asyncio.to_thread(worker.wait_ready)
        more: list[str] = []
        assert await post_batch(http, url, project.public_key, 10, more) == 202
        await wait_for(lambda: count_is(db, project.project_id, accepted + 10), timeout=30)
        assert await stored(db, project.project_id) == (accepted + 10, accepted + 10)
    finally:
        load.stop()
        with contextlib.suppress(Exception):
            await sender
        worker.kill()
        broker.kill()
        await runner.cleanup()
        await redis.aclose()


async def _diagnosis(
    db: asyncpg.Pool,
    redis: aioredis.Redis,
    settings: Settings,
    worker: WorkerProcess,
    accepted: int,
) -> str:
    """What a stalled recovery looked like: stored vs accepted, buffer, offsets, worker log."""
    probe = OffsetsProbe(settings.kafka_broker, io_seconds=5, client_id="diagnosis")
    try:
        offsets = await probe.read(settings.events_topic, settings.app_id)
    finally:
        await probe.close()
    async with db.acquire() as conn:
        stored_count = await conn.fetchval("SELECT count(*) FROM event_ids")
    log_lines = worker.log_path.read_text(errors="replace").splitlines()
    wanted = [line for line in log_lines if "[ERROR]" in line or "[WARNING]" in line]
    return (
        f"accepted {accepted}, ledger {stored_count};"
        f" buffer {await redis.xlen(settings.stream_key)} entries,"
        f" {await redis.hlen(sent_key(settings.stream_key))} sent batches; offsets {offsets}\n"
        + "\n".join(wanted[-40:])
    )


@pytest.mark.parametrize("down_seconds", [3.0, 30.0], ids=["restart-after-3s", "down-30s"])
async def test_broker_killed_under_load_loses_nothing(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
    down_seconds: float,
) -> None:
    await _run_outage(http, db, settings_factory, run_dir, down_seconds=down_seconds)
