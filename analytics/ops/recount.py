"""The recount: every aggregate recomputed in SQL from the raw ``events`` table.

The reference the tests and the bench hold the aggregate tables against: exact counts,
and distinct counts exact up to the sketch's exact limit, within its stated error beyond.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from analytics.counting.sketch import EXACT_LIMIT, STANDARD_ERROR
from analytics.counting.web_stats import VISIT_SOURCE_COLUMNS

if TYPE_CHECKING:
    from analytics.storage import Connection

WIDTHS = {"agg_5min": "5 minutes", "agg_hourly": "1 hour", "agg_daily": "1 day"}

_SOURCES = ", ".join(VISIT_SOURCE_COLUMNS)
_VISIT_COLUMNS = (
    "user_id, started_at, first_event_id, ended_at, entry_page, entry_at, entry_event_id,"
    f" exit_page, exit_at, exit_event_id, pageviews, events, {_SOURCES}"
)

# Each visit recounted from its session's non-bot events: first/last by (timestamp, event_id).
_RECOUNT_VISITS = f"""
WITH e AS (
    SELECT * FROM events
    WHERE project_id = $1 AND is_bot IS NOT TRUE AND session_id IS NOT NULL
), firsts AS (
    SELECT DISTINCT ON (session_id) session_id, user_id, "timestamp" AS started_at,
           event_id AS first_event_id, {_SOURCES}
    FROM e ORDER BY session_id, "timestamp", event_id COLLATE "C"
), entries AS (
    SELECT DISTINCT ON (session_id) session_id, pathname AS entry_page,
           "timestamp" AS entry_at, event_id AS entry_event_id
    FROM e WHERE event_name = 'page_view'
    ORDER BY session_id, "timestamp", event_id COLLATE "C"
), exits AS (
    SELECT DISTINCT ON (session_id) session_id, pathname AS exit_page,
           "timestamp" AS exit_at, event_id AS exit_event_id
    FROM e WHERE event_name = 'page_view'
    ORDER BY session_id, "timestamp" DESC, event_id COLLATE "C" DESC
), counts AS (
    SELECT session_id, max("timestamp") AS ended_at,
           count(*) FILTER (WHERE event_name = 'page_view') AS pageviews, count(*) AS events
    FROM e GROUP BY session_id
)
SELECT session_id, {_VISIT_COLUMNS}
FROM firsts JOIN counts USING (session_id) LEFT JOIN entries USING (session_id)
LEFT JOIN exits USING (session_id)
"""

# Stats rows recounted from non-bot events, one branch per dimension.
_RECOUNT_STATS = """
WITH e AS (
    SELECT "timestamp", event_name, pathname, hostname, user_id FROM events
    WHERE project_id = $1 AND is_bot IS NOT TRUE
), d AS (
    SELECT '' AS dimension, '' AS value, * FROM e
    UNION ALL SELECT 'name', event_name, * FROM e
    UNION ALL SELECT 'page', pathname, * FROM e WHERE pathname IS NOT NULL
    UNION ALL SELECT 'hostname', hostname, * FROM e WHERE hostname IS NOT NULL
)
SELECT dimension, {bucket}, value, count(*),
       count(*) FILTER (WHERE event_name = 'page_view'), count(DISTINCT user_id)
FROM d GROUP BY 1, 2, 3
"""
_STATS_BUCKETS = {
    "stats_hourly": ("bucket_start", "date_bin('1 hour', \"timestamp\", TIMESTAMPTZ 'epoch')"),
    "stats_daily": ("day", "(\"timestamp\" AT TIME ZONE 'UTC')::date"),
}


async def recount(
    conn: Connection, table: str, project_id: str
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = await conn.fetch(
        f"""
        SELECT s.name, e.event_name,
               date_bin('{WIDTHS[table]}', e."timestamp", TIMESTAMPTZ '1970-01-01+00') AS b,
               count(*), sum(1.0 / e.sample_rate), count(DISTINCT e.user_id),
               count(DISTINCT e.session_id)
        FROM events e JOIN event_sources s ON s.id = e.event_source_id
        WHERE e.project_id = $1 GROUP BY 1, 2, 3
        """,
        project_id,
    )
    return {(r[0], r[1], r[2]): (r[3], float(r[4]), r[5], r[6]) for r in rows}


async def stored(
    conn: Connection, table: str, project_id: str
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = await conn.fetch(
        f"SELECT event_source, event_name, bucket_start, event_count, estimated_count,"
        f" unique_users, unique_sessions FROM {table} WHERE project_id = $1",
        project_id,
    )
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5], r[6]) for r in rows}


def distinct_matches(want: int, got: int) -> bool:
    """Exact up to the sketch's exact limit; beyond it, within three standard errors."""
    if want <= EXACT_LIMIT:
        return want == got
    return abs(got - want) <= 3 * STANDARD_ERROR * want


def _same(a: dict[Any, tuple[Any, ...]], b: dict[Any, tuple[Any, ...]]) -> bool:
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        if x[0] != y[0] or not math.isclose(x[1], y[1], rel_tol=1e-9):
            return False
        if not (distinct_matches(x[2], y[2]) and distinct_matches(x[3], y[3])):
            return False
    return True


async def mismatches(pool: asyncpg.Pool, project_id: str) -> list[str]:
    """Tables whose stored aggregates differ from the recount (empty when all agree)."""
    bad: list[str] = []
    async with pool.acquire() as conn:
        for table in WIDTHS:
            want = await recount(conn, table, project_id)
            got = await stored(conn, table, project_id)
            if not _same(want, got):
                bad.append(
                    f"{table}: want {sorted(want.items())[:5]} got {sorted(got.items())[:5]}"
                )
        days = await conn.fetch(
            """
            SELECT (e."timestamp" AT TIME ZONE 'UTC')::date, count(*), count(DISTINCT user_id),
                   count(DISTINCT session_id)
            FROM events e WHERE project_id = $1 GROUP BY 1
            """,
            project_id,
        )
        want_days = {r[0]: (r[1], r[2], r[3]) for r in days}
        got_days = {
            r[0]: (r[1], r[2], r[3])
            for r in await conn.fetch(
                "SELECT day, total_events, unique_users, unique_sessions"
                " FROM project_daily_summary WHERE project_id = $1",
                project_id,
            )
        }
        if want_days.keys() != got_days.keys() or not all(
            want_days[d][0] == got_days[d][0]
            and distinct_matches(want_days[d][1], got_days[d][1])
            and distinct_matches(want_days[d][2], got_days[d][2])
            for d in want_days
        ):
            bad.append(f"project_daily_summary: want {want_days} got {got_days}")
        names = await conn.fetch(
            """SELECT (e."timestamp" AT TIME ZONE 'UTC')::date, event_name, count(*)
               FROM events e WHERE project_id = $1 GROUP BY 1, 2""",
            project_id,
        )
        want_names: dict[Any, dict[str, int]] = {}
        for r in names:
            want_names.setdefault(r[0], {})[r[1]] = r[2]
        got_names = {
            r[0]: orjson.loads(r[1])
            for r in await conn.fetch(
                "SELECT day, event_counts FROM project_daily_summary WHERE project_id = $1",
                project_id,
            )
        }
        if want_names != got_names:
            bad.append("project_daily_summary.event_counts differ")
        bad.extend(await _web_mismatches(conn, project_id))
    return bad


async def _web_mismatches(conn: Connection, project_id: str) -> list[str]:
    """Visits and stats rows that differ from a recount of the non-bot events."""
    bad: list[str] = []
    want_visits = {r[0]: tuple(r[1:]) for r in await conn.fetch(_RECOUNT_VISITS, project_id)}
    got_visits = {
        r[0]: tuple(r[1:])
        for r in await conn.fetch(
            f"SELECT session_id, {_VISIT_COLUMNS} FROM visits WHERE project_id = $1", project_id
        )
    }
    if want_visits != got_visits:
        diff = sorted(
            k
            for k in want_visits.keys() | got_visits.keys()
            if want_visits.get(k) != got_visits.get(k)
        )
        bad.append(
            f"visits: {len(diff)} differ, e.g. {diff[:1]}:"
            f" want {[want_visits.get(k) for k in diff[:1]]}"
            f" got {[got_visits.get(k) for k in diff[:1]]}"
        )
    for table, (column, bucket) in _STATS_BUCKETS.items():
        want = {
            (r[0], r[1], r[2]): (r[3], r[4], r[5])
            for r in await conn.fetch(_RECOUNT_STATS.format(bucket=bucket), project_id)
        }
        got = {
            (r[0], r[1], r[2]): (r[3], r[4], r[5])
            for r in await conn.fetch(
                f"SELECT dimension, {column}, value, events, pageviews, visitors"
                f" FROM {table} WHERE project_id = $1",
                project_id,
            )
        }
        same = want.keys() == got.keys() and all(
            want[k][:2] == got[k][:2] and distinct_matches(want[k][2], got[k][2]) for k in want
        )
        if not same:
            bad.append(f"{table}: want {sorted(want.items())[:5]} got {sorted(got.items())[:5]}")
    return bad
