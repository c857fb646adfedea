"""What the export and import tests share: a project filled with known events, the CLI.

``fill`` stores events as the sink does (``write_events``, aggregates included): late
ones months back, several sources and days, a sampled one, and properties holding
quotes, commas, line breaks and non-ASCII text, the cases a CSV writer gets wrong.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from analytics.dev.processes import analytics_command
from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.settings import Settings
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import resolve_source

NOW = datetime.now(UTC).replace(microsecond=123456)
TRICKY = {"text": 'He said "hi", then left.\nNext line\r\nend', "name": "Zoë 東京 ✓", "n": 1.5}


async def fill(db: asyncpg.Pool, project_id: str, count: int = 40) -> list[EventRow]:
    """``count`` known events in the project, stored with their aggregates."""
    rows: list[EventRow] = []
    async with db.acquire() as conn:
        sources = {name: await resolve_source(conn, project_id, name) for name in ("web", "ios")}
        for i in range(count):
            # Late events: some months back, some days back, some minutes back.
            age = [timedelta(days=95, hours=i), timedelta(days=2, minutes=i), timedelta(minutes=i)]
            moment = NOW - age[i % 3]
            source = "web" if i % 2 else "ios"
            rows.append(
                EventRow(
                    project_id=project_id,
                    event_id=f"ev-{i:04d}",
                    event_source_id=sources[source],
                    event_source=source,
                    user_id=f"user-{i % 7}",
                    session_id=f"sess-{i % 11}",
                    event_name=("page_view", "signup", "click")[i % 3],
                    properties=orjson.dumps({"i": i, **(TRICKY if i % 4 == 0 else {})}).decode(),
                    timestamp_us=to_us(moment),
                    sample_rate=0.5 if i % 10 == 0 else 1.0,
                    received_at_us=to_us(moment + timedelta(seconds=1)),
                    ip_address=None if i % 5 == 0 else f"203.0.113.{i}",
                    user_agent=None if i % 6 == 0 else "Mozilla/5.0 (X11; Linux) Firefox/120.0",
                )
            )
        await write_events(conn, rows, PartitionCache())
    return rows


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``analytics ARGS`` as an operator runs it, for this stack's settings."""
    return subprocess.run(
        analytics_command(*args),
        env={**os.environ, **settings.as_environ()},
        capture_output=True,
        timeout=300,
    )


async def cli_json(settings: Settings, *args: str) -> Any:
    """``analytics --json ARGS``: its JSON summary (the last line of stdout); it must succeed."""
    result = await asyncio.to_thread(run_cli, settings, "--json", *args)
    assert result.returncode == 0, result.stderr.decode()
    return orjson.loads(result.stdout.strip().splitlines()[-1])


# Per project by construction: the project's id and its own source ids.
PROJECT_SPECIFIC = ("project_id", "event_source_id")


async def raw_rows(db: asyncpg.Pool, project_id: str) -> list[dict[str, Any]]:
    """The project's events, every column with the source's name, minus project-specific ids."""
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT e.*, s.name AS event_source FROM events e JOIN event_sources s"
            " ON s.id = e.event_source_id WHERE e.project_id = $1 ORDER BY e.event_id",
            project_id,
        )
    return [{k: v for k, v in dict(r).items() if k not in PROJECT_SPECIFIC} for r in rows]


async def aggregates(db: asyncpg.Pool, project_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every aggregate table's figures for the project (no ids, sketches or write times)."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with db.acquire() as conn:
        for table in ("agg_5min", "agg_hourly", "agg_daily"):
            rows = await conn.fetch(
                "SELECT event_source, event_name, bucket_start, event_count, estimated_count,"
                f" unique_users, unique_sessions FROM {table} WHERE project_id = $1"
                " ORDER BY bucket_start, event_source, event_name",
                project_id,
            )
            found[table] = [tuple(r) for r in rows]
        rows = await conn.fetch(
            "SELECT day, total_events, estimated_events, unique_users, unique_sessions,"
            " top_events, sources, event_counts FROM project_daily_summary"
            " WHERE project_id = $1 ORDER BY day",
            project_id,
        )
        found["project_daily_summary"] = [tuple(r) for r in rows]
    return found
