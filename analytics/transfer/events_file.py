"""The raw-event export: which columns, in what order, and how a row is written.

One implementation for ``GET /api/export/events/`` and ``analytics export-events``:
both iterate :func:`export_chunks`, which reads through a server-side cursor and
yields encoded bytes a few hundred rows at a time, so memory does not grow with the
export.

Columns: every column of ``events`` plus ``event_source`` (the source's name), in
:data:`LEADING_COLUMNS` order for the ones known here, then any other column of the
table sorted by name. So the enrichment columns of SPEC §10 take their documented
places as soon as the migration that adds them is applied, and a column nobody
listed yet still appears, at the end.

Values: times as ISO 8601 UTC with microseconds (``2024-01-31T12:00:00.000000Z``);
``properties`` as its JSON object (NDJSON) or JSON text (CSV). CSV follows RFC 4180
(``\\r\\n`` line ends, fields quoted when they hold a quote, comma or line break); a
null is an empty field and a boolean is ``true`` / ``false``.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from analytics.enrich.enricher import COLUMNS as ENRICHED
from analytics.storage import exports

if TYPE_CHECKING:
    from analytics.storage import Connection


LEADING_COLUMNS = (
    "event_id",
    "project_id",
    "event_source_id",
    "event_source",
    "user_id",
    "session_id",
    "event_name",
    "properties",
    "timestamp",
    "sample_rate",
    "received_at",
    "ip_address",
    "user_agent",
    # SPEC §10 enrichment, in the order the worker writes it.
    *ENRICHED,
)

# Columns holding JSON text: written as JSON, not as a string, in NDJSON.
JSON_COLUMNS = frozenset({"properties"})


class Format(enum.StrEnum):
    """An export file's format."""

    NDJSON = "ndjson"
    CSV = "csv"

    @property
    def media_type(self) -> str:
        return "application/x-ndjson" if self is Format.NDJSON else "text/csv"


def export_columns(table_columns: Iterable[str]) -> tuple[str, ...]:
    """The export's column order for a table that has ``table_columns``."""
    present = set(table_columns) | {exports.SOURCE_NAME}
    leading = tuple(c for c in LEADING_COLUMNS if c in present)
    return leading + tuple(sorted(present - set(leading)))


def iso(moment: datetime) -> str:
    """An instant as the export writes it: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _json_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in JSON_COLUMNS and isinstance(value, str):
        return orjson.Fragment(value)  # already JSON text in the database: never re-parsed
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def csv_value(value: Any) -> str:
    """A value as a CSV field: empty for null, ``true``/``false``, ISO times."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


class RowWriter:
    """Encodes rows of the export's columns into one format."""

    __slots__ = ("_columns", "_format")

    def __init__(self, fmt: Format, columns: Sequence[str]) -> None:
        self._format = fmt
        self._columns = tuple(columns)

    def header(self) -> bytes:
        """What the file starts with: the CSV header line, nothing for NDJSON."""
        if self._format is Format.NDJSON:
            return b""
        return self._csv([self._columns])

    def encode(self, rows: Sequence[asyncpg.Record | dict[str, Any]]) -> bytes:
        """The rows, one line (NDJSON) or record (CSV) each."""
        cols = self._columns
        if self._format is Format.CSV:
            return self._csv([csv_value(row[c]) for c in cols] for row in rows)
        return b"".join(
            orjson.dumps(
                {c: _json_value(c, row[c]) for c in cols}, option=orjson.OPT_APPEND_NEWLINE
            )
            for row in rows
        )

    @staticmethod
    def _csv(records: Iterable[Sequence[str]]) -> bytes:
        out = io.StringIO()
        csv.writer(out).writerows(records)
        return out.getvalue().encode()


async def export_chunks(
    conn: Connection,
    project_id: str,
    start: datetime,
    end: datetime,
    fmt: Format,
    *,
    rows_per_chunk: int = 500,
    progress: Callable[[int], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The export of the project's events in [start, end) as encoded chunks.

    The first chunk is the header (empty for NDJSON); ``progress(n)`` is called after
    each chunk of ``n`` rows. Close the iterator (``aclosing``) to stop early.
    """
    columns = export_columns(await exports.event_columns(conn))
    writer = RowWriter(fmt, columns)
    yield writer.header()
    async for rows in exports.event_cursor(
        conn, columns, project_id, start, end, prefetch=rows_per_chunk
    ):
        yield writer.encode(rows)
        if progress is not None:
            progress(len(rows))
