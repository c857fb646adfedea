"""Faults caused for real: a worker killed with SIGKILL, a bridge dying before XACK, Redis down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from analytics.dev.broker import free_port
from analytics.dev.processes import RedisServer, WorkerProcess
from analytics.pipeline.bridge import Bridge, make_bridge
from analytics.pipeline.kafka import bootstrap, ensure_topic
from analytics.settings import Settings
from analytics.storage import projects
from tests.support.load import REFUSED, VISITS, count_is, diagnosis, send_batches, settled, stored
from tests.support.stack import REDIS_URL, start_edge, wait_for


async def test_worker_sigkill_mid_stream_keeps_every_event_once(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
) -> None:
    settings = settings_factory()
    runner = await start_edge(settings)
    url = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "sigkill")
    first = WorkerProcess(settings, run_dir, "killed").start()
    second = WorkerProcess(settings, run_dir, "restarted")
    try:
        await asyncio.to_thread(first.wait_ready)
        accepted: list[str] = []
        sender = asyncio.create_task(
            send_batches(http, url, project.public_key, 120, 50, accepted, web=True)
        )
        await wait_for(lambda: _some_stored(db, project.project_id), timeout=30)
        first.kill()  # SIGKILL while events flow
        second.start()
        await sender
        await asyncio.to_thread(second.wait_ready)
        assert len(accepted) == 6000
        try:
            await wait_for(
                lambda: count_is(db, project.project_id, len(accepted)), timeout=90, interval=0.5
            )
        except AssertionError as exc:
            redis = aioredis.Redis.from_url(REDIS_URL)
            try:
                why = await diagnosis(
                    db, redis, settings, project.project_id, accepted, (first, second)
                )
            finally:
                await redis.aclose()
            raise AssertionError(why) from exc
        count, distinct = await stored(db, project.project_id)
        assert count == distinct == len(accepted)
        async with db.acquire() as conn:
            ids = {
                r["event_id"]
                for r in await conn.fetch(
                    "SELECT event_id FROM events WHERE project_id = $1", project.project_id
                )
            }
        assert ids == set(accepted)
        # visits and breakdown rows too: mismatches() recounts them from the events
        await settled(db, project.project_id)
        async with db.acquire() as conn:
            visits = await conn.fetchval(
                "SELECT count(*) FROM visits WHERE project_id = $1", project.project_id
            )
            pages = await conn.fetchval(
                "SELECT sum(pageviews) FROM stats_daily WHERE project_id = $1"
                " AND dimension = 'page'",
                project.project_id,
            )
        assert visits == VISITS
        assert pages == 4800  # 6000 events, one in five a signup
    finally:
        first.kill()
        second.stop()
        await runner.cleanup()


async def test_two_workers_one_stopped_mid_stream_keeps_aggregates_exact(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
) -> None:
    settings = settings_factory(topic_partitions=4)
    runner = await start_edge(settings)
    url = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        group = [await projects.create_project(conn, f"two-workers-{i}") for i in range(4)]
    one = WorkerProcess(settings, run_dir, "w1").start()
    two = WorkerProcess(settings, run_dir, "w2").start(web_port=free_port())
    try:
        await asyncio.to_thread(one.wait_ready)
        await asyncio.to_thread(two.wait_ready)
        accepted: dict[str, list[str]] = {p.project_id: [] for p in group}
        senders = [
            asyncio.create_task(
                send_batches(http, url, p.public_key, 40, 40, accepted[p.project_id])
            )
            for p in group
        ]
        await wait_for(lambda: _some_stored(db, group[0].project_id), timeout=60)
        two.stop()  # partitions move to the survivor mid-stream
        await asyncio.gather(*senders)
        for p in group:
            assert len(accepted[p.project_id]) == 1600, REFUSED[-5:]
            try:
                await wait_for(
                    lambda p=p: count_is(db, p.project_id, 1600), timeout=90, interval=0.5
                )
            except AssertionError as exc:
                redis = aioredis.Redis.from_url(REDIS_URL)
                try:
                    why = await diagnosis(
                        db, redis, settings, p.project_id, accepted[p.project_id], (one, two)
                    )
                finally:
                    await redis.aclose()
                raise AssertionError(why) from exc
        await asyncio.sleep(1.0)
        for p in group:
            count, distinct = await stored(db, p.project_id)
            assert count == distinct == 1600
            await settled(db, p.project_id)
    finally:
        one.stop()
        two.stop()
        await runner.cleanup()


async def _some_stored(db: asyncpg.Pool, project_id: str) -> bool:
    return (await stored(db, project_id))[0] > 500


class DiesBeforeAck(Bridge):
    """Fault injection: the process 'dies' after Kafka acknowledged and before XACK.

    Killing a real process at exactly that instruction cannot be timed, so the
    ack step raises instead; everything before it (Redis read, Kafka produce
    and its acknowledgement) is real.
    """

    async def _ack(self, ids: list[bytes], offsets: dict[int, int]) -> None:
        raise ConnectionResetError("bridge died before XACK")


async def test_bridge_dying_between_produce_and_xack_stores_once(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
) -> None:
    settings = settings_factory(bridge_enabled=False, bridge_claim_idle_ms=1000)
    runner = await start_edge(settings)
    url = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "bridge-dies")
    worker = WorkerProcess(settings, run_dir, "sink-only").start()
    try:
        accepted: list[str] = []
        await send_batches(http, url, project.public_key, 4, 25, accepted)
        await ensure_topic(settings.kafka_broker, settings.events_topic, settings.topic_partitions)

        dying, producer = make_bridge(settings)
        doomed = DiesBeforeAck(
            **{f: getattr(dying, f) for f in ("redis", "producer", "stream", "group", "topic")},
            claim_idle_ms=1000,
        )
        await producer.start()
        try:
            await doomed.ensure_group()
            with contextlib.suppress(ConnectionResetError):
                await doomed.run_once()
        finally:
            await producer.stop()
        assert doomed.stats.entries == 0  # nothing acknowledged in Redis
        pending = await dying.redis.xpending(settings.stream_key, settings.stream_group)
        assert pending["pending"] == 4

        await asyncio.sleep(1.2)  # let the dead bridge's entries become reclaimable
        healthy, producer2 = make_bridge(settings)
        await producer2.start()
        try:
            sent = await healthy.run_once()
        finally:
            await producer2.stop()
        assert sent == 100 and healthy.stats.reclaimed == 4
        # Acknowledged, but kept until PostgreSQL holds the events.
        assert await dying.redis.xlen(settings.stream_key) == 4

        # The duplicate really reached Kafka: 200 events in the topic for 100 accepted.
        assert await _events_in_topic(settings) == 200

        await asyncio.to_thread(worker.wait_ready)
        await wait_for(lambda: count_is(db, project.project_id, 100), timeout=60)
        await asyncio.sleep(1.0)
        count, distinct = await stored(db, project.project_id)
        assert count == distinct == 100
        await settled(db, project.project_id)
        assert healthy.confirmer is not None
        # The bridge that sent the events remembers them for its confirm passes.
        assert len(healthy.confirmer.sent_keys) == 100

        async def trimmed() -> bool:
            assert healthy.confirmer is not None
            await healthy.confirmer.run_once()
            return await healthy.redis.xlen(settings.stream_key) == 0

        await wait_for(trimmed, timeout=30)  # trimmed once the worker committed past it
        assert healthy.confirmer.stats.confirmed == 4 and healthy.confirmer.stats.resent == 0
        assert len(healthy.confirmer.sent_keys) == 0  # forgotten with the trim
        await dying.close()
        await healthy.close()
    finally:
        worker.stop()
        await runner.cleanup()


async def _events_in_topic(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=bootstrap(settings.kafka_broker),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    total = 0
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1500)
            if not batch:
                return total
            for messages in batch.values():
                total += sum(len(orjson.loads(m.value)) for m in messages)
    finally:
        await consumer.stop()


async def test_redis_down_means_503_and_nothing_accepted_is_lost(
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    settings_factory: Callable[..., Settings],
    run_dir: Path,
) -> None:
    redis_server = RedisServer(run_dir / "redis-fault").start()
    settings = settings_factory(redis_url=redis_server.url)
    runner = await start_edge(settings)
    url = f"http://127.0.0.1:{settings.http_port}"
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "redis-down")
    worker = WorkerProcess(settings, run_dir, "after-redis")
    try:
        accepted: list[str] = []
        await send_batches(http, url, project.public_key, 3, 10, accepted)
        assert len(accepted) == 30

        redis_server.kill()  # SIGKILL: what was acknowledged must be on disk already
        body = {"event_name": "lost?", "event_source": "w", "event_id": "during-outage"}
        async with http.post(
            f"{url}/api/events/ingest/",
            json=body,
            headers={"Authorization": f"Bearer {project.public_key}"},
        ) as resp:
            answer = await resp.json()
            assert resp.status == 503
            assert answer["code"] == "buffer_unavailable"
            assert resp.headers["Retry-After"]

        redis_server.start()
        await send_batches(http, url, project.public_key, 2, 10, accepted)
        assert len(accepted) == 50

        worker.start()
        await asyncio.to_thread(worker.wait_ready)
        await wait_for(lambda: count_is(db, project.project_id, 50), timeout=60)
        async with db.acquire() as conn:
            ids = {
                r["event_id"]
                for r in await conn.fetch(
                    "SELECT event_id FROM events WHERE project_id = $1", project.project_id
                )
            }
        assert ids == set(accepted)  # the 503'd event was never accepted, so never stored
    finally:
        worker.stop()
        await runner.cleanup()
        redis_server.kill()
