"""Dead-letter commands: ``list-dead-letters``, ``replay-dead-letters``, ``discard-dead-letter``.

The logic is ``analytics.ops.dead_letters`` (the admin view uses it too); these only parse,
connect and print. Same conventions as the other commands: global ``--json``.
"""

from __future__ import annotations

from typing import Any

import click
from faust.cli import argument, option

from analytics.cli.output import connect, emit
from analytics.ops import dead_letters
from analytics.pipeline import buffer
from analytics.settings import Settings


def register(app: Any, settings: Settings) -> None:
    """Attach the dead-letter commands to ``app``."""

    @app.command(
        option(
            "--all",
            "include_closed",
            is_flag=True,
            default=False,
            help="Include replayed and discarded ones.",
        ),
        option("--limit", type=int, default=100, show_default=True),
    )
    async def list_dead_letters(self: Any, include_closed: bool, limit: int) -> None:
        """List events the database refused, newest first, with the error and the record."""
        conn = await connect(settings)
        try:
            letters = await dead_letters.list_dead_letters(
                conn, include_closed=include_closed, limit=limit
            )
        finally:
            await conn.close()
        rows = [
            (str(d.id), d.state, d.at.isoformat(), d.project_id or "-", d.event_id or "-", d.error)
            for d in letters
        ]
        emit(
            self,
            [d.as_dict() for d in letters],
            self.tabulate(rows, headers=["id", "state", "at", "project", "event_id", "error"])
            if rows
            else "no dead letters",
        )

    @app.command(
        argument("ids", nargs=-1, type=int),
        option("--all", "replay_all", is_flag=True, default=False, help="Every open one."),
    )
    async def replay_dead_letters(self: Any, ids: tuple[int, ...], replay_all: bool) -> None:
        """Send dead letters through the pipeline again (by id, or --all open ones)."""
        if bool(ids) == replay_all:
            raise click.UsageError("give dead-letter ids or --all (not both)")
        conn = await connect(settings)
        redis = buffer.connect(settings.redis_url)
        try:
            done = await dead_letters.replay(
                conn, redis, settings.stream_key, None if replay_all else list(ids), actor="cli"
            )
        finally:
            await redis.aclose()
            await conn.close()
        missing = sorted(set(ids) - set(done))
        emit(
            self,
            {"replayed": done, "not_open": missing},
            f"replayed {len(done)} dead letter(s)"
            + (f"; not open (unknown, replayed or discarded): {missing}" if missing else ""),
        )

    @app.command(argument("dead_letter_id", type=int))
    async def discard_dead_letter(self: Any, dead_letter_id: int) -> None:
        """Mark one dead letter discarded: kept for the record, no longer offered for replay."""
        conn = await connect(settings)
        try:
            done = await dead_letters.discard(conn, dead_letter_id, actor="cli")
        finally:
            await conn.close()
        if not done:
            raise click.ClickException(
                f"dead letter {dead_letter_id} is not open (unknown, replayed or discarded)"
            )
        emit(self, {"discarded": dead_letter_id}, f"discarded dead letter {dead_letter_id}")
