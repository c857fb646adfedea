"""Moving data out and in: ``export-events`` and ``import-events`` (SPEC §11).

``export-events`` writes exactly what ``GET /api/export/events/`` answers (the same
``analytics.transfer.events_file`` code), to ``--output`` (gzip when the name ends in
``.gz``) or stdout. ``import-events`` sends a file through the Redis buffer
(``analytics.transfer.importer``). Progress bars go to stderr, and only when stderr is
a terminal; the summary goes to stdout (one JSON document under ``--json``).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click
from faust.cli import argument, option

from analytics.cli.output import connect, emit
from analytics.errors import ImportFileError
from analytics.events.models import EventRow
from analytics.events.times import MAX_TIME, MIN_TIME, InvalidTime, parse_instant
from analytics.pipeline import buffer
from analytics.settings import Settings
from analytics.storage import exports, projects
from analytics.transfer.events_file import Format, export_chunks
from analytics.transfer.importer import (
    Importer,
    ImportFormat,
    ImportLimits,
    Rejection,
    numbered_lines,
    open_file,
    wait_for_room,
)

# Buffer entries (a thousand events each) an import lets wait for the workers.
MAX_BUFFERED_ENTRIES = 200


def _instant(text: str | None, default: datetime, name: str) -> datetime:
    if text is None:
        return default
    try:
        return parse_instant(text)
    except InvalidTime as exc:
        raise click.BadParameter(str(exc), param_hint=name) from exc


def _progress(length: int | None, label: str) -> Any:
    """A click progress bar on stderr when it is a terminal, else one that draws nothing."""
    if not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True)


def _advance(bar: Any) -> Callable[[int], None] | None:
    return None if bar is None else bar.update


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[bytes]]:
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    opener: Any = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as out:
        yield out


def register(app: Any, settings: Settings) -> None:
    """Attach ``export-events`` and ``import-events`` to ``app``."""

    @app.command(
        argument("project_id"),
        option("--from", "start", default=None, help="Start (ISO date/time, UTC), inclusive."),
        option("--to", "end", default=None, help="End (ISO date/time, UTC), exclusive."),
        option(
            "--format",
            "fmt",
            type=click.Choice([f.value for f in Format]),
            default=Format.NDJSON.value,
            help="ndjson (default) or csv.",
        ),
        option("--output", default=None, help="File to write (.gz: gzip); default stdout."),
    )
    async def export_events(
        self: Any, project_id: str, start: str | None, end: str | None, fmt: str, output: str | None
    ) -> None:
        """Export a project's raw events (every stored field) as NDJSON or CSV."""
        since = _instant(start, MIN_TIME, "--from")
        until = _instant(end, MAX_TIME, "--to")
        if until < since:
            raise click.BadParameter("--to is before --from", param_hint="--to")
        conn = await connect(settings)
        rows = 0
        try:
            if not await projects.project_exists(conn, project_id):
                raise click.ClickException(f"unknown project {project_id!r}")
            # Counting costs a scan of the range: only for a bar someone sees.
            total = (
                await exports.count_events(conn, project_id, since, until)
                if sys.stderr.isatty()
                else None
            )
            with _output(output) as out, _progress(total, "exporting") as bar:

                def counted(n: int) -> None:
                    nonlocal rows
                    rows += n
                    if bar is not None:
                        bar.update(n)

                chunks = export_chunks(
                    conn, project_id, since, until, Format(fmt), progress=counted
                )
                async with contextlib.aclosing(chunks):
                    async for chunk in chunks:
                        out.write(chunk)
        finally:
            await conn.close()
        if output is not None:
            emit(
                self,
                {"project_id": project_id, "events": rows, "format": fmt, "output": output},
                f"exported {rows:,} event(s) to {output}",
            )
        else:
            # stdout holds the export: the summary goes to stderr.
            self.say(f"exported {rows:,} event(s)", file=sys.stderr)

    @app.command(
        argument("project_id"),
        argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        option(
            "--format",
            "fmt",
            type=click.Choice([f.value for f in ImportFormat]),
            default=ImportFormat.NDJSON.value,
            help="ndjson (our export, default) or segment (a Segment/RudderStack archive).",
        ),
    )
    async def import_events(self: Any, project_id: str, file: Path, fmt: str) -> None:
        """Import events from our NDJSON export or a Segment archive (gzip or not)."""
        conn = await connect(settings)
        client = buffer.connect(settings.redis_url)
        writer = buffer.BufferWriter(client, settings.stream_key)

        async def append(rows: list[EventRow]) -> None:
            await wait_for_room(lambda: client.xlen(settings.stream_key), MAX_BUFFERED_ENTRIES)
            await writer.append(rows)

        def rejected(rejection: Rejection) -> None:
            self.say(f"rejected {rejection.describe()}", file=sys.stderr)

        raw, reader = open_file(file)
        importer = Importer(
            conn,
            project_id,
            ImportFormat(fmt),
            append,
            ImportLimits(
                max_properties_bytes=settings.max_properties_bytes,
                max_properties_depth=settings.max_properties_depth,
                future_tolerance_us=settings.future_tolerance_seconds * 1_000_000,
            ),
            report_line=rejected,
        )
        try:
            with _progress(os.fstat(raw.fileno()).st_size, "importing") as bar:
                seen = 0

                def moved() -> None:
                    nonlocal seen
                    if bar is not None:
                        position = raw.tell()
                        bar.update(position - seen)
                        seen = position

                report = await importer.run(numbered_lines(reader), moved)
        except ImportFileError as exc:
            raise click.ClickException(f"{file}: {exc.detail}") from exc
        finally:
            reader.close()
            raw.close()
            await client.aclose()
            await conn.close()
        emit(
            self,
            {"project_id": project_id, "file": str(file), "format": fmt, **report.as_dict()},
            f"{file}: {report.accepted:,} accepted, {report.duplicate:,} duplicate,"
            f" {report.rejected:,} rejected",
        )
