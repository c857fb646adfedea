"""Writing raw events: COPY into a staging table, then one idempotent insert.

Idempotency: ``event_ids`` holds (project_id, event_id) once. The insert into
``events`` takes only the staged rows whose id was new to that ledger, in the
same statement, so a replayed or retried event (even one whose server-side
timestamp moved to another day) is stored once. The same transaction adds
exactly those new rows to the aggregates, the visits and the stats rollups
(``analytics.storage.aggregates``, ``analytics.storage.web_stats``), so raw rows
and what is derived from them can never disagree. ``aggregate=False`` stores the
raw rows only (benchmarks and bulk fixtures that do not read any of those).

Each row is enriched on the way in (``analytics.enrich``: page, referrer,
campaign, browser, country), and its ``ip_address`` is stored as the
project's ``ip_address_storage`` says, after the country was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from analytics.storage import Connection

import asyncpg

from analytics.counting.members import Members
from analytics.counting.rollup import Rollup
from analytics.counting.web_stats import StatsFold
from analytics.enrich.enricher import COLUMNS as ENRICHED
from analytics.enrich.enricher import Enricher, StoredFields
from analytics.enrich.geo import ip_prefix
from analytics.events.models import EventRow
from analytics.events.times import from_us
from analytics.storage.aggregates import apply_rollup
from analytics.storage.locks import lock_projects
from analytics.storage.web_stats import visits_upsert

_COLUMNS = (
    "event_id",
    "project_id",
    "event_source_id",
    "user_id",
    "session_id",
    "event_name",
    "properties",
    "timestamp",
    "sample_rate",
    "received_at",
    "ip_address",
    "user_agent",
    *ENRICHED,
)

_STAGING = "sa_staging_events3"
_STAGING_COLUMNS = (
    *_COLUMNS[:7],
    "ts_us",
    "sample_rate",
    "received_us",
    *_COLUMNS[10:12],
    "ip_prefix",
    *ENRICHED,
    "i",
)
_ENRICHED_AT = _STAGING_COLUMNS.index(ENRICHED[0])
_ENRICHED_END = _ENRICHED_AT + len(ENRICHED)
# Exact µs -> timestamptz in the server (cheaper than building datetimes in Python).
_US_TO_TS = "(TIMESTAMPTZ 'epoch' + {} * INTERVAL '1 microsecond')"

# sa_staging_events3: the columns changed (enrichment, then the row's place ``i``), and a
# pooled connection may still hold an older temp table under an older name.
_CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (
    event_id text, project_id text, event_source_id bigint, user_id text,
    session_id text, event_name text, properties text, ts_us bigint,
    sample_rate double precision, received_us bigint, ip_address text,
    user_agent text, ip_prefix text,
    hostname text, pathname text, referrer_domain text, referrer_source text,
    utm_source text, utm_medium text, utm_campaign text, utm_term text, utm_content text,
    browser text, browser_version text, os text, os_version text, device_type text,
    is_bot boolean, country_code text, i integer
) ON COMMIT DELETE ROWS
"""

_FRESH = f"""
WITH fresh AS (
    INSERT INTO event_ids (project_id, event_id, "timestamp")
    SELECT project_id, event_id, {_US_TO_TS.format("ts_us")} FROM {_STAGING}
    ON CONFLICT DO NOTHING
    RETURNING project_id, event_id
), new AS (
    SELECT s.*, {_US_TO_TS.format("s.ts_us")} AS ts
    FROM {_STAGING} s JOIN fresh USING (project_id, event_id)
), stored AS (
    INSERT INTO events ({", ".join(f'"{c}"' for c in _COLUMNS)})
    SELECT s.event_id, s.project_id, s.event_source_id, s.user_id, s.session_id, s.event_name,
           s.properties::jsonb, s.ts, s.sample_rate, {_US_TO_TS.format("s.received_us")},
           -- the project's ip_address_storage; the country was found from the whole address
           CASE COALESCE(p.settings ->> 'ip_address_storage', 'full')
               WHEN 'none' THEN NULL WHEN 'truncated' THEN s.ip_prefix ELSE s.ip_address END,
           s.user_agent, {", ".join(f"s.{c}" for c in ENRICHED)}
    FROM new s LEFT JOIN projects p ON p.id = s.project_id
)"""

# The raw rows only: which were new (their places in the batch, as one array).
_INSERT_NEW = f"{_FRESH}\nSELECT array_agg(i), 0 FROM new"

# The raw rows and their visits, in one statement: which were new, and the visits written.
_INSERT_NEW_AND_VISITS = f"""{_FRESH}, visited AS (
{visits_upsert("new")}
RETURNING 1
)
SELECT array_agg(i), (SELECT count(*) FROM visited) FROM new
"""


# The staged duplicates that are the stored event itself (a replay: same id, same time),
# whose members a crash may have kept from the sketches; a reused id at another time is not.
_STORED_AGAIN = f"""
SELECT array_agg(s.i)
FROM unnest($1::integer[]) AS d(i) JOIN {_STAGING} s USING (i)
JOIN event_ids e USING (project_id, event_id)
WHERE e."timestamp" = {_US_TO_TS.format("s.ts_us")}
"""


def _unique(rows: Sequence[EventRow]) -> list[EventRow]:
    """First occurrence of each (project_id, event_id) in a batch."""
    key = itemgetter(0, 1)  # project_id, event_id
    if len(set(map(key, rows))) == len(rows):
        return list(rows)  # the usual case, checked without a Python loop
    seen: set[tuple[str, str]] = set()
    out: list[EventRow] = []
    for row in rows:
        pair = key(row)
        if pair not in seen:
            seen.add(pair)
            out.append(row)
    return out


def copy_records(
    rows: Sequence[EventRow], enricher: Enricher | None = None
) -> list[tuple[Any, ...]]:
    """Rows as the staging table's COPY records (times stay integer µs), enriched, each
    ending with its place in ``rows``."""
    enriched = (enricher or default_enricher()).enrich(
        [StoredFields(r.properties, r.ip_address, r.user_agent) for r in rows]
    )
    return [
        (
            r.event_id,
            r.project_id,
            r.event_source_id,
            r.user_id,
            r.session_id,
            r.event_name,
            r.properties,
            r.timestamp_us,
            r.sample_rate,
            r.received_at_us,
            r.ip_address,
            r.user_agent,
            ip_prefix(r.ip_address),
            *extra,
            i,
        )
        for i, (r, extra) in enumerate(zip(rows, enriched, strict=True))
    ]


_DEFAULT: list[Enricher] = []


def default_enricher() -> Enricher:
    """A process-wide enricher without a GeoIP file (for writers not given one)."""
    if not _DEFAULT:
        _DEFAULT.append(Enricher())
    return _DEFAULT[0]


class PartitionCache:
    """Days whose partition is known to exist, so each is ensured once per process."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: set[date] = set()

    def forget(self) -> None:
        """Drop what is known (after partitions were dropped by retention)."""
        self._known.clear()

    async def ensure(self, conn: Connection, rows: Sequence[EventRow]) -> None:
        """Create any missing day partitions the rows fall into."""
        day_us = 86_400_000_000
        days = {row.timestamp_us // day_us for row in rows}
        for day_index in days:
            day = from_us(day_index * day_us).date()
            if day in self._known:
                continue
            await conn.execute("SELECT sa_ensure_partition($1)", day)
            self._known.add(day)


class Prepared(NamedTuple):
    """A batch ready for ``write_prepared``: its first occurrences and their COPY records
    (enriched). Preparing is pure Python, so a writer can prepare the next batch while
    PostgreSQL stores this one."""

    rows: list[EventRow]
    records: list[tuple[Any, ...]]


def prepare_events(rows: Sequence[EventRow], enricher: Enricher | None = None) -> Prepared:
    """Drop the batch's repeated ids and build its enriched COPY records."""
    batch = _unique(rows)
    return Prepared(batch, copy_records(batch, enricher) if batch else [])


async def write_events(
    conn: Connection,
    rows: Sequence[EventRow],
    partitions: PartitionCache,
    *,
    aggregate: bool = True,
    enricher: Enricher | None = None,
    members: Members | None = None,
) -> tuple[list[EventRow], dict[str, int]]:
    """Store the rows not stored before and add them to the aggregates, in one transaction.

    Returns the rows that were new and the aggregate rows written per table. With
    ``members``, the unique users, sessions and visitors are not merged into the sketches
    here but added to it, for the caller to flush; so are those of duplicates that are a
    replay of the stored event (same id and time), which a crash between this
    transaction and the flush would otherwise leave out.
    """
    return await write_prepared(
        conn, prepare_events(rows, enricher), partitions, aggregate=aggregate, members=members
    )


async def write_prepared(
    conn: Connection,
    prepared: Prepared,
    partitions: PartitionCache,
    *,
    aggregate: bool = True,
    members: Members | None = None,
) -> tuple[list[EventRow], dict[str, int]]:
    """``write_events`` of a batch already prepared (``prepare_events``)."""
    batch, records = prepared
    if not batch:
        return [], {}
    await partitions.ensure(conn, batch)
    # This batch's members join ``members`` only once its transaction committed: a batch
    # that fails (and may be dead-lettered) leaves no member behind.
    mine = None if members is None else Members()
    try:
        done = await _write(conn, batch, records, aggregate, mine)
    except asyncpg.CheckViolationError:
        # A day partition this process created was dropped since (retention):
        # forget what we knew, create what is missing, and try once more.
        partitions.forget()
        await partitions.ensure(conn, batch)
        mine = None if members is None else Members()
        done = await _write(conn, batch, records, aggregate, mine)
    if members is not None and mine is not None:
        members.update(mine)
    return done


async def _write(
    conn: Connection,
    batch: list[EventRow],
    records: list[tuple[Any, ...]],
    aggregate: bool,
    members: Members | None,
) -> tuple[list[EventRow], dict[str, int]]:
    written: dict[str, int] = {}
    async with conn.transaction():
        if aggregate:
            # First: the visits are written by the insert statement itself.
            await lock_projects(conn, {r.project_id for r in batch})
        await conn.execute(_CREATE_STAGING)
        await conn.copy_records_to_table(_STAGING, records=records, columns=_STAGING_COLUMNS)
        answer = await conn.fetchrow(_INSERT_NEW_AND_VISITS if aggregate else _INSERT_NEW)
        assert answer is not None  # an aggregate without GROUP BY: always one row
        places, visits = answer
        fresh_at = sorted(places or ())
        fresh = [batch[i] for i in fresh_at]
        if aggregate and fresh:
            if visits:
                written["visits"] = visits
            rollup = Rollup()
            rollup.add(fresh)
            # The stats need the enriched columns: the staged records hold them.
            stats = StatsFold()
            stats.add((batch[i], records[i][_ENRICHED_AT:_ENRICHED_END]) for i in fresh_at)
            written.update(await apply_rollup(conn, rollup, stats, members))
        if aggregate and members is not None and len(fresh) < len(batch):
            duplicates = sorted(set(range(len(batch))).difference(fresh_at))
            again = await conn.fetchval(_STORED_AGAIN, duplicates)
            if again:
                _add_members(members, [(batch[i], records[i]) for i in again])
    return fresh, written


def _add_members(members: Members, rows: list[tuple[EventRow, tuple[Any, ...]]]) -> None:
    """Hand the members of already stored events to ``members`` (their counts stand)."""
    rollup = Rollup()
    rollup.add(row for row, _ in rows)
    stats = StatsFold()
    stats.add((row, record[_ENRICHED_AT:_ENRICHED_END]) for row, record in rows)
    members.add_rollup(rollup)
    members.add_stats(*stats.stats())
