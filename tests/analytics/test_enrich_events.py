"""``analytics enrich-events`` fills the enriched columns of rows stored before enrichment."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from analytics.dev.processes import analytics_command
from analytics.enrich.enricher import COLUMNS
from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.ops.recount import mismatches
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)


def enrich_cli(settings: Settings, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        analytics_command("--json", "enrich-events", *args),
        env={**os.environ, **settings.as_environ()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = orjson.loads(result.stdout.strip().splitlines()[-1])
    return answer


async def test_old_rows_are_filled_once(
    db: asyncpg.Pool, settings: Settings, project: NewProject
) -> None:
    day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)
    props = orjson.dumps(
        {"url": "https://shop.example/p?utm_source=mail", "referrer": "https://t.co/x"}
    ).decode()
    async with db.acquire() as conn:
        source_id = await projects.resolve_source(conn, project.project_id, "web")
        rows = [
            EventRow(
                project.project_id,
                f"old-{i}",
                source_id,
                "web",
                "u",
                "s",
                "page_view",
                props,
                to_us(day) + i,
                1.0,
                to_us(day),
                "81.2.69.142",
                CHROME,
            )
            for i in range(3)
        ]
        await write_events(conn, rows, PartitionCache())
        # As if stored before migration 0006: every enriched column null. One row keeps
        # the country the worker found and has no address left (ip_address_storage none).
        await conn.execute(
            f"UPDATE events SET {', '.join(f'{c} = NULL' for c in COLUMNS)} WHERE project_id = $1",
            project.project_id,
        )
        await conn.execute(
            "UPDATE events SET ip_address = NULL, country_code = 'DE'"
            " WHERE project_id = $1 AND event_id = 'old-2'",
            project.project_id,
        )

    since = (day - timedelta(days=1)).date().isoformat()
    until = (day + timedelta(days=1)).date().isoformat()
    first = await asyncio.to_thread(
        enrich_cli, settings, "--from", since, "--to", until, "--project", project.project_id
    )
    assert first["events_changed"] == 3
    assert first["project_days"] == 1
    async with db.acquire() as conn:
        stored = {
            r["event_id"]: r
            for r in await conn.fetch(
                "SELECT * FROM events WHERE project_id = $1", project.project_id
            )
        }
    for event_id in ("old-0", "old-1"):
        r = stored[event_id]
        assert (r["hostname"], r["pathname"], r["utm_source"]) == ("shop.example", "/p", "mail")
        assert (r["referrer_domain"], r["referrer_source"]) == ("t.co", "mail")
        assert (r["browser"], r["os"], r["device_type"], r["is_bot"]) == (
            "Chrome",
            "Windows",
            "desktop",
            False,
        )
        assert r["country_code"] == "GB"
    assert stored["old-2"]["country_code"] == "DE"  # a value already there is kept
    assert stored["old-2"]["browser"] == "Chrome"
    # The visit and the stats rollups were rebuilt from the filled rows.
    async with db.acquire() as conn:
        visit = await conn.fetchrow(
            "SELECT entry_page, pageviews, utm_source, browser, country_code FROM visits"
            " WHERE project_id = $1",
            project.project_id,
        )
        pages = await conn.fetch(
            "SELECT value, pageviews FROM stats_daily WHERE project_id = $1 AND dimension = 'page'",
            project.project_id,
        )
    assert tuple(visit or ()) == ("/p", 3, "mail", "Chrome", "GB")
    assert [tuple(r) for r in pages] == [("/p", 3)]
    assert await mismatches(db, project.project_id) == []

    second = await asyncio.to_thread(
        enrich_cli, settings, "--from", since, "--to", until, "--project", project.project_id
    )
    assert second["events_changed"] == 0
