"""The raw sink's waiting sketch members, and the Kafka messages they hold back.

A batch's counts are committed with its events. Its unique users, sessions and visitors
wait here (``analytics.counting.members``) and are merged into the stored sketches at
most ``sketch_flush_seconds`` later, in a transaction of their own, or at once when a
rebalance starts. The batch's messages are acknowledged only after that merge committed,
so the offsets faust commits never pass a member PostgreSQL does not hold: a crash before
the merge replays the batch, the ledger keeps its counts from doubling, and the sink
hands the replayed members over again (``write_events``). A failing merge is retried
until it succeeds; until then no offset moves past it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from agents.db_retry import DATABASE_ERRORS, Backoff
from analytics.counting.members import Members
from analytics.storage.sketches import flush_members

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1
# Flush early when this many rows have members waiting (a burst across many keys).
MAX_ROWS = 50_000


class HeldSketches:
    """Members of the batches written since the last flush, and those batches' events."""

    __slots__ = ("_acked", "_interval", "_pool", "events", "lock", "members", "since")

    def __init__(self, pool: asyncpg.Pool, interval: float, ack: Callable[[Any], Any]) -> None:
        self._pool = pool
        self._interval = interval
        self._acked = ack
        self.members = Members()
        self.events: list[Any] = []
        self.since: float | None = None
        # Held by a batch's write and by a flush: one at a time, so a flush acknowledges
        # exactly the events whose members it merged.
        self.lock = asyncio.Lock()

    def hold(self, events: list[Any]) -> None:
        """Keep a written batch's events until its members are merged."""
        self.events.extend(events)
        if self.since is None:
            self.since = time.monotonic()

    def due(self) -> bool:
        """Whether the oldest held batch has waited its interval, or too much waits."""
        if self.since is None:
            return False
        return time.monotonic() - self.since >= self._interval or len(self.members) >= MAX_ROWS

    async def flush(self, *, retry: bool = True) -> bool:
        """Merge the held members, then acknowledge the held events (call under ``lock``).

        Retries a failing merge until it succeeds; with ``retry=False`` (shutdown) gives up
        after one failure and acknowledges nothing, and the next worker replays the batches.
        """
        if self.since is None:
            return True
        backoff = Backoff("sketch_flush")
        while True:
            try:
                started = time.perf_counter()
                if self.members:
                    async with self._pool.acquire() as conn:
                        written = await flush_members(conn, self.members)
                    log.debug(
                        "raw sink: merged sketches of %d rows for %d events in %.1f ms",
                        sum(written.values()),
                        len(self.events),
                        (time.perf_counter() - started) * 1000,
                    )
                break
            except DATABASE_ERRORS as exc:
                await backoff.failed("sketch merge", exc, retry=retry)
                if not retry:
                    return False
        events, self.events = self.events, []
        self.members = Members()
        self.since = None
        for event in events:
            await self._acked(event)
        return True
