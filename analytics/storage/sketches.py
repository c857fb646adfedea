"""Merging members into the stored sketches: agg_*, the daily summary and the stats rows.

The rows exist already: the counts of the same events created them (``apply_rollup``,
in the batch's transaction, before the members arrive here). Each table's sketches are
read under a row lock, merged in Python (``merge_stored``: sorted exact sets, HyperLogLog
beyond ``EXACT_LIMIT``) and written back with their cardinality, only where a member was
new. A row that is gone (retention dropped it, or a rebuild deleted it, which recounted
its members from the raw events) is left gone. Rows are locked in one order (table, then
key) by every writer, and under the projects' locks, so a flush and a batch of the same
project take turns and never deadlock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analytics.counting.members import STATS_TABLES, Members
from analytics.counting.sketch import merge_stored
from analytics.events.times import from_us
from analytics.storage.locks import lock_projects
from analytics.storage.web_stats import STATS_BUCKETS

if TYPE_CHECKING:
    from analytics.storage import Connection

_SELECT_AGG = """
SELECT k.i, a.users_sketch, a.sessions_sketch
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) WITH ORDINALITY
    AS k(p, s, n, b, i)
JOIN {table} a
  ON a.project_id = k.p AND a.event_source = k.s AND a.event_name = k.n AND a.bucket_start = k.b
ORDER BY k.i
FOR UPDATE OF a
"""

_UPDATE_AGG = """
UPDATE {table} AS a SET
    unique_users = k.nu, unique_sessions = k.ns,
    -- NULL means "no new member": keep the stored sketch rather than rewrite it.
    users_sketch = COALESCE(k.us, a.users_sketch),
    sessions_sketch = COALESCE(k.ss, a.sessions_sketch),
    updated_at = now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::bigint[],
    $7::bytea[], $8::bytea[]) AS k(p, s, n, b, nu, ns, us, ss)
WHERE a.project_id = k.p AND a.event_source = k.s AND a.event_name = k.n AND a.bucket_start = k.b
"""

_SELECT_DAYS = """
SELECT k.i, d.users_sketch, d.sessions_sketch
FROM unnest($1::text[], $2::date[]) WITH ORDINALITY AS k(p, day, i)
JOIN project_daily_summary d ON d.project_id = k.p AND d.day = k.day
ORDER BY k.i
FOR UPDATE OF d
"""

_UPDATE_DAYS = """
UPDATE project_daily_summary AS d SET
    unique_users = k.nu, unique_sessions = k.ns,
    users_sketch = COALESCE(k.us, d.users_sketch),
    sessions_sketch = COALESCE(k.ss, d.sessions_sketch),
    updated_at = now()
FROM unnest($1::text[], $2::date[], $3::bigint[], $4::bigint[], $5::bytea[], $6::bytea[])
    AS k(p, day, nu, ns, us, ss)
WHERE d.project_id = k.p AND d.day = k.day
"""

_SELECT_STATS = """
SELECT k.i, a.visitors_sketch
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS k(p, d, b, v, i)
JOIN {table} a ON a.project_id = k.p AND a.dimension = k.d AND a.{column} = {bucket}
  AND a.value = k.v
ORDER BY k.i
FOR UPDATE OF a
"""

_UPDATE_STATS = """
UPDATE {table} AS a SET visitors = k.n, visitors_sketch = k.sk, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bytea[])
    AS k(p, d, b, v, n, sk)
WHERE a.project_id = k.p AND a.dimension = k.d AND a.{column} = {bucket} AND a.value = k.v
"""


def _pairs(
    stored: dict[int, Any], keys: list[Any], members: dict[Any, tuple[set[int], set[int]]]
) -> tuple[list[int], list[list[Any]]]:
    """Merge users and sessions into each stored row; the places and columns of the rows
    that changed: unique users, unique sessions, users sketch, sessions sketch."""
    places: list[int] = []
    columns: list[list[Any]] = [[], [], [], []]
    for place, key in enumerate(keys):
        row = stored.get(place + 1)
        if row is None:
            continue  # the row is gone: see the module's note
        users, sessions = members[key]
        user_sketch, user_count = merge_stored(row[1], users)
        session_sketch, session_count = merge_stored(row[2], sessions)
        if user_sketch is None and session_sketch is None:
            continue
        places.append(place)
        for column, value in zip(
            columns, (user_count, session_count, user_sketch, session_sketch), strict=True
        ):
            column.append(value)
    return places, columns


async def _merge_aggs(conn: Connection, members: Members) -> dict[str, int]:
    written: dict[str, int] = {}
    for table, rows in members.grains.items():
        if not rows:
            continue
        keys = sorted(rows)
        key_columns = (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [from_us(k[3]) for k in keys],
        )
        stored = {r[0]: r for r in await conn.fetch(_SELECT_AGG.format(table=table), *key_columns)}
        places, columns = _pairs(stored, keys, rows)
        if places:
            await conn.execute(
                _UPDATE_AGG.format(table=table),
                *([column[p] for p in places] for column in key_columns),
                *columns,
            )
            written[table] = len(places)
    if members.days:
        keys_d = sorted(members.days)
        day_columns = ([k[0] for k in keys_d], [k[1] for k in keys_d])
        stored = {r[0]: r for r in await conn.fetch(_SELECT_DAYS, *day_columns)}
        places, columns = _pairs(stored, keys_d, members.days)
        if places:
            await conn.execute(
                _UPDATE_DAYS, *([column[p] for p in places] for column in day_columns), *columns
            )
            written["project_daily_summary"] = len(places)
    return written


async def _merge_stats(conn: Connection, members: Members) -> dict[str, int]:
    written: dict[str, int] = {}
    for table in STATS_TABLES:
        rows = members.stats[table]
        if not rows:
            continue
        column, bucket = STATS_BUCKETS[table]
        keys = sorted(rows)
        key_columns = tuple([k[i] for k in keys] for i in range(4))
        stored: dict[int, bytes | None] = {
            r[0]: r[1]
            for r in await conn.fetch(
                _SELECT_STATS.format(table=table, column=column, bucket=bucket), *key_columns
            )
        }
        changed: list[list[Any]] = [[], [], [], [], [], []]
        for place, key in enumerate(keys):
            if place + 1 not in stored:
                continue
            sketch, count = merge_stored(stored[place + 1], rows[key])
            if sketch is None:
                continue
            for into, value in zip(changed, (*key, count, sketch), strict=True):
                into.append(value)
        if changed[0]:
            await conn.execute(
                _UPDATE_STATS.format(table=table, column=column, bucket=bucket), *changed
            )
            written[table] = len(changed[0])
    return written


async def merge_members(conn: Connection, members: Members) -> dict[str, int]:
    """Merge the members into their rows' sketches; the rows rewritten per table.

    Call inside a transaction that holds ``lock_projects`` of ``members.projects``.
    """
    written = await _merge_aggs(conn, members)
    written.update(await _merge_stats(conn, members))
    return written


async def flush_members(conn: Connection, members: Members) -> dict[str, int]:
    """Merge the members in a transaction of their own, under their projects' locks."""
    async with conn.transaction():
        await lock_projects(conn, members.projects)
        return await merge_members(conn, members)
