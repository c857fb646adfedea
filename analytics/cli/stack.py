"""Pipeline commands: migrate, process-events (the bridge), aggregate-events (rebuild),
enrich-events (fill the enriched columns of older rows).

Every command reads the same settings as the stack and honours faust's
global ``--json`` flag with one JSON document on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import datetime, timedelta
from typing import Any

import click
from faust.cli import option

from analytics.cli.output import connect, emit
from analytics.events.times import InvalidTime, parse_instant
from analytics.pipeline.bridge import make_bridge
from analytics.pipeline.kafka import ensure_topic
from analytics.settings import Settings
from analytics.storage.migrate import prepare_database


def _day_range(start: str, end: str) -> tuple[datetime, datetime]:
    """Whole UTC days covering [start, end)."""
    try:
        since = parse_instant(start)
        until = parse_instant(end)
    except InvalidTime as exc:
        raise click.BadParameter(str(exc)) from exc
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
        applied = await prepare_database(
            settings.database_url, partitions_ahead_days=settings.partitions_ahead_days
        )
        emit(
            self,
            {"applied": applied},
            f"applied {len(applied)} migration(s): {', '.join(applied) or '-'}",
        )

    @app.command(
        option("--once", is_flag=True, default=False, help="Drain the buffer once and exit."),
    )
    async def process_events(self: Any, once: bool) -> None:
        """Run the bridge (Redis Stream -> Kafka): continuously, or drain once with --once."""
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
            await bridge.close()

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

    @app.command(
        option("--from", "start", required=True, help="Start (ISO date/time, UTC), inclusive."),
        option("--to", "end", required=True, help="End (ISO date/time, UTC), exclusive."),
        option("--project", "project_id", default=None, help="Only this project."),
    )
    async def enrich_events(self: Any, start: str, end: str, project_id: str | None) -> None:
        """Fill the enriched columns (page, referrer, browser, country) of stored events.

        Whole UTC days in the range; only null columns are filled, so a second
        run changes nothing. A day whose events changed has its aggregates, stats
        rollups and visits rebuilt from the filled rows.
        """
        from analytics.enrich.enricher import Enricher
        from analytics.storage.aggregates import days_with_events, rebuild_day
        from analytics.storage.enrichment import enrich_day

        since, until = _day_range(start, end)
        enricher = Enricher(settings.geoip_database)
        conn = await connect(settings)
        try:
            work = await days_with_events(conn, since, until, project_id)
            total = 0
            with click.progressbar(
                work,
                label="enriching",
                file=sys.stderr,
                show_pos=True,
                item_show_func=lambda item: f"{item[0][:8]} {item[1]}" if item else "",
            ) as bar:
                for project, day in bar:
                    changed = await enrich_day(conn, enricher, project, day)
                    if changed:
                        # visits and stats rollups read the enriched columns: rebuild them
                        await rebuild_day(conn, project, day)
                    total += changed
        finally:
            await conn.close()
            enricher.close()
        emit(
            self,
            {"project_days": len(work), "events_changed": total, "from": since, "to": until},
            f"enriched {total} event(s) in {len(work)} project-day(s)",
        )
