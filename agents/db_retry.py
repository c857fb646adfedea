"""Waiting out a PostgreSQL that refuses a write: the raw sink's batches and its sketch
merges are retried, never skipped, with the same log line, error count and backoff."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from analytics import metrics

log = logging.getLogger(__name__)

# What a write retries on: the server refused it, or the connection to it failed.
DATABASE_ERRORS = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError)


class Backoff:
    """The wait before the next attempt: 0.2 s, doubling to at most 5 s."""

    __slots__ = ("seconds", "stage")

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.seconds = 0.2

    async def failed(self, what: str, exc: BaseException, *, retry: bool = True) -> None:
        """Count and log a failed ``what``; wait before the next attempt when ``retry``."""
        metrics.ERRORS.labels(self.stage, type(exc).__name__).inc()
        log.warning(
            "raw sink: %s failed (%s: %s); %s",
            what,
            type(exc).__name__,
            exc,
            f"retrying in {self.seconds:.1f}s" if retry else "leaving it to a replay",
        )
        if retry:
            await asyncio.sleep(self.seconds)
            self.seconds = min(self.seconds * 2, 5.0)
