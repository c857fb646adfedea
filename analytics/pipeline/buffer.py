"""The Redis Stream buffer between the edge and Kafka.

One stream entry per accepted request, holding all its events, written with
a single XADD (atomic for the whole batch); concurrent requests share one
pipelined round trip (``BufferWriter``). The
bridge reads entries with a consumer group and deletes them once Kafka has
acknowledged their events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from analytics import metrics
from analytics.errors import BufferUnavailable, RateLimited
from analytics.events.models import EventRow, encode_rows
from analytics.projects.limits import APPEND_WITH_LIMITS, CHECK_AND_CHARGE, Limit, window_fraction

FIELD = b"e"


def _unavailable() -> BufferUnavailable:
    return BufferUnavailable(
        "the event buffer is unreachable; nothing was accepted, retry later", retry_after=5
    )


class BufferWriter:
    """Appends to the stream with group commit.

    Requests that arrive in the same event-loop turn are sent as one pipeline
    (one round trip, one socket write); each keeps its own stream entry and
    learns its own outcome, so a 202 still means "this entry is in Redis".
    """

    __slots__ = ("_client", "_flushing", "_limiter", "_max", "_pending", "_stream", "fail_open")

    def __init__(
        self,
        client: aioredis.Redis,
        stream: str,
        max_group: int = 256,
        limiter: aioredis.Redis | None = None,
    ) -> None:
        self._client = client
        # With a limiter on its own Redis, limits are checked there first (and fail open
        # when it is unreachable); else they are checked atomically with the append.
        self._limiter = limiter
        self._stream = stream
        self._max = max_group
        self._pending: list[tuple[bytes, int, Sequence[Limit], asyncio.Future[int]]] = []
        self._flushing = False
        self.fail_open = 0

    async def append(self, rows: list[EventRow], limits: Sequence[Limit] = ()) -> None:
        """Make ``rows`` durable in the buffer, or raise ``BufferUnavailable`` (503).

        With ``limits``, the append happens only if none is exceeded
        (``RateLimited``, 429, otherwise), and charges them all.
        """
        if limits and self._limiter is not None:
            await self._check_apart(limits, len(rows))
            limits = ()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((encode_rows(rows), len(rows), limits, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        refused = await future
        if refused:
            limit = limits[refused - 1]
            raise RateLimited(limit.detail, code=limit.code, retry_after=limit.retry_after)

    async def _check_apart(self, limits: Sequence[Limit], count: int) -> None:
        assert self._limiter is not None
        keys = ["unused"]
        for limit in limits:
            keys += [limit.current_key, limit.previous_key]
        args: list[Any] = ["", count, window_fraction(time.time())]
        args += [limit.limit for limit in limits]
        args += [limit.ttl_seconds for limit in limits]
        try:
            refused = int(await self._limiter.eval(CHECK_AND_CHARGE, len(keys), *keys, *args))
        except (RedisError, OSError):
            self.fail_open += 1
            metrics.RATE_LIMIT_FAIL_OPEN.inc()
            return
        if refused:
            limit = limits[refused - 1]
            raise RateLimited(limit.detail, code=limit.code, retry_after=limit.retry_after)

    def _start_flush(self) -> None:
        task = asyncio.ensure_future(self._flush())
        task.add_done_callback(_ignore)

    async def _flush(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending[: self._max], self._pending[self._max :]
                now = time.time()
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for payload, count, limits, _ in group:
                            self._queue(pipe, payload, count, limits, now)
                        results = await pipe.execute(raise_on_error=False)
                except (RedisError, OSError):
                    for *_, future in group:
                        if not future.done():
                            future.set_exception(_unavailable())
                    continue
                retry = []
                for (payload, _, limits, future), result in zip(group, results, strict=True):
                    if isinstance(result, ResponseError) and limits:
                        # The limiter itself failed (not the connection): fail open.
                        self.fail_open += 1
                        metrics.RATE_LIMIT_FAIL_OPEN.inc()
                        retry.append((payload, future))
                    elif isinstance(result, Exception):
                        future.set_exception(_unavailable())
                    elif not future.done():
                        future.set_result(int(result) if limits else 0)
                if retry:
                    await self._plain(retry)
        finally:
            self._flushing = False

    def _queue(
        self, pipe: Any, payload: bytes, count: int, limits: Sequence[Limit], now: float
    ) -> None:
        if not limits:
            pipe.xadd(self._stream, {FIELD: payload})
            return
        keys = [self._stream]
        for limit in limits:
            keys += [limit.current_key, limit.previous_key]
        args: list[Any] = [payload, count, window_fraction(now)]
        args += [limit.limit for limit in limits]
        args += [limit.ttl_seconds for limit in limits]
        pipe.eval(APPEND_WITH_LIMITS, len(keys), *keys, *args)

    async def _plain(self, entries: list[tuple[bytes, asyncio.Future[int]]]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for payload, _ in entries:
                    pipe.xadd(self._stream, {FIELD: payload})
                await pipe.execute()
        except (RedisError, OSError):
            for _, future in entries:
                if not future.done():
                    future.set_exception(_unavailable())
            return
        for _, future in entries:
            if not future.done():
                future.set_result(0)


def _ignore(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A Redis client for the buffer with bounded timeouts (fail fast, answer 503)."""
    options.setdefault("socket_timeout", 2.0)
    options.setdefault("socket_connect_timeout", 2.0)
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    return client
