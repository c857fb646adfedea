"""Load for fault tests: batches of unique events posted to a live edge, and counts."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
import asyncpg
import orjson

_ids = itertools.count()


async def post_batch(
    http: aiohttp.ClientSession, url: str, key: str, size: int, accepted: list[str]
) -> int:
    """Post ``size`` new events in one batch; record their ids if the edge answered 202."""
    ids = [f"ev-{next(_ids)}" for _ in range(size)]
    body = {"events": [{"event_name": "load", "event_source": "bench", "event_id": i} for i in ids]}
    async with http.post(
        f"{url}/api/events/batch/",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    ) as resp:
        if resp.status == 202:
            accepted.extend(ids)
        return resp.status


async def send_batches(
    http: aiohttp.ClientSession, url: str, key: str, batches: int, size: int, accepted: list[str]
) -> None:
    """Post ``batches`` batches, 20 ms apart."""
    for _ in range(batches):
        await post_batch(http, url, key, size, accepted)
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
