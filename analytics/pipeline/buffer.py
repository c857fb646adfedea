"""The Redis Stream buffer between the edge and Kafka.

Group commit (``BufferWriter``): requests that arrive in the same event-loop turn share
one pipelined round trip, and those without rate limits share one ``XADD``, whose entry
holds all their events (up to ``ENTRY_EVENTS``); a request is never split across entries,
so each is appended whole or not at all. A request with limits gets its own entry, written
by a Lua script (``EVALSHA``, loaded once) that checks and charges the limits atomically
with the append. The bridge reads entries with a consumer group; an entry stays until
PostgreSQL holds its events (``analytics.pipeline.confirm``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from analytics import metrics
from analytics.errors import BufferUnavailable, RateLimited
from analytics.events.models import EventRow, encode_rows
from analytics.projects.limits import (
    APPEND_WITH_LIMITS,
    APPEND_WITH_LIMITS_SHA,
    CHECK_AND_CHARGE,
    Limit,
    window_fraction,
)

FIELD = b"e"
# Requests without limits are merged into one entry up to this many events (the bridge
# reads entries by the hundred: bounded entries keep its memory bounded).
ENTRY_EVENTS = 1000


def merge_payloads(payloads: Sequence[bytes]) -> bytes:
    """One ``encode_rows`` array from several (each a non-empty JSON array), without decoding."""
    if len(payloads) == 1:
        return payloads[0]
    return b"[" + b",".join(p[1:-1] for p in payloads if len(p) > 2) + b"]"


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

    __slots__ = (
        "_client",
        "_flushing",
        "_limiter",
        "_max",
        "_pending",
        "_sha",
        "_stream",
        "fail_open",
    )

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
        self._sha: str | None = None
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
                await self._write(group)
        finally:
            self._flushing = False

    async def _write(
        self, group: list[tuple[bytes, int, Sequence[Limit], asyncio.Future[int]]]
    ) -> None:
        """One round trip: merged XADDs for requests without limits, a script per limited one."""
        now = time.time()
        plain: list[list[tuple[bytes, asyncio.Future[int]]]] = []
        limited: list[tuple[bytes, int, Sequence[Limit], asyncio.Future[int]]] = []
        events = ENTRY_EVENTS
        for item in group:
            payload, count, limits, future = item
            if limits:
                limited.append(item)
                continue
            if events + count > ENTRY_EVENTS:
                plain.append([])
                events = 0
            plain[-1].append((payload, future))
            events += count
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for entry in plain:
                    pipe.xadd(self._stream, {FIELD: merge_payloads([p for p, _ in entry])})
                for payload, count, limits, _ in limited:
                    self._queue_limited(pipe, payload, count, limits, now)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError):
            for *_, future in group:
                if not future.done():
                    future.set_exception(_unavailable())
            return
        for entry, result in zip(plain, results, strict=False):
            for _, future in entry:
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(_unavailable())
                else:
                    future.set_result(0)
        retry: list[tuple[bytes, asyncio.Future[int]]] = []
        unloaded: list[tuple[bytes, int, Sequence[Limit], asyncio.Future[int]]] = []
        for item, result in zip(limited, results[len(plain) :], strict=True):
            payload, _, _, future = item
            if isinstance(result, NoScriptError):
                unloaded.append(item)  # Redis restarted or flushed its scripts: load, redo
            elif isinstance(result, ResponseError):
                # The limiter itself failed (not the connection): fail open.
                self.fail_open += 1
                metrics.RATE_LIMIT_FAIL_OPEN.inc()
                retry.append((payload, future))
            elif isinstance(result, Exception):
                future.set_exception(_unavailable())
            elif not future.done():
                future.set_result(int(result))
        if unloaded:
            self._sha = None
            await self._write(unloaded)
        if retry:
            await self._plain(retry)

    def _queue_limited(
        self, pipe: Any, payload: bytes, count: int, limits: Sequence[Limit], now: float
    ) -> None:
        keys = [self._stream]
        for limit in limits:
            keys += [limit.current_key, limit.previous_key]
        args: list[Any] = [payload, count, window_fraction(now)]
        args += [limit.limit for limit in limits]
        args += [limit.ttl_seconds for limit in limits]
        if self._sha is None:
            # The first use (or after NOSCRIPT): EVAL sends the script and caches it in
            # Redis; every later request sends only its SHA1.
            self._sha = APPEND_WITH_LIMITS_SHA
            pipe.eval(APPEND_WITH_LIMITS, len(keys), *keys, *args)
        else:
            pipe.evalsha(self._sha, len(keys), *keys, *args)

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
