"""The edge's key cache on the real database: one look-up per key at a time, refresh ahead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from analytics.errors import Unauthorized
from analytics.projects.api_keys import KeyKind
from analytics.storage.projects import NewProject
from web.auth import KeyCache


class CountingPool:
    """The real pool, counting how often a connection is taken (each look-up takes one)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool, self.acquired = pool, 0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        self.acquired += 1
        async with self.pool.acquire() as conn:
            await asyncio.sleep(0.05)  # a slow database: requests pile up meanwhile
            yield conn


async def test_a_cold_key_is_looked_up_once_for_many_requests(
    db: asyncpg.Pool, project: NewProject
) -> None:
    pool = CountingPool(db)
    cache = KeyCache(pool, ttl=5.0)  # type: ignore[arg-type]
    records = await asyncio.gather(
        *(cache.authenticate(project.public_key, KeyKind.PUBLIC) for _ in range(50))
    )
    assert {r.project_id for r in records} == {project.project_id}
    assert pool.acquired == 1


async def test_a_key_in_use_is_refreshed_before_it_expires(
    db: asyncpg.Pool, project: NewProject
) -> None:
    pool = CountingPool(db)
    cache = KeyCache(pool, ttl=0.5)  # type: ignore[arg-type]
    await cache.authenticate(project.public_key, KeyKind.PUBLIC)
    await asyncio.sleep(0.42)  # inside the last fifth of the time to live
    await cache.authenticate(project.public_key, KeyKind.PUBLIC)  # answered from the cache
    await asyncio.sleep(0.01)
    assert pool.acquired == 2  # ...and a refresh started in the background
    await asyncio.sleep(0.12)  # past the first expiry: the refreshed entry answers
    await cache.authenticate(project.public_key, KeyKind.PUBLIC)
    assert pool.acquired == 2


async def test_a_revoked_key_stops_working_after_the_refresh(
    db: asyncpg.Pool, project: NewProject
) -> None:
    cache = KeyCache(db, ttl=0.5)
    await cache.authenticate(project.public_key, KeyKind.PUBLIC)
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE project_id = $1", project.project_id
        )
    await asyncio.sleep(0.6)
    with pytest.raises(Unauthorized):
        await cache.authenticate(project.public_key, KeyKind.PUBLIC)
