"""Read queries of the private dashboard API (SPEC §7), each limited to one project.

Raw events are paged by keyset, newest first, on the total order
(``timestamp`` DESC, ``event_id`` DESC); ``event_id`` is unique per project
(the ``event_ids`` ledger), so the key never ties. The only index on
``events`` is (project_id, event_source_id, timestamp, event_name), which
yields timestamp order only per source, so a page is read as one LATERAL
index scan per source of the project (each stops after ``limit`` rows, the
day partitions outside the range are pruned) merged by a top-N sort: the cost
is (sources x page size), whatever the depth. ``user_id`` and
``event_name`` are filters on those scans, not index conditions: a rare
``user_id`` makes a page read through the whole range.

Counts are exact up to :data:`COUNT_CAP` (a ``LIMIT``-ed count); above it
they are estimated from the aggregate tables (whole days from ``agg_daily``,
the partial days at both ends from ``agg_hourly``, partial hours prorated),
or from the planner when a ``user_id`` filter makes aggregates useless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import asyncpg
import orjson

if TYPE_CHECKING:
    from analytics.storage import Connection

COUNT_CAP = 100_000

Direction = Literal["after", "before"]

# Aggregate table -> bucket width; the tables and their UTC-aligned buckets are
# those of analytics.counting.rollup.GRAINS.
AGG_TABLES: dict[str, timedelta] = {
    "agg_5min": timedelta(minutes=5),
    "agg_hourly": timedelta(hours=1),
    "agg_daily": timedelta(days=1),
}


@dataclass(slots=True, frozen=True)
class EventFilter:
    """Which raw events a query is about: [start, end) of one project, optional filters."""

    project_id: str
    start: datetime
    end: datetime
    event_name: str | None = None
    event_source_id: int | None = None
    event_source: str | None = None  # the name of event_source_id (aggregates are keyed by it)
    user_id: str | None = None


@dataclass(slots=True, frozen=True)
class Keyset:
    """A position in the (timestamp DESC, event_id DESC) order of events."""

    timestamp: datetime
    event_id: str


@dataclass(slots=True, frozen=True)
class EventCount:
    """How many events match; ``estimated`` when over :data:`COUNT_CAP`."""

    value: int
    estimated: bool


_PAGE = """
SELECT e.event_id, e.project_id, e.event_source_id, s.name AS event_source, e.user_id,
       e.session_id, e.event_name, e.properties::text AS properties, e."timestamp",
       e.sample_rate, e.received_at, e.ip_address, e.user_agent
FROM event_sources s
CROSS JOIN LATERAL (
    SELECT * FROM events e
    WHERE e.project_id = $1 AND e.event_source_id = s.id
      AND e."timestamp" >= $2 AND e."timestamp" < $3
      AND ($4::text IS NULL OR e.event_name = $4)
      AND ($5::text IS NULL OR e.user_id = $5)
      {keyset}
    ORDER BY e."timestamp" {order}, e.event_id {order}
    LIMIT $7
) e
WHERE s.project_id = $1 AND ($6::bigint IS NULL OR s.id = $6)
ORDER BY e."timestamp" {order}, e.event_id {order}
LIMIT $8 OFFSET $9
"""

# The bare "timestamp" bound lets the planner prune day partitions and use it as
# an index condition; the row comparison then settles ties within one microsecond.
_KEYSET = {
    "after": 'AND e."timestamp" <= $10 AND (e."timestamp", e.event_id) < ($10, $11)',
    "before": 'AND e."timestamp" >= $10 AND (e."timestamp", e.event_id) > ($10, $11)',
}

_PAGE_SQL: dict[Direction | None, str] = {
    None: _PAGE.format(keyset="", order="DESC"),
    "after": _PAGE.format(keyset=_KEYSET["after"], order="DESC"),
    "before": _PAGE.format(keyset=_KEYSET["before"], order="ASC"),
}

_MATCHING = """
SELECT 1 FROM events e
WHERE e.project_id = $1 AND e."timestamp" >= $2 AND e."timestamp" < $3
  AND ($4::text IS NULL OR e.event_name = $4)
  AND ($5::text IS NULL OR e.user_id = $5)
  AND ($6::bigint IS NULL OR e.event_source_id = $6)
"""

_CAPPED_COUNT = f"SELECT count(*) FROM ({_MATCHING} LIMIT $7) m"

# Whole UTC days from agg_daily, the hours of the partial days at both ends from
# agg_hourly, each row weighted by the share of its bucket inside [start, end).
_AGG_ESTIMATE = """
WITH parts AS (
    SELECT bucket_start, event_count, interval '1 day' AS width FROM agg_daily
    WHERE project_id = $1 AND bucket_start >= $4 AND bucket_start < $5
      AND ($8::text IS NULL OR event_source = $8) AND ($9::text IS NULL OR event_name = $9)
    UNION ALL
    SELECT bucket_start, event_count, interval '1 hour' FROM agg_hourly
    WHERE project_id = $1
      AND ((bucket_start >= $6 AND bucket_start < $4) OR (bucket_start >= $5 AND bucket_start < $7))
      AND ($8::text IS NULL OR event_source = $8) AND ($9::text IS NULL OR event_name = $9)
)
SELECT coalesce(sum(event_count * extract(epoch FROM least(bucket_start + width, $3)
                                         - greatest(bucket_start, $2))
                    / extract(epoch FROM width)), 0)::float8
FROM parts
"""


def _args(flt: EventFilter) -> tuple[object, ...]:
    return (flt.project_id, flt.start, flt.end, flt.event_name, flt.user_id, flt.event_source_id)


async def event_page(
    conn: Connection,
    flt: EventFilter,
    *,
    limit: int,
    after: Keyset | None = None,
    before: Keyset | None = None,
    offset: int = 0,
) -> list[asyncpg.Record]:
    """Up to ``limit`` events, always newest first.

    ``after`` takes the events older than that position, ``before`` the
    events just newer than it (the previous page); ``offset`` skips rows
    (page numbers; every source scan reads ``offset + limit`` rows, so
    callers keep it small).
    """
    direction: Direction | None = None
    keyset: tuple[object, ...] = ()
    if after is not None:
        direction, keyset = "after", (after.timestamp, after.event_id)
    elif before is not None:
        direction, keyset = "before", (before.timestamp, before.event_id)
    rows = await conn.fetch(
        _PAGE_SQL[direction], *_args(flt), offset + limit, limit, offset, *keyset
    )
    if direction == "before":
        rows.reverse()
    return list(rows)


async def count_events(conn: Connection, flt: EventFilter) -> EventCount:
    """Exact count up to :data:`COUNT_CAP`, else an estimate (see the module docstring)."""
    estimate = 0.0
    if flt.user_id is None:
        # Aggregates are cheap at any range: when they already say "far over the
        # cap", skip the capped scan of raw rows.
        estimate = await _aggregate_estimate(conn, flt)
        if estimate > COUNT_CAP * 1.1:
            return EventCount(round(estimate), estimated=True)
    exact: int = await conn.fetchval(_CAPPED_COUNT, *_args(flt), COUNT_CAP + 1)
    if exact <= COUNT_CAP:
        return EventCount(exact, estimated=False)
    guess = estimate if flt.user_id is None else await _planner_estimate(conn, flt)
    return EventCount(max(round(guess), COUNT_CAP + 1), estimated=True)


def _ceil_day(moment: datetime) -> datetime:
    floor = _floor(moment, timedelta(days=1))
    return floor if floor == moment else floor + timedelta(days=1)


def _floor(moment: datetime, width: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return moment - (moment - epoch) % width


async def _aggregate_estimate(conn: Connection, flt: EventFilter) -> float:
    day_lo = _ceil_day(flt.start)
    day_hi = max(_floor(flt.end, timedelta(days=1)), day_lo)
    hour_lo = _floor(flt.start, timedelta(hours=1))
    if day_lo == day_hi:
        # No whole day inside: hours all the way, in the first hourly range.
        day_lo = day_hi = flt.end
    value: float = await conn.fetchval(
        _AGG_ESTIMATE,
        flt.project_id,
        flt.start,
        flt.end,
        day_lo,
        day_hi,
        hour_lo,
        flt.end,
        flt.event_source,
        flt.event_name,
    )
    return value


async def _planner_estimate(conn: Connection, flt: EventFilter) -> float:
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {_MATCHING}", *_args(flt))
    rows: float = orjson.loads(plan)[0]["Plan"]["Plan Rows"]
    return rows


async def source_name(conn: Connection, project_id: str, source_id: int) -> str | None:
    """The name of the project's source with this id, or None when it is not the project's."""
    name: str | None = await conn.fetchval(
        "SELECT name FROM event_sources WHERE project_id = $1 AND id = $2", project_id, source_id
    )
    return name


_AGGREGATES = """
SELECT a.bucket_start, a.event_source, s.id AS event_source_id, a.event_name, a.event_count,
       a.estimated_count, a.unique_users, a.unique_sessions
FROM {table} a
LEFT JOIN event_sources s ON s.project_id = a.project_id AND s.name = a.event_source
WHERE a.project_id = $1 AND a.bucket_start > $2 AND a.bucket_start < $3
  AND ($4::text IS NULL OR a.event_source = $4) AND ($5::text IS NULL OR a.event_name = $5)
ORDER BY a.bucket_start, a.event_source, a.event_name
"""

_AGGREGATE_SQL = {table: _AGGREGATES.format(table=table) for table in AGG_TABLES}


async def aggregates(conn: Connection, table: str, flt: EventFilter) -> list[asyncpg.Record]:
    """Rows of one aggregate table whose bucket overlaps [start, end), oldest first."""
    width = AGG_TABLES[table]
    return list(
        await conn.fetch(
            _AGGREGATE_SQL[table],
            flt.project_id,
            flt.start - width,
            flt.end,
            flt.event_source,
            flt.event_name,
        )
    )


async def daily_summaries(conn: Connection, flt: EventFilter) -> list[asyncpg.Record]:
    """``project_daily_summary`` rows of the UTC days overlapping [start, end), oldest first."""
    first_day = flt.start.astimezone(UTC).date()
    last_day = (flt.end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return list(
        await conn.fetch(
            "SELECT day, total_events, estimated_events, unique_users, unique_sessions,"
            " top_events::text AS top_events, sources::text AS sources"
            " FROM project_daily_summary WHERE project_id = $1 AND day >= $2 AND day <= $3"
            " ORDER BY day",
            flt.project_id,
            first_day,
            last_day,
        )
    )


# Totals per name from agg_daily; "last_seen" is refined to the latest 5-minute
# bucket within the name's last day (one day of agg_5min per name, by index).
_EVENT_NAMES = """
WITH names AS (
    SELECT event_name, sum(event_count)::bigint AS total_count,
           sum(estimated_count) AS estimated_count, max(bucket_start) AS last_day
    FROM agg_daily WHERE project_id = $1
    GROUP BY event_name
)
SELECT n.event_name, n.total_count, n.estimated_count, n.last_day,
       (SELECT max(f.bucket_start) FROM agg_5min f
        WHERE f.project_id = $1 AND f.bucket_start >= n.last_day
          AND f.bucket_start < n.last_day + interval '1 day'
          AND f.event_name = n.event_name) AS last_bucket
FROM names n
ORDER BY n.total_count DESC, n.event_name
"""


async def event_names(conn: Connection, project_id: str) -> list[asyncpg.Record]:
    """Every event name of the project with its totals, most frequent first."""
    return list(await conn.fetch(_EVENT_NAMES, project_id))


async def event_sources(conn: Connection, project_id: str) -> list[asyncpg.Record]:
    """The project's sources with their setting overrides, by name."""
    return list(
        await conn.fetch(
            "SELECT id, name, created_at, settings::text AS settings FROM event_sources"
            " WHERE project_id = $1 ORDER BY name",
            project_id,
        )
    )
