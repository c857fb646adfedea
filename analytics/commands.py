"""Operator commands on the faust CLI (``analytics COMMAND`` or ``faust -A analytics.app COMMAND``).

Every command reads the same settings as the stack and honours faust's
global ``--json`` flag with one JSON document on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import click
import orjson
from faust.cli import argument, option

from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.migrate import ensure_database
from analytics.storage.migrate import migrate as apply_migrations


async def connect(settings: Settings) -> asyncpg.Connection:
    """A connection to the configured database, created and migrated if needed."""
    await ensure_database(settings.database_url)
    conn: asyncpg.Connection = await asyncpg.connect(settings.database_url)
    await apply_migrations(conn, partitions_ahead_days=settings.partitions_ahead_days)
    return conn


def emit(command: Any, data: Any, text: str) -> None:
    """Print ``data`` as one JSON document under faust's ``--json``, else ``text``."""
    if command.json:
        command.say(orjson.dumps(data, default=str).decode())
    else:
        command.say(text)


def _day_range(start: str, end: str) -> tuple[datetime, datetime]:
    """Whole UTC days covering [start, end)."""
    try:
        since = datetime.fromisoformat(start)
        until = datetime.fromisoformat(end)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 date: {exc}") from exc
    since = since.replace(tzinfo=since.tzinfo or UTC).astimezone(UTC)
    until = until.replace(tzinfo=until.tzinfo or UTC).astimezone(UTC)
    if until <= since:
        raise click.BadParameter("--to must be after --from")
    floor = since.replace(hour=0, minute=0, second=0, microsecond=0)
    ceil = until.replace(hour=0, minute=0, second=0, microsecond=0)
    if ceil < until:
        ceil += timedelta(days=1)
    return floor, ceil


def register(app: Any, settings: Settings) -> None:
    """Attach the commands to ``app``."""

    @app.command()
    async def migrate(self: Any) -> None:
        """Apply pending schema migrations and create upcoming partitions."""
        await ensure_database(settings.database_url)
        conn = await asyncpg.connect(settings.database_url)
        try:
            applied = await apply_migrations(
                conn, partitions_ahead_days=settings.partitions_ahead_days
            )
        finally:
            await conn.close()
        emit(
            self,
            {"applied": applied},
            f"applied {len(applied)} migration(s): {', '.join(applied) or '-'}",
        )

    @app.command(argument("name"))
    async def create_project(self: Any, name: str) -> None:
        """Create a project and print its id, public key and private key (shown once)."""
        conn = await connect(settings)
        try:
            project = await projects.create_project(conn, name)
        finally:
            await conn.close()
        emit(
            self,
            {
                "project_id": project.project_id,
                "name": project.name,
                "public_key": project.public_key,
                "private_key": project.private_key,
            },
            f"project_id:  {project.project_id}\n"
            f"name:        {project.name}\n"
            f"public_key:  {project.public_key}   (ingest only)\n"
            f"private_key: {project.private_key}   (dashboard only; store it now)",
        )

    @app.command()
    async def list_projects(self: Any) -> None:
        """List projects."""
        conn = await connect(settings)
        try:
            rows = await projects.list_projects(conn)
        finally:
            await conn.close()
        data = [
            {"project_id": r["id"], "name": r["name"], "created_at": r["created_at"]} for r in rows
        ]
        if self.json:
            self.say(orjson.dumps(data, default=str).decode())
        else:
            self.say(
                self.tabulate(
                    [(d["project_id"], d["name"], str(d["created_at"])) for d in data],
                    headers=["project_id", "name", "created_at"],
                )
            )

    @app.command(
        option("--once", is_flag=True, default=False, help="Drain the buffer once and exit."),
    )
    async def process_events(self: Any, once: bool) -> None:
        """Run the bridge (Redis Stream -> Kafka): continuously, or drain once with --once."""
        from agents.bridge import make_bridge
        from analytics.kafka import ensure_topic

        await ensure_topic(settings.kafka_broker, settings.events_topic, settings.topic_partitions)
        bridge, producer = make_bridge(settings)
        await producer.start()
        try:
            if once:
                sent = await bridge.run_once()
                emit(self, {"events_forwarded": sent}, f"forwarded {sent} event(s) to Kafka")
            else:
                self.say(f"bridging {settings.stream_key} -> {settings.events_topic}; Ctrl-C stops")
                with contextlib.suppress(asyncio.CancelledError):
                    await bridge.run()
        finally:
            await producer.stop()
            await bridge.redis.aclose()

    @app.command(
        option("--from", "start", required=True, help="Start (ISO date/time, UTC), inclusive."),
        option("--to", "end", required=True, help="End (ISO date/time, UTC), exclusive."),
        option("--project", "project_id", default=None, help="Only this project."),
    )
    async def aggregate_events(self: Any, start: str, end: str, project_id: str | None) -> None:
        """Rebuild the aggregate tables from raw events for whole UTC days in a range."""
        from analytics.storage.aggregates import days_with_events, rebuild_day

        since, until = _day_range(start, end)
        conn = await connect(settings)
        try:
            work = await days_with_events(conn, since, until, project_id)
            total = 0
            with click.progressbar(
                work,
                label="rebuilding",
                file=sys.stderr,
                show_pos=True,
                item_show_func=lambda item: f"{item[0][:8]} {item[1]}" if item else "",
            ) as bar:
                for project, day in bar:
                    total += await rebuild_day(conn, project, day)
        finally:
            await conn.close()
        emit(
            self,
            {"project_days": len(work), "events": total, "from": since, "to": until},
            f"rebuilt {len(work)} project-day(s) from {total} raw event(s)",
        )

    @app.command()
    async def edge(self: Any) -> None:
        """Serve the HTTP edge (ingest and dashboard API) until interrupted."""
        from web.app import serve_edge

        await serve_edge(settings)
