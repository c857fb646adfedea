"""Operator commands for running the stack: ``cleanup-events`` and ``event-status``.

Same conventions as ``analytics.cli.stack``: settings come from ``make_app``, the global
``--json`` flag prints one JSON document on stdout, progress and errors go to stderr.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

import click
import orjson
from faust.cli import option

from analytics.cli.output import emit
from analytics.ops import retention, status
from analytics.settings import Settings
from analytics.storage.migrate import connect


def _fail(command: Any, message: str) -> NoReturn:
    command.say(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _cleanup_text(report: retention.Report) -> str:
    verb = ("would drop", "would delete") if report.dry_run else ("dropped", "deleted")
    parts = report.dropped_partitions
    lines = [
        "dry run: nothing was changed" if report.dry_run else "retention applied",
        f"{verb[0]} {len(parts)} partition(s): {', '.join(parts) or '-'}",
        f"{verb[1]} rows: " + ", ".join(f"{t} {n:,}" for t, n in report.deleted.items()),
    ]
    return "\n".join(lines)


def _status_text(command: Any, result: status.Status) -> str:
    out = [
        command.tabulate(
            [(c.name, c.level.name, c.reason) for c in result.checks],
            headers=["check", "status", "reason"],
        )
    ]
    if result.buffer is not None:
        b = result.buffer
        age = "-" if b.oldest_age_seconds is None else f"{b.oldest_age_seconds:.0f} s"
        out.append(
            f"buffer {b.stream} (group {b.group}): {b.depth:,} entries, {b.pending:,} pending,"
            f" oldest {age}"
        )
    if result.kafka is not None:
        k = result.kafka
        out.append(f"kafka {k.topic} (group {k.group}): total lag {k.total_lag:,}")
    if result.kafka is not None and result.kafka.partitions:
        k = result.kafka
        rows = [
            (
                str(p.partition),
                "-" if p.committed is None else str(p.committed),
                str(p.end),
                str(p.lag),
            )
            for p in k.partitions
        ]
        out.append(command.tabulate(rows, headers=["partition", "committed", "end", "lag"]))
    if result.database is not None:
        db = result.database
        if db.flushes:
            out.append(
                command.tabulate(
                    [
                        (
                            f.table,
                            f.flushed_at.isoformat(),
                            f"{f.age_seconds:.0f} s",
                            f"{f.rows_written:,}",
                        )
                        for f in db.flushes
                    ],
                    headers=["table", "last flush", "age", "rows written"],
                )
            )
        sizes = [(t, _bytes(n)) for t, n in {**db.raw_bytes, **db.aggregate_bytes}.items()]
        out.append(command.tabulate(sizes, headers=["table", "size"]))
        out.append(
            f"raw {_bytes(sum(db.raw_bytes.values()))} in {db.partitions} day partition(s),"
            f" aggregates {_bytes(sum(db.aggregate_bytes.values()))}"
        )
    return "\n".join(out)


def register(app: Any, settings: Settings) -> None:
    """Attach ``cleanup-events`` and ``event-status`` to ``app``."""

    @app.command(
        option("--project", "project_id", default=None, help="Only this project."),
        option(
            "--dry-run", is_flag=True, default=False, help="Report what would go; change nothing."
        ),
    )
    async def cleanup_events(self: Any, project_id: str | None, dry_run: bool) -> None:
        """Apply retention: drop expired day partitions, delete expired rows and aggregates."""
        conn = await connect(
            settings.database_url, partitions_ahead_days=settings.partitions_ahead_days
        )
        try:
            report = retention.Report(dry_run=dry_run)
            today = datetime.now(UTC).date()
            try:
                async with retention.exclusive(conn):
                    steps = await retention.plan(conn, today, project_id)
                    with click.progressbar(
                        steps,
                        label="dry run" if dry_run else "cleaning up",
                        file=sys.stderr,
                        show_pos=True,
                        item_show_func=lambda step: step.describe() if step else "",
                    ) as bar:
                        for step in bar:
                            await retention.run_step(conn, step, report, dry_run=dry_run)
            except retention.RetentionError as exc:
                _fail(self, str(exc))
        finally:
            await conn.close()
        emit(self, report.as_dict(), _cleanup_text(report))

    @app.command()
    async def event_status(self: Any) -> None:
        """Health and processing statistics; exits 1 when any check fails."""
        result = await status.collect(settings)
        if self.json:
            self.say(orjson.dumps(result.as_dict(), default=str).decode())
        else:
            self.say(_status_text(self, result))
        if result.level is status.Level.FAIL:
            raise SystemExit(1)
