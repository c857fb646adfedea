"""Audit records the edge owes: key use (sampled) and rate-limit / quota violations.

Counted in memory and written every ``AUDIT_INTERVAL`` seconds (and on shutdown)
as one row per (project, what) — never one row per event or request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import web

from analytics.storage.projects import audit
from web.app_keys import KEY_CACHE, PG_POOL

log = logging.getLogger(__name__)

AUDIT_INTERVAL = 30.0


class AuditBuffer:
    """Violations counted since the last write."""

    __slots__ = ("violations",)

    def __init__(self) -> None:
        self.violations: Counter[tuple[str, str]] = Counter()

    def violation(self, project_id: str, code: str) -> None:
        self.violations[(project_id, code)] += 1


AUDIT = web.AppKey("audit", AuditBuffer)


async def flush(app: web.Application) -> None:
    """Write what was counted; keeps it for the next try if the database fails."""
    buffer = app[AUDIT]
    used = app[KEY_CACHE].used
    violations, buffer.violations = buffer.violations, Counter()
    keys, app[KEY_CACHE].used = set(used), set()
    if not violations and not keys:
        return
    try:
        async with app[PG_POOL].acquire() as conn:
            for (project_id, code), count in sorted(violations.items()):
                await audit(conn, project_id, code, {"requests": count})
            for project_id, kind in sorted(keys):
                await audit(conn, project_id, "key_used", {"kind": kind})
    except Exception:
        log.warning("audit: write failed; keeping %d records for the next try", len(violations))
        buffer.violations.update(violations)
        app[KEY_CACHE].used |= keys


async def audit_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the periodic writer: started with the app, flushed and stopped with it."""
    app[AUDIT] = AuditBuffer()

    async def loop() -> None:
        while True:
            await asyncio.sleep(AUDIT_INTERVAL)
            await flush(app)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await flush(app)
