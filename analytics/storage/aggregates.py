"""Writing aggregate deltas to PostgreSQL, inside the raw sink's transaction.

Exactly-once effect: the counts come only from events the ``event_ids`` ledger accepted
as new in the same transaction, so a replayed batch, a Kafka duplicate or a redelivery
after a rebalance adds nothing, and a crash before commit leaves neither the rows nor
their counts. Counts are added (``count = count + delta``). The unique users, sessions
and visitors are sketches, which a member added twice does not change: they are merged
by ``analytics.storage.sketches``, in this transaction or, for the raw sink, a few
seconds later in one of their own. A per-project advisory lock
(``analytics.storage.locks``) serialises writers of one project (two workers during a
rebalance, a sketch flush, or ``aggregate-events`` rebuilding a range). Visits and the
stats rollups (``analytics.storage.web_stats``) are written under the same lock, in the
same transaction, from the same new rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from analytics.counting.members import Members
from analytics.counting.rollup import GRAINS, AggKey, DayDelta, Delta, Rollup
from analytics.counting.web_stats import StatsFold
from analytics.events.models import EventRow
from analytics.events.times import from_us
from analytics.storage.locks import lock_projects
from analytics.storage.sketches import merge_members
from analytics.storage.web_stats import (
    RAW_COLUMNS,
    apply_stats_counts,
    delete_stats,
    raw_pair,
    rebuild_visits,
)

if TYPE_CHECKING:
    from analytics.storage import Connection

TOP_EVENTS = 10

_UPSERT = """
INSERT INTO {table} AS a (project_id, event_source, event_name, bucket_start, event_count,
    estimated_count, updated_at)
SELECT *, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[],
    $6::float8[])
ON CONFLICT (project_id, event_source, event_name, bucket_start) DO UPDATE SET
    event_count = a.event_count + EXCLUDED.event_count,
    estimated_count = a.estimated_count + EXCLUDED.estimated_count,
    updated_at = now()
"""

_SELECT_DAYS = """
SELECT d.project_id, d.day, d.event_counts, d.sources
FROM project_daily_summary d
JOIN unnest($1::text[], $2::date[]) AS k(p, day) ON d.project_id = k.p AND d.day = k.day
FOR UPDATE OF d
"""

_UPSERT_DAYS = """
INSERT INTO project_daily_summary AS d (project_id, day, total_events, estimated_events,
    top_events, sources, event_counts, updated_at)
SELECT *, now() FROM unnest($1::text[], $2::date[], $3::bigint[], $4::float8[], $5::jsonb[],
    $6::jsonb[], $7::jsonb[])
ON CONFLICT (project_id, day) DO UPDATE SET
    total_events = d.total_events + EXCLUDED.total_events,
    estimated_events = d.estimated_events + EXCLUDED.estimated_events,
    top_events = EXCLUDED.top_events,
    sources = EXCLUDED.sources,
    event_counts = EXCLUDED.event_counts,
    updated_at = now()
"""


async def _apply_grain(conn: Connection, table: str, deltas: dict[AggKey, Delta]) -> int:
    keys = sorted(deltas)  # one row order for every writer: no deadlocks
    await conn.execute(
        _UPSERT.format(table=table),
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [from_us(k[3]) for k in keys],
        [deltas[k].count for k in keys],
        [deltas[k].estimated for k in keys],
    )
    return len(keys)


def _top(counts: dict[str, int]) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_EVENTS]
    return [{"event_name": name, "count": n} for name, n in ranked]


async def _apply_days(conn: Connection, days: dict[tuple[str, date], DayDelta]) -> int:
    keys = sorted(days)
    projects = [k[0] for k in keys]
    day_list = [k[1] for k in keys]
    stored = {(r[0], r[1]): r for r in await conn.fetch(_SELECT_DAYS, projects, day_list)}
    rows: list[list[Any]] = [[] for _ in range(5)]
    for key in keys:
        delta = days[key]
        old = stored.get(key)
        names: dict[str, int] = orjson.loads(old["event_counts"]) if old else {}
        sources: dict[str, int] = orjson.loads(old["sources"]) if old else {}
        for name, n in delta.names.items():
            names[name] = names.get(name, 0) + n
        for name, n in delta.sources.items():
            sources[name] = sources.get(name, 0) + n
        for column, value in zip(
            rows,
            (
                delta.count,
                delta.estimated,
                orjson.dumps(_top(names)).decode(),
                orjson.dumps(sources).decode(),
                orjson.dumps(names).decode(),
            ),
            strict=True,
        ):
            column.append(value)
    await conn.execute(_UPSERT_DAYS, projects, day_list, *rows)
    return len(keys)


async def apply_rollup(
    conn: Connection,
    rollup: Rollup,
    stats: StatsFold | None = None,
    members: Members | None = None,
) -> dict[str, int]:
    """Add a batch's counts to every aggregate table, and to the stats rollups (``stats``,
    folded from the same new rows) when given; the rows written per table.

    The batch's users, sessions and visitors go to ``members`` when given, for the caller
    to merge later (``analytics.storage.sketches.flush_members``); without it they are
    merged here. Call inside the batch's transaction, under ``lock_projects`` of every
    project in it.
    """
    written: dict[str, int] = {}
    for table in GRAINS:
        deltas = rollup.grains[table]
        if deltas:
            written[table] = await _apply_grain(conn, table, deltas)
    if rollup.days:
        written["project_daily_summary"] = await _apply_days(conn, rollup.days)
    waiting = Members() if members is None else members
    waiting.add_rollup(rollup)
    if stats is not None:
        hourly, daily = stats.stats()
        written.update(await apply_stats_counts(conn, hourly, daily))
        waiting.add_stats(hourly, daily)
    if members is None:
        await merge_members(conn, waiting)
    return written


async def record_flush(conn: Connection, written: dict[str, int]) -> None:
    """Note the last flush per table (outside the batch transaction: no shared row lock).

    Committed without waiting for its WAL flush (``synchronous_commit`` off for this one
    transaction): it is a monitoring note, and a crash can at most lose its last update,
    while waiting would cost every batch a second fsync.
    """
    now = datetime.now(UTC)
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit TO off")
        await conn.executemany(
            "INSERT INTO flush_log (table_name, flushed_at, rows_written) VALUES ($1, $2, $3)"
            " ON CONFLICT (table_name) DO UPDATE SET flushed_at = EXCLUDED.flushed_at,"
            " rows_written = flush_log.rows_written + EXCLUDED.rows_written",
            [(table, now, n) for table, n in written.items()],
        )


_RAW_FOR_DAY = f"""
SELECT {RAW_COLUMNS}
FROM events e JOIN event_sources s ON s.id = e.event_source_id
WHERE e.project_id = $1 AND e."timestamp" >= $2 AND e."timestamp" < $3
"""


async def rebuild_day(conn: Connection, project_id: str, day: date) -> int:
    """Recompute one project's aggregates and stats rollups for one UTC day from its raw
    events, and the visits of every session with an event that day (from all of its events).

    Runs in one transaction under the project's lock, so the live path waits
    and then adds its next batch on top of the rebuilt rows: nothing is lost
    or counted twice while both run.
    """
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    async with conn.transaction():
        await lock_projects(conn, [project_id])
        for table in GRAINS:
            await conn.execute(
                f"DELETE FROM {table} WHERE project_id = $1"
                " AND bucket_start >= $2 AND bucket_start < $3",
                project_id,
                start,
                end,
            )
        await conn.execute(
            "DELETE FROM project_daily_summary WHERE project_id = $1 AND day = $2", project_id, day
        )
        await delete_stats(conn, project_id, start, end)
        rollup = Rollup()
        stats = StatsFold()
        total = 0
        cursor = conn.cursor(_RAW_FOR_DAY, project_id, start, end, prefetch=5000)
        chunk: list[tuple[EventRow, tuple[Any, ...]]] = []
        async for record in cursor:
            chunk.append(raw_pair(record))
            if len(chunk) >= 5000:
                total += _fold_day(rollup, stats, chunk)
                chunk = []
        total += _fold_day(rollup, stats, chunk)
        if total:
            await apply_rollup(conn, rollup, stats)
        await rebuild_visits(conn, project_id, start, end)
    return total


def _fold_day(
    rollup: Rollup, stats: StatsFold, chunk: list[tuple[EventRow, tuple[Any, ...]]]
) -> int:
    rollup.add(row for row, _ in chunk)
    stats.add(chunk)
    return len(chunk)


async def days_with_events(
    conn: Connection, start: datetime, end: datetime, project_id: str | None
) -> list[tuple[str, date]]:
    """(project, day) pairs that have raw events or aggregates in [start, end)."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT project_id, ("timestamp" AT TIME ZONE 'UTC')::date AS day FROM events
        WHERE "timestamp" >= $1 AND "timestamp" < $2 AND ($3::text IS NULL OR project_id = $3)
        UNION
        SELECT DISTINCT project_id, day FROM project_daily_summary
        WHERE day >= ($1 AT TIME ZONE 'UTC')::date AND day < ($2 AT TIME ZONE 'UTC')::date
          AND ($3::text IS NULL OR project_id = $3)
        ORDER BY 1, 2
        """,
        start,
        end,
        project_id,
    )
    return [(r[0], r[1]) for r in rows]
