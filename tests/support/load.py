"""Load for fault tests: batches of unique events posted to a live edge, and counts."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import aiohttp
import asyncpg
import orjson

from analytics.ops.recount import mismatches

_ids = itertools.count()


REFUSED: list[tuple[int, str]] = []
"""Answers other than 202 that ``post_batch`` gave up on (status, body), for diagnoses."""


async def post_batch(
    http: aiohttp.ClientSession,
    url: str,
    key: str,
    size: int,
    accepted: list[str],
    *,
    attempts: int = 5,
    web: bool = False,
) -> int:
    """Post ``size`` new events in one batch; record their ids if the edge answered 202.

    Like a real client, a 503 (nothing accepted, retry) or a 429 is retried after its
    Retry-After (at most 1 s here), up to ``attempts`` tries; an answer given up on is
    kept in ``REFUSED`` so that a failing count says why.
    """
    ids = [f"ev-{next(_ids)}" for _ in range(size)]
    events = [
        web_event(i) if web else {"event_name": "load", "event_source": "bench", "event_id": i}
        for i in ids
    ]
    data = orjson.dumps({"events": events})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if web:
        headers["User-Agent"] = BROWSER
    for attempt in range(attempts):
        async with http.post(f"{url}/api/events/batch/", data=data, headers=headers) as resp:
            if resp.status == 202:
                accepted.extend(ids)
                return resp.status
            text = await resp.text()
            wait = min(1.0, float(resp.headers.get("Retry-After", "0.2") or 0.2))
        if resp.status not in (429, 503) or attempt == attempts - 1:
            REFUSED.append((resp.status, text[:200]))
            return resp.status
        await asyncio.sleep(wait)
    return resp.status


# ``web=True`` load: page views of a site from a browser, in VISITS sessions of 40 users.
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36"
)
VISITS = 53


def web_event(event_id: str) -> dict[str, Any]:
    """One page view (one in five a custom event) of session n % VISITS."""
    n = int(event_id.rsplit("-", 1)[1])
    return {
        "event_name": "signup" if n % 5 == 0 else "page_view",
        "event_source": "web",
        "event_id": event_id,
        "user_id": f"u{n % VISITS % 40}",
        "session_id": f"s{n % VISITS}",
        "properties": {"url": f"https://shop.test/p{n % 7}"},
    }


async def send_batches(
    http: aiohttp.ClientSession,
    url: str,
    key: str,
    batches: int,
    size: int,
    accepted: list[str],
    *,
    web: bool = False,
) -> None:
    """Post ``batches`` batches, 20 ms apart."""
    for _ in range(batches):
        await post_batch(http, url, key, size, accepted, web=web)
        await asyncio.sleep(0.02)


async def stored(db: asyncpg.Pool, project_id: str) -> tuple[int, int]:
    """(rows, distinct event ids) of a project in ``events``."""
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events WHERE project_id = $1",
            project_id,
        )
    assert row is not None
    return row["n"], row["d"]


async def count_is(db: asyncpg.Pool, project_id: str, n: int) -> bool:
    return (await stored(db, project_id))[0] >= n


async def settled(db: asyncpg.Pool, project_id: str, timeout: float = 30.0) -> None:
    """Wait until every aggregate of the project equals the recount from its events.

    Counts are stored with their events; unique users, sessions and visitors are merged up
    to ``SKETCH_FLUSH_SECONDS`` later (``agents.sketch_flush``).
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        differ = await mismatches(db, project_id)
        if not differ:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"aggregates differ from the recount after {timeout}s: {differ}")
        await asyncio.sleep(0.3)


async def diagnosis(
    db: asyncpg.Pool,
    redis: Any,
    settings: Any,
    project_id: str,
    accepted: list[str],
    workers: Sequence[Any] = (),
) -> str:
    """Where the accepted events that PostgreSQL lacks are: the buffer, the sent records, Kafka."""
    from analytics.pipeline.buffer import FIELD
    from analytics.pipeline.confirm import SentBatch, sent_key
    from analytics.pipeline.kafka import OffsetsProbe

    async with db.acquire() as conn:
        have = {
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM event_ids WHERE project_id = $1", project_id
            )
        }
    missing = [i for i in accepted if i not in have]
    in_stream: dict[str, bytes] = {}
    for entry_id, fields in await redis.xrange(settings.stream_key):
        for row in orjson.loads(fields[FIELD]):
            if row[0] == project_id and row[1] in missing:
                in_stream[row[1]] = entry_id
    records = await redis.hgetall(sent_key(settings.stream_key))
    recorded = {i for raw in records.values() for i in SentBatch.decode(raw).ids}
    try:
        pending = await redis.xpending(settings.stream_key, settings.stream_group)
    except Exception as exc:
        pending = repr(exc)
    probe = OffsetsProbe(settings.kafka_broker, io_seconds=5, client_id="diagnosis")
    try:
        offsets = await probe.read(settings.events_topic, settings.app_id)
    finally:
        await probe.close()
    async with db.acquire() as conn:
        waits = [
            dict(r)
            for r in await conn.fetch(
                "SELECT pid, state, wait_event_type, wait_event, left(query, 80) AS query,"
                " now() - xact_start AS xact_age FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state <> 'idle'"
            )
        ]
    logs = "".join(f"\n--- {w.log_path.name} ---\n{w.log_tail(60)}" for w in workers)
    entries = set(in_stream.values())
    return (
        f"{len(missing)} of {len(accepted)} missing (first {missing[:3]});"
        f" {len(in_stream)} of them in {len(entries)} buffer entries,"
        f" {len(entries & recorded)} of those entries in sent records;"
        f" {len(records)} sent records; pending {pending}; offsets {offsets};"
        f" some records {[SentBatch.decode(r) for r in list(records.values())[:3]]};"
        f" refused answers {REFUSED[-5:]}; busy PostgreSQL sessions {waits}{logs}"
    )
