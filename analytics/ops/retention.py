"""Retention (``analytics cleanup-events``): raw events, ledger rows and aggregates past policy.

Policy per project, from ``projects.settings`` (SPEC §5): ``retention_days`` for raw events
(default 90) and ``aggregate_retention_days`` for aggregate rows (default 730). Cutoffs are
whole UTC days: with N days, today and the N days before it are kept and everything before
00:00 UTC of (today - N) goes, so a dry run and the real run of the same day agree.

Raw events live in one partition per UTC day. A day older than the *longest* raw retention
of all projects holds nothing any project keeps, so its partition is dropped whole: the
normal path, no row deletes, no vacuum. A younger day past a shorter retention has only the
expired projects' rows deleted. Only that rule drops partitions (not "no other project has
rows there"): a day another project still keeps may yet receive that project's late events.
With ``--project`` a droppable partition is dropped only when it holds nothing but that
project's rows; otherwise its rows are deleted and the other projects' are left alone.

Ledger rows (``event_ids``) go after the events of the same cutoff: a crash in between leaves
ledger rows the next run removes, never a kept event without its ledger row (which would let
a replay store it twice). Once its ledger row is gone, a replay of an expired event is stored
again and removed again by the next run. Aggregate rows (the stats rollups too) are removed
under the project's writer lock, so a sink batch of late events never interleaves with the
delete; visits go with the raw events, in the same locked step: a visit that started before
the raw cutoff is removed whole.

``plan`` lists the steps; ``run_step`` executes one, or in a dry run counts the rows of the
same predicate, so a dry run reports exactly what the real run removes if nothing is
written in between.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from analytics.counting.rollup import GRAINS
from analytics.projects.policy import ProjectSettings
from analytics.storage.locks import lock_projects

if TYPE_CHECKING:
    from analytics.storage import Connection

# The defaults are the project settings' own (one home: analytics.projects.policy).
DEFAULT_RETENTION_DAYS: int = ProjectSettings.model_fields["retention_days"].default
DEFAULT_AGGREGATE_RETENTION_DAYS: int = ProjectSettings.model_fields[
    "aggregate_retention_days"
].default
# Longer settings mean "keep for ever" and are clamped to this (100 years), which keeps
# the date arithmetic far from its limits.
MAX_RETENTION_DAYS = 36_500

# A DROP waits for the parent table's exclusive lock, and every insert queues behind a
# waiting DROP: give up after this rather than stall the sink (run cleanup again later).
LOCK_TIMEOUT = "5s"
_CLEANUP_LOCK = 0x5A_0002

# Tables in the order of the report; "events" counts rows of dropped partitions too.
TABLES = (
    "events",
    "event_ids",
    "visits",
    *GRAINS,
    "project_daily_summary",
    "stats_hourly",
    "stats_daily",
)

# Tables cleaned under the project's writer lock: (table, time column, follows raw events).
# The stats rollups are aggregates and keep their retention; visits go with raw events.
_LOCKED_TABLES = (
    *((table, "bucket_start", False) for table in GRAINS),
    ("project_daily_summary", "day", False),
    ("stats_hourly", "bucket_start", False),
    ("stats_daily", "day", False),
    ("visits", "started_at", True),
)

_PARTITION_NAME = re.compile(r"^events_(\d{8})$")

_PARTITIONS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass
"""


class RetentionError(Exception):
    """Cleanup cannot run as asked; the message tells the operator what to fix."""


@dataclass(slots=True, frozen=True)
class Retention:
    """One project's retention, in whole days."""

    project_id: str
    raw_days: int
    aggregate_days: int

    def raw_cutoff(self, today: date) -> date:
        """Raw events before 00:00 UTC of this day are expired."""
        return today - timedelta(days=self.raw_days)

    def aggregate_cutoff(self, today: date) -> date:
        """Aggregate buckets before 00:00 UTC of this day are expired."""
        return today - timedelta(days=self.aggregate_days)


@dataclass(slots=True, frozen=True)
class PartitionStep:
    """One day partition: dropped whole, or the listed projects' rows deleted from it."""

    partition: str
    day: date
    drop: bool
    projects: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.partition if self.drop else f"{self.partition} ({len(self.projects)} proj)"


@dataclass(slots=True, frozen=True)
class ProjectStep:
    """One project's ledger rows and aggregate rows before its cutoffs."""

    project_id: str
    raw_cutoff: date
    aggregate_cutoff: date

    def describe(self) -> str:
        return f"project {self.project_id[:8]}"


Step = PartitionStep | ProjectStep


@dataclass(slots=True)
class Report:
    """What a run removed, or in a dry run would remove."""

    dry_run: bool
    dropped_partitions: list[str] = field(default_factory=list)
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "dropped_partitions": list(self.dropped_partitions),
            "deleted": dict(self.deleted),
        }


def _days(raw: str | None, key: str, project_id: str, default: int) -> int:
    """A retention setting (jsonb text) as whole days; absent means ``default``."""
    if raw is None:
        return default
    value = orjson.loads(raw)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RetentionError(
            f"project {project_id}: settings.{key} is {raw}, expected a whole number of days"
            " (at least 1); fix the setting (nothing was removed)"
        )
    return min(value, MAX_RETENTION_DAYS)


async def load_policies(conn: Connection) -> list[Retention]:
    """Every project's policy (all of them: the longest raw retention decides partition drops).

    Raises ``RetentionError`` for a setting that is not a sensible number of days: guessing
    a default there could delete data the operator meant to keep.
    """
    rows = await conn.fetch(
        "SELECT id, settings->'retention_days', settings->'aggregate_retention_days'"
        " FROM projects ORDER BY id"
    )
    return [
        Retention(
            r[0],
            _days(r[1], "retention_days", r[0], DEFAULT_RETENTION_DAYS),
            _days(r[2], "aggregate_retention_days", r[0], DEFAULT_AGGREGATE_RETENTION_DAYS),
        )
        for r in rows
    ]


async def list_partitions(conn: Connection) -> list[tuple[str, date]]:
    """The day partitions of ``events`` (name, day), oldest first; other names are skipped."""
    found: list[tuple[str, date]] = []
    for row in await conn.fetch(_PARTITIONS):
        match = _PARTITION_NAME.match(row[0])
        if match is None:
            continue
        try:
            day = datetime.strptime(match.group(1), "%Y%m%d").date()
        except ValueError:
            continue
        found.append((row[0], day))
    return sorted(found, key=lambda item: item[1])


def plan_partitions(
    partitions: Sequence[tuple[str, date]],
    policies: Sequence[Retention],
    today: date,
    project_id: str | None = None,
) -> list[PartitionStep]:
    """Partition steps for ``today``: drop days past every project's retention, else delete.

    With ``project_id`` only that project's rows are considered; its droppable days come back
    with ``drop=True`` and the caller must check that no other project has rows there.
    """
    longest = max((p.raw_days for p in policies), default=DEFAULT_RETENTION_DAYS)
    droppable_before = today - timedelta(days=longest)
    chosen = [p for p in policies if project_id is None or p.project_id == project_id]
    steps: list[PartitionStep] = []
    for name, day in partitions:
        expired = tuple(p.project_id for p in chosen if day < p.raw_cutoff(today))
        if not expired:
            continue
        if day < droppable_before:
            steps.append(PartitionStep(name, day, drop=True, projects=expired))
        else:
            steps.append(PartitionStep(name, day, drop=False, projects=expired))
    return steps


async def plan(conn: Connection, today: date, project_id: str | None = None) -> list[Step]:
    """Every step of a cleanup on ``today`` (a UTC date), optionally for one project."""
    policies = await load_policies(conn)
    if project_id is not None and all(p.project_id != project_id for p in policies):
        raise RetentionError(f"no project with id {project_id!r}")
    partition_steps = plan_partitions(await list_partitions(conn), policies, today, project_id)
    steps: list[Step] = []
    for step in partition_steps:
        if step.drop and project_id is not None:
            others = await conn.fetchval(
                f'SELECT EXISTS (SELECT 1 FROM "{step.partition}" WHERE project_id <> $1)',
                project_id,
            )
            if others:
                step = PartitionStep(step.partition, step.day, drop=False, projects=step.projects)
        steps.append(step)
    steps.extend(
        ProjectStep(p.project_id, p.raw_cutoff(today), p.aggregate_cutoff(today))
        for p in policies
        if project_id is None or p.project_id == project_id
    )
    return steps


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


async def _remove(conn: Connection, table: str, where: str, *args: Any, dry_run: bool) -> int:
    """Delete the rows matching ``where``, or only count them in a dry run (same predicate)."""
    if dry_run:
        count = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
        return int(count)
    status = await conn.execute(f"DELETE FROM {table} WHERE {where}", *args)
    return int(status.rsplit(" ", 1)[1])


async def _run_partition(
    conn: Connection, step: PartitionStep, report: Report, *, dry_run: bool
) -> None:
    table = f'"{step.partition}"'
    try:
        rows = await _partition_rows(conn, step, table, dry_run=dry_run)
    except asyncpg.LockNotAvailableError as exc:
        raise RetentionError(
            f"{step.partition} stayed locked for {LOCK_TIMEOUT} (busy writers); it is unchanged,"
            " and so is everything after it: run cleanup-events again"
        ) from exc
    if step.drop:
        report.dropped_partitions.append(step.partition)
    report.deleted["events"] += rows


async def _partition_rows(
    conn: Connection, step: PartitionStep, table: str, *, dry_run: bool
) -> int:
    """Drop or delete in one transaction; returns the rows removed (or counted)."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if step.drop:
            rows = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            if not dry_run:
                await conn.execute(f"DROP TABLE {table}")
            return rows
        return await _remove(
            conn, table, "project_id = ANY($1::text[])", list(step.projects), dry_run=dry_run
        )


async def _run_project(
    conn: Connection, step: ProjectStep, report: Report, *, dry_run: bool
) -> None:
    report.deleted["event_ids"] += await _remove(
        conn,
        "event_ids",
        'project_id = $1 AND "timestamp" < $2',
        step.project_id,
        _midnight(step.raw_cutoff),
        dry_run=dry_run,
    )
    async with conn.transaction():
        if not dry_run:
            await lock_projects(conn, [step.project_id])
        for table, column, raw in _LOCKED_TABLES:
            cutoff = step.raw_cutoff if raw else step.aggregate_cutoff
            report.deleted[table] += await _remove(
                conn,
                table,
                f"project_id = $1 AND {column} < $2",
                step.project_id,
                cutoff if column == "day" else _midnight(cutoff),
                dry_run=dry_run,
            )


async def run_step(conn: Connection, step: Step, report: Report, *, dry_run: bool) -> None:
    """Execute one step (or count it in a dry run) and add what it removed to ``report``.

    Partition steps must run before the project steps of the same plan (``plan``'s order):
    ledger rows go only after their events.
    """
    if isinstance(step, PartitionStep):
        await _run_partition(conn, step, report, dry_run=dry_run)
    else:
        await _run_project(conn, step, report, dry_run=dry_run)


@asynccontextmanager
async def exclusive(conn: Connection) -> AsyncIterator[None]:
    """Hold the cleanup lock: two cleanups at once would race for the same partitions."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _CLEANUP_LOCK):
        raise RetentionError("another cleanup-events run holds the cleanup lock; try later")
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _CLEANUP_LOCK)
