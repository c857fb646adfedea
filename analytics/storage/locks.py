"""The per-project lock every writer of a project's aggregates takes first.

Transaction-scoped advisory locks, one per project, always taken in sorted order (so two
writers never wait on each other in a cycle): the raw sink's batch, its sketch flush,
``aggregate-events`` rebuilding a day and retention's deletes take turns per project.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analytics.storage import Connection


async def lock_projects(conn: Connection, projects: Iterable[str]) -> None:
    """Transaction-scoped lock per project, taken in a fixed order (no deadlocks)."""
    for project_id in sorted(projects):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", project_id)
