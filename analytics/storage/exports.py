"""The reads behind export and import: every column of ``events``, by a server-side cursor.

The export's columns are discovered from the table itself (``information_schema``), so
columns a later migration adds (the enrichment of SPEC §10) are exported without a
change here; ``analytics.transfer.events_file`` puts them in their documented order.
Rows are read through a cursor inside a read-only REPEATABLE READ transaction: the
export is one consistent snapshot, and the edge holds ``prefetch`` rows at a time,
never the range.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from analytics.storage import Connection

# Not a column of ``events``: the source's name, joined from ``event_sources``
# (ids are per database; the name is what another project or tool understands).
SOURCE_NAME = "event_source"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def event_columns(conn: Connection) -> list[str]:
    """The columns of the ``events`` table, as the database has them now."""
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'events'"
        " ORDER BY ordinal_position"
    )
    return [row["column_name"] for row in rows]


def _select(columns: Sequence[str]) -> str:
    picked = ", ".join(
        f"s.name AS {SOURCE_NAME}" if c == SOURCE_NAME else f"e.{_quoted(c)}" for c in columns
    )
    return (
        f"SELECT {picked} FROM events e JOIN event_sources s ON s.id = e.event_source_id"
        ' WHERE e.project_id = $1 AND e."timestamp" >= $2 AND e."timestamp" < $3'
    )


async def count_events(conn: Connection, project_id: str, start: datetime, end: datetime) -> int:
    """How many events of the project lie in [start, end) (for a progress bar)."""
    count: int = await conn.fetchval(
        'SELECT count(*) FROM events WHERE project_id = $1 AND "timestamp" >= $2'
        ' AND "timestamp" < $3',
        project_id,
        start,
        end,
    )
    return count


async def event_cursor(
    conn: Connection,
    columns: Sequence[str],
    project_id: str,
    start: datetime,
    end: datetime,
    *,
    prefetch: int = 1000,
) -> AsyncIterator[list[asyncpg.Record]]:
    """The project's events in [start, end), oldest first, ``prefetch`` rows at a time.

    Order: (timestamp, event_id), a total order (``event_id`` is unique per project).
    Runs its own read-only REPEATABLE READ transaction on ``conn`` (which must not be in
    one); closing the iterator early rolls it back.
    """
    query = _select(columns) + ' ORDER BY e."timestamp", e.event_id'
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(query, project_id, start, end)
        while True:
            rows = await cursor.fetch(prefetch)
            if rows:
                yield rows
            if len(rows) < prefetch:
                return


async def known_event_ids(conn: Connection, project_id: str, event_ids: Sequence[str]) -> set[str]:
    """Which of ``event_ids`` the project's ledger already holds (stored before)."""
    rows = await conn.fetch(
        "SELECT event_id FROM event_ids WHERE project_id = $1 AND event_id = ANY($2::text[])",
        project_id,
        list(event_ids),
    )
    return {row["event_id"] for row in rows}


async def project_salt(conn: Connection, project_id: str) -> tuple[str, str] | None:
    """The project's salt and settings (JSON text), or None when there is no such project."""
    row = await conn.fetchrow(
        "SELECT salt, settings::text AS settings FROM projects WHERE id = $1", project_id
    )
    return None if row is None else (row["salt"], row["settings"])


async def daily_summary_rows(
    conn: Connection, project_id: str, first: date, last: date
) -> list[asyncpg.Record]:
    """``project_daily_summary`` of the days first..last (inclusive), oldest first."""
    return list(
        await conn.fetch(
            "SELECT day, total_events, estimated_events, unique_users, unique_sessions,"
            " sources::text AS sources FROM project_daily_summary"
            " WHERE project_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
            project_id,
            first,
            last,
        )
    )


async def daily_aggregate_rows(
    conn: Connection, project_id: str, first: date, last: date
) -> list[asyncpg.Record]:
    """``agg_daily`` rows of the days first..last (inclusive): per day, source and name."""
    return list(
        await conn.fetch(
            "SELECT (bucket_start AT TIME ZONE 'UTC')::date AS day, event_source, event_name,"
            " event_count, estimated_count, unique_users, unique_sessions FROM agg_daily"
            " WHERE project_id = $1 AND bucket_start >= ($2::date AT TIME ZONE 'UTC')"
            " AND bucket_start < (($3::date + 1) AT TIME ZONE 'UTC')"
            " ORDER BY bucket_start, event_source, event_name",
            project_id,
            first,
            last,
        )
    )
