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

if TYPE_CHECKING:
    from analytics.storage import Connection

WIDTHS = {"agg_5min": "5 minutes", "agg_hourly": "1 hour", "agg_daily": "1 day"}


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
    return bad
