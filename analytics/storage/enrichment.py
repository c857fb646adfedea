"""Filling the enriched columns of rows stored before enrichment (``analytics enrich-events``).

Reads only what a row is stored with (``properties``, ``ip_address``,
``user_agent``), never the request it came in, so older rows get the same
columns the worker computes today. A column that already holds a value keeps
it (the worker found the country from the whole address, which a
``truncated`` or ``none`` project no longer stores), so a second run changes
nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from analytics.enrich.enricher import COLUMNS, Enricher, Enrichment, StoredFields

if TYPE_CHECKING:
    from analytics.storage import Connection

CHUNK = 5000

_SELECT = f"""
SELECT event_id, properties::text, ip_address, user_agent, {", ".join(COLUMNS)}
FROM events
WHERE project_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3
  AND ({" OR ".join(f"{c} IS NULL" for c in COLUMNS)})
"""

_STAGING = "sa_enrich_fill"

_CREATE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (
    event_id text, {", ".join(f"{c} {'boolean' if c == 'is_bot' else 'text'}" for c in COLUMNS)}
) ON COMMIT DELETE ROWS
"""

_UPDATE = f"""
UPDATE events e SET {", ".join(f"{c} = COALESCE(e.{c}, f.{c})" for c in COLUMNS)}
FROM {_STAGING} f
WHERE e.project_id = $1 AND e."timestamp" >= $2 AND e."timestamp" < $3
  AND e.event_id = f.event_id
"""


def _fills(stored: tuple[object, ...], computed: Enrichment) -> bool:
    """True when the computed row gives a value to a column that is null."""
    return any(old is None and new is not None for old, new in zip(stored, computed, strict=True))


async def enrich_day(conn: Connection, enricher: Enricher, project_id: str, day: date) -> int:
    """Fill the null enriched columns of one project's events of one UTC day; rows changed."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    changed = 0
    async with conn.transaction():
        await conn.execute(_CREATE)
        cursor = await conn.cursor(_SELECT, project_id, start, end)
        while True:
            rows = await cursor.fetch(CHUNK)
            if not rows:
                break
            computed = enricher.enrich([StoredFields(r[1], r[2], r[3]) for r in rows])
            records = [
                (row[0], *new)
                for row, new in zip(rows, computed, strict=True)
                if _fills(tuple(row[4:]), new)
            ]
            if records:
                await conn.copy_records_to_table(
                    _STAGING, records=records, columns=("event_id", *COLUMNS)
                )
                await conn.execute(_UPDATE, project_id, start, end)
                await conn.execute(f"TRUNCATE {_STAGING}")
                changed += len(records)
    return changed
