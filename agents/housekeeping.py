"""Daily housekeeping in the worker: day partitions ahead, then retention.

Every worker schedules it at 03:17 UTC (``HOUSEKEEPING_CRON``); they need not agree on who
runs it. Creating partitions is idempotent (a day another worker created at the same moment
is retried, see ``_ensure_partitions``), and retention runs under the cleanup advisory lock
(``retention.exclusive``), which is *tried*, not waited for: the first worker to take it
cleans up, the others find it held and skip (``outcome: "skipped"``) instead of repeating
the work. Each run, skipped or failed ones too, leaves one ``audit_log`` row
(``action = "cleanup"``) with what it did.

Partitions come first and do not depend on retention succeeding: a bad retention setting
(``RetentionError``) must not leave tomorrow without a partition. A failure is logged and
counted in ``sa_errors_total{component="housekeeping"}``; the timer keeps going and the
next day tries again (``analytics cleanup-events`` runs the same retention by hand).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from analytics import metrics
from analytics.ops import retention
from analytics.settings import Settings
from analytics.storage.migrate import ensure_partitions_ahead
from analytics.storage.projects import audit

log = logging.getLogger(__name__)

# Minute 17 of hour 3, UTC: after midnight's late events, away from the top of the hour.
HOUSEKEEPING_CRON = "17 3 * * *"


async def _ensure_partitions(conn: asyncpg.Connection, days: int) -> None:
    """``ensure_partitions_ahead``, tolerating another worker creating the same day at once.

    ``sa_ensure_partition`` checks for the table again after taking its per-day lock, but that
    check can miss a table committed while it waited and then fail with "already exists";
    the next attempt sees the table and goes on with the following days.
    """
    for attempt in range(days + 3):
        try:
            await ensure_partitions_ahead(conn, days)
            return
        except asyncpg.DuplicateTableError:
            if attempt == days + 2:
                raise


async def run_housekeeping(settings: Settings) -> dict[str, Any]:
    """Ensure partitions ahead and apply retention once; returns the audited detail.

    ``outcome`` is ``done``, ``skipped`` (another run holds the cleanup lock) or ``failed``
    (``error`` says why; whatever steps finished before stay done, the rest wait for the
    next run). A database that cannot be reached at all raises.
    """
    started = time.monotonic()
    today = datetime.now(UTC).date()
    detail: dict[str, Any] = {
        "trigger": "daily",
        "day": today.isoformat(),
        "partitions_ahead_days": settings.partitions_ahead_days,
    }
    report = retention.Report(dry_run=False)
    conn = await asyncpg.connect(settings.database_url, timeout=10)
    try:
        await _ensure_partitions(conn, settings.partitions_ahead_days)
        locked = False
        try:
            async with retention.exclusive(conn):
                locked = True
                for step in await retention.plan(conn, today):
                    await retention.run_step(conn, step, report, dry_run=False)
            detail["outcome"] = "done"
        except retention.RetentionError as exc:
            # Before the body, only the held lock raises: that run does this work. Inside, it
            # is a retention setting to fix or a partition that stayed locked.
            detail["outcome"] = "failed" if locked else "skipped"
            detail["error"] = str(exc)
        except asyncpg.PostgresError as exc:
            # The failed step's transaction rolled back; the connection still records it.
            detail["outcome"] = "failed"
            detail["error"] = f"{type(exc).__name__}: {exc}"
        detail.update(report.as_dict())
        detail["seconds"] = round(time.monotonic() - started, 3)
        await audit(conn, None, "cleanup", detail)
    finally:
        await conn.close()
    if detail["outcome"] == "failed":
        metrics.ERRORS.labels("housekeeping", "retention").inc()
        log.error("housekeeping: retention failed: %s", detail["error"])
    else:
        log.info(
            "housekeeping: %s; %d partition(s) dropped, %d raw event(s) removed",
            detail["outcome"],
            len(report.dropped_partitions),
            report.deleted["events"],
            extra={"cleanup": detail},
        )
    return detail


def register(app: Any, settings: Settings) -> None:
    """Schedule ``run_housekeeping`` on ``app`` every day at 03:17 UTC."""

    @app.crontab(HOUSEKEEPING_CRON, timezone=UTC)
    async def housekeeping() -> None:
        try:
            await run_housekeeping(settings)
        except Exception as exc:
            # The worker's agents must keep running; tomorrow's run tries again.
            metrics.ERRORS.labels("housekeeping", type(exc).__name__).inc()
            log.exception("housekeeping: run failed")
