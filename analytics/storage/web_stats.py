"""Writing visits and the stats rollups (SPEC §10), inside the raw sink's transaction.

Same rule as the agg_* tables (``analytics.storage.aggregates``), under the same
per-project lock: only events the ``event_ids`` ledger accepted as new in this
transaction are folded in, so a replay adds nothing. Visits are folded by PostgreSQL
from those rows (``visits_upsert``, a part of the sink's insert statement) and merged into
the stored row without reading it first: every column is a commutative merge, the least
or greatest ``(timestamp, event_id)`` wins (event_id compared ``COLLATE "C"``, code point
order), counts are added, so any split and order of a visit's events gives the same row.
Stats rows add their counts here; their visitor sketches are merged like agg_*'s
(``analytics.storage.sketches``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics.counting.web_stats import (
    PAGE_VIEW,
    VISIT_SOURCE_COLUMNS,
    StatsDelta,
    StatsKey,
)
from analytics.enrich.enricher import COLUMNS
from analytics.events.models import EventRow
from analytics.events.times import to_us

if TYPE_CHECKING:
    from analytics.storage import Connection

_TS = "(TIMESTAMPTZ 'epoch' + {} * INTERVAL '1 microsecond')"

# The first event's columns: replaced when the batch's first event comes before the stored one.
_FIRST = ("user_id", *VISIT_SOURCE_COLUMNS)
_BEFORE_FIRST = (
    '(EXCLUDED.started_at, EXCLUDED.first_event_id COLLATE "C")'
    ' < (v.started_at, v.first_event_id COLLATE "C")'
)
_BEFORE_ENTRY = (
    "EXCLUDED.entry_at IS NOT NULL AND (v.entry_at IS NULL OR"
    ' (EXCLUDED.entry_at, EXCLUDED.entry_event_id COLLATE "C")'
    ' < (v.entry_at, v.entry_event_id COLLATE "C"))'
)
_AFTER_EXIT = (
    "EXCLUDED.exit_at IS NOT NULL AND (v.exit_at IS NULL OR"
    ' (EXCLUDED.exit_at, EXCLUDED.exit_event_id COLLATE "C")'
    ' > (v.exit_at, v.exit_event_id COLLATE "C"))'
)


def _pick(condition: str, columns: Sequence[str]) -> str:
    return ",\n    ".join(
        f"{c} = CASE WHEN {condition} THEN EXCLUDED.{c} ELSE v.{c} END" for c in columns
    )


_KEY = "project_id, session_id"
_KEEP = "is_bot IS NOT TRUE AND session_id IS NOT NULL"
_PAGE = f"event_name = '{PAGE_VIEW}'"
_EARLIEST = 'ts, event_id COLLATE "C"'
_LATEST = 'ts DESC, event_id COLLATE "C" DESC'


def visits_upsert(relation: str) -> str:
    """The statement that folds the events in ``relation`` into ``visits``, one row per
    session, and merges each into the stored row.

    ``relation`` (a table or a CTE of the same statement) has the project, session, user,
    event id, event name, ``is_bot``, ``pathname`` and ``VISIT_SOURCE_COLUMNS`` of events,
    and ``ts``, their timestamp. Bots and events without a session are left out.
    """
    sources = ", ".join(f"f.{c}" for c in VISIT_SOURCE_COLUMNS)
    return f"""
INSERT INTO visits AS v (project_id, session_id, user_id, started_at, first_event_id, ended_at,
    entry_page, entry_at, entry_event_id, exit_page, exit_at, exit_event_id, pageviews, events,
    {", ".join(VISIT_SOURCE_COLUMNS)})
SELECT f.project_id, f.session_id, f.user_id, f.ts, f.event_id, c.ended_at,
       en.pathname, en.ts, en.event_id, ex.pathname, ex.ts, ex.event_id, c.pageviews, c.events,
       {sources}
FROM (SELECT DISTINCT ON ({_KEY}) {_KEY}, user_id, ts, event_id, {", ".join(VISIT_SOURCE_COLUMNS)}
      FROM {relation} WHERE {_KEEP} ORDER BY {_KEY}, {_EARLIEST}) f
JOIN (SELECT {_KEY}, max(ts) AS ended_at, count(*) FILTER (WHERE {_PAGE}) AS pageviews,
             count(*) AS events
      FROM {relation} WHERE {_KEEP} GROUP BY {_KEY}) c USING (project_id, session_id)
LEFT JOIN (SELECT DISTINCT ON ({_KEY}) {_KEY}, pathname, ts, event_id FROM {relation}
           WHERE {_KEEP} AND {_PAGE} ORDER BY {_KEY}, {_EARLIEST}) en
       USING (project_id, session_id)
LEFT JOIN (SELECT DISTINCT ON ({_KEY}) {_KEY}, pathname, ts, event_id FROM {relation}
           WHERE {_KEEP} AND {_PAGE} ORDER BY {_KEY}, {_LATEST}) ex
       USING (project_id, session_id)
-- a fixed row order: fewer lock waits between overlapping writers
ORDER BY f.project_id, f.session_id
ON CONFLICT (project_id, session_id) DO UPDATE SET
    {_pick(_BEFORE_FIRST, (*_FIRST, "started_at", "first_event_id"))},
    ended_at = GREATEST(v.ended_at, EXCLUDED.ended_at),
    {_pick(_BEFORE_ENTRY, ("entry_page", "entry_at", "entry_event_id"))},
    {_pick(_AFTER_EXIT, ("exit_page", "exit_at", "exit_event_id"))},
    pageviews = v.pageviews + EXCLUDED.pageviews,
    events = v.events + EXCLUDED.events
"""


# Per table: the bucket column and the µs -> bucket expression (UTC).
STATS_BUCKETS = {
    "stats_hourly": ("bucket_start", _TS.format("k.b")),
    "stats_daily": ("day", f"({_TS.format('k.b')} AT TIME ZONE 'UTC')::date"),
}

_UPSERT_STATS = """
INSERT INTO {table} AS a (project_id, dimension, {column}, value, events, pageviews, visitors,
    updated_at)
SELECT k.p, k.d, {bucket}, k.v, k.e, k.pv, 0, now()
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[])
    AS k(p, d, b, v, e, pv)
ON CONFLICT (project_id, dimension, {column}, value) DO UPDATE SET
    events = a.events + EXCLUDED.events,
    pageviews = a.pageviews + EXCLUDED.pageviews,
    updated_at = now()
"""


async def apply_stats_counts(
    conn: Connection, hourly: dict[StatsKey, StatsDelta], daily: dict[StatsKey, StatsDelta]
) -> dict[str, int]:
    """Add a batch's event and page view counts to ``stats_hourly`` and ``stats_daily``
    (their visitors are merged by ``analytics.storage.sketches``); the rows written. Call
    under the projects' lock, in the batch's transaction
    (``analytics.storage.aggregates.apply_rollup`` does)."""
    written: dict[str, int] = {}
    for table, deltas in (("stats_hourly", hourly), ("stats_daily", daily)):
        if not deltas:
            continue
        column, bucket = STATS_BUCKETS[table]
        keys = sorted(deltas)  # one row order for every writer: no deadlocks
        await conn.execute(
            _UPSERT_STATS.format(table=table, column=column, bucket=bucket),
            *([k[i] for k in keys] for i in range(4)),
            [deltas[k].events for k in keys],
            [deltas[k].pageviews for k in keys],
        )
        written[table] = len(keys)
    return written


# The columns a fold reads: an EventRow's (properties and the request's fields left out),
# then every enriched column in the enricher's order.
RAW_COLUMNS = (
    "e.project_id, e.event_id, e.event_source_id, s.name, e.user_id, e.session_id,"
    ' e.event_name, e."timestamp", e.sample_rate, ' + ", ".join(f"e.{c}" for c in COLUMNS)
)

_SESSIONS_OF_DAY = """
SELECT DISTINCT session_id FROM events
WHERE project_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3 AND session_id IS NOT NULL
"""

_REBUILD_VISITS = f"""
WITH session_events AS (
    SELECT *, "timestamp" AS ts FROM events
    WHERE project_id = $1 AND session_id = ANY($2::text[])
)
{visits_upsert("session_events")}
"""


def raw_pair(record: Sequence[Any]) -> tuple[EventRow, tuple[Any, ...]]:
    """A row selected with ``RAW_COLUMNS`` as the fold's (event, enriched columns)."""
    values = tuple(record)
    row = EventRow(
        values[0], values[1], values[2], values[3], values[4], values[5], values[6], "",
        to_us(values[7]), values[8], 0, None, None,
    )  # fmt: skip
    return row, values[9:]


async def delete_stats(conn: Connection, project_id: str, start: datetime, end: datetime) -> None:
    """Remove one project's stats rows of the UTC day [start, end) (a rebuild's first step)."""
    await conn.execute(
        "DELETE FROM stats_hourly WHERE project_id = $1 AND bucket_start >= $2"
        " AND bucket_start < $3",
        project_id,
        start,
        end,
    )
    await conn.execute(
        "DELETE FROM stats_daily WHERE project_id = $1 AND day = $2", project_id, start.date()
    )


async def rebuild_visits(conn: Connection, project_id: str, start: datetime, end: datetime) -> int:
    """Recompute the visits of every session with an event in [start, end) from all its
    events (any day); returns the visits written. Call under the project's lock."""
    sessions = [r[0] for r in await conn.fetch(_SESSIONS_OF_DAY, project_id, start, end)]
    if not sessions:
        return 0
    await conn.execute(
        "DELETE FROM visits WHERE project_id = $1 AND session_id = ANY($2::text[])",
        project_id,
        sessions,
    )
    status = await conn.execute(_REBUILD_VISITS, project_id, sessions)
    return int(status.split()[-1])
