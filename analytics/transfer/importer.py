"""``analytics import-events``: a file of events sent through the normal pipeline.

Two formats, one message per line, each file plain or gzip (told by its first two
bytes, not its name):

- ``ndjson``: our own export (``analytics.transfer.events_file``). Each line keeps its
  ``event_id``, ids, times, ``properties``, ``sample_rate``, ``ip_address`` and
  ``user_agent``; ``received_at`` is kept too (it is the clock the 24-hour future rule
  is checked against, as when the event first arrived). ``project_id`` and
  ``event_source_id`` are the target project's own.
- ``segment``: a Segment or RudderStack archive, mapped by
  ``analytics.events.segment`` exactly as ``POST /v1/batch`` maps a message. The file is
  the operator's, so ``context.ip`` is believed (as from a trusted proxy). Segment's
  clock correction (``timestamp + (receivedAt - sentAt)``) uses the archived
  ``receivedAt``; a message without one is taken at its ``timestamp`` as is.

Every line is validated by ``analytics.events.validation.validate_event``, the live
edge's own rules, and appended to the Redis buffer as the edge appends (a thousand
events per entry); the worker stores them like any other, in their own days'
partitions and aggregate buckets. Rate limits, quotas and sampling do not apply: the
events were accepted once already, and dropping some now would make the import
disagree with its source.

Duplicates: before a chunk is sent its ids are looked up in the project's ledger
(``event_ids``); those already stored, and repeats within the chunk, are counted as
duplicates and not sent. An id repeated further apart in a file whose first copy has
not reached PostgreSQL yet is sent twice and stored once (the ledger decides), and
counted as accepted. A line without ``event_id`` / ``messageId`` gets a new id, so
importing it twice stores it twice.

A bad line is reported by its number and reason and the rest goes on; a file whose
first record is not of the format asked for fails at once (``ImportFileError``).
"""

from __future__ import annotations

import asyncio
import enum
import gzip
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from analytics.errors import AnalyticsError, BadRequest, ImportFileError
from analytics.events.models import EventRow
from analytics.events.segment import TYPES, shape_error, to_event
from analytics.events.validation import RequestContext, parse_time, validate_event
from analytics.projects.policy import project_settings
from analytics.storage import exports
from analytics.storage.projects import resolve_source

if TYPE_CHECKING:
    from analytics.storage import Connection

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_EVENTS = 1000
# Rejections kept in the report (all are counted and each is reported as it happens).
KEPT_REJECTIONS = 1000


class ImportFormat(enum.StrEnum):
    """What an import file holds."""

    NDJSON = "ndjson"
    SEGMENT = "segment"


@dataclass(slots=True, frozen=True)
class Rejection:
    """A line that was not imported, and why."""

    line: int
    code: str
    detail: str

    def describe(self) -> str:
        return f"line {self.line}: {self.code} ({self.detail})"


@dataclass(slots=True)
class ImportReport:
    """What became of a file's lines (blank lines are not counted)."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "rejections": [
                {"line": r.line, "code": r.code, "detail": r.detail} for r in self.rejections
            ],
        }


@dataclass(slots=True, frozen=True)
class ImportLimits:
    """The edge's validation settings that an import applies too."""

    max_properties_bytes: int
    max_properties_depth: int
    future_tolerance_us: int


def open_file(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(raw file, reader): the reader decompresses when the file starts with gzip's magic."""
    raw = path.open("rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        # GzipFile reads bytes like any binary file; typeshed does not call it an IO[bytes].
        return raw, gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw, raw


def numbered_lines(reader: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line) of every non-blank line."""
    for number, line in enumerate(reader, start=1):
        if line.strip():
            yield number, line


def check_first(line: bytes, fmt: ImportFormat) -> None:
    """Fail fast when the file's first record is not of format ``fmt``."""
    hint = "ndjson (our export)" if fmt is ImportFormat.NDJSON else "segment (one message a line)"
    try:
        first = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        what = "a CSV file" if line.startswith(b"event_id,") else "not JSON"
        raise ImportFileError(
            f"line 1 is {what}; --format {fmt.value} reads {hint}, one JSON object per line"
        ) from exc
    if not isinstance(first, dict):
        raise ImportFileError(f"the first record is not a JSON object; --format {fmt} reads {hint}")
    segment_like = first.get("type") in TYPES and "event_name" not in first
    ours_like = "event_name" in first and "type" not in first
    if fmt is ImportFormat.NDJSON and segment_like:
        raise ImportFileError(
            "the first record is a Segment message (it has a type, no event_name):"
            " use --format segment"
        )
    if fmt is ImportFormat.SEGMENT and ours_like:
        raise ImportFileError(
            "the first record is one of our events (event_name, no type): use --format ndjson"
        )
    if fmt is ImportFormat.NDJSON and not ours_like:
        raise ImportFileError("the first record has no event_name: not our NDJSON export")
    if fmt is ImportFormat.SEGMENT and not segment_like:
        raise ImportFileError(f"the first record has no type of {', '.join(TYPES)}: not Segment")


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _received_us(value: Any, now_us: int, field_name: str) -> int:
    """The archived receive time (never later than now), or now when there is none."""
    if value is None:
        return now_us
    return min(parse_time(value, field_name), now_us)


def _sample_rate(value: Any) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise BadRequest(
            "sample_rate must be a number above 0 and at most 1",
            code="sample_rate_invalid",
            field="sample_rate",
        )
    return float(value)


def ndjson_row(record: Any, ctx: RequestContext) -> EventRow:
    """One line of our export as an event of the context's project (validated)."""
    if not isinstance(record, dict):
        raise BadRequest("a line must be a JSON object", code="event_invalid", field="event")
    own = replace(
        ctx,
        now_us=_received_us(record.get("received_at"), ctx.now_us, "received_at"),
        ip_address=_string(record.get("ip_address")),
        user_agent=_string(record.get("user_agent")),
    )
    body = {
        k: record.get(k)
        for k in (
            "event_name",
            "event_source",
            "event_id",
            "user_id",
            "session_id",
            "properties",
            "timestamp",
        )
    }
    return validate_event(body, own, sample_rate=_sample_rate(record.get("sample_rate")))


def segment_row(message: Any, ctx: RequestContext) -> EventRow:
    """One Segment message as ``POST /v1/batch`` would store it (validated)."""
    problem = shape_error(message, None)
    if problem is not None:
        raise problem
    context = message.get("context")
    context = context if isinstance(context, dict) else {}
    ip = _string(context.get("ip"))
    event = to_event(message, message["type"], ip)
    received = message.get("receivedAt")
    if received is None:
        event.pop("sent_at", None)  # no receive time: nothing to measure the skew against
    own = replace(
        ctx,
        now_us=_received_us(received, ctx.now_us, "receivedAt"),
        ip_address=ip,
        user_agent=_string(context.get("userAgent")),
        skew_threshold_us=0,  # Segment's rule: always correct by sentAt
    )
    return validate_event(event, own)


Append = Callable[[list[EventRow]], Awaitable[None]]


class Importer:
    """Reads one file into one project: validate, map, deduplicate, append."""

    def __init__(
        self,
        conn: Connection,
        project_id: str,
        fmt: ImportFormat,
        append: Append,
        limits: ImportLimits,
        *,
        report_line: Callable[[Rejection], None] | None = None,
    ) -> None:
        self._conn = conn
        self._project_id = project_id
        self._format = fmt
        self._append = append
        self._limits = limits
        self._report_line = report_line
        self._sources: dict[str, int] = {}
        self.report = ImportReport()

    async def context(self) -> RequestContext:
        """The request context an import line is validated in (the project's salt, window)."""
        found = await exports.project_salt(self._conn, self._project_id)
        if found is None:
            raise ImportFileError(f"unknown project {self._project_id!r}")
        salt, settings_text = found
        settings = project_settings(orjson.loads(settings_text))
        return RequestContext(
            project_id=self._project_id,
            salt=salt,
            now_us=time.time_ns() // 1000,
            ip_address=None,
            user_agent=None,
            cookie_user_id=None,
            sent_at_us=None,
            max_properties_bytes=self._limits.max_properties_bytes,
            max_properties_depth=self._limits.max_properties_depth,
            future_tolerance_us=self._limits.future_tolerance_us,
            skew_threshold_us=0,
            session_window_minutes=settings.session_window_minutes,
        )

    def _reject(self, line: int, error: AnalyticsError) -> None:
        rejection = Rejection(line, error.code, error.detail)
        self.report.rejected += 1
        if len(self.report.rejections) < KEPT_REJECTIONS:
            self.report.rejections.append(rejection)
        if self._report_line is not None:
            self._report_line(rejection)

    async def run(
        self, lines: Iterator[tuple[int, bytes]], progress: Callable[[], None] | None = None
    ) -> ImportReport:
        """Import every line; the first is checked against the format before anything is sent."""
        ctx = await self.context()
        to_row = ndjson_row if self._format is ImportFormat.NDJSON else segment_row
        chunk: list[EventRow] = []
        first = True
        number = 0
        try:
            for number, line in lines:
                if first:
                    check_first(line, self._format)
                    first = False
                try:
                    try:
                        record = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise BadRequest(
                            f"not a JSON object: {exc}", code="invalid_json", field="line"
                        ) from exc
                    chunk.append(to_row(record, replace(ctx, now_us=time.time_ns() // 1000)))
                except AnalyticsError as error:
                    self._reject(number, error)
                if len(chunk) >= CHUNK_EVENTS:
                    await self._send(chunk)
                    chunk = []
                    if progress is not None:
                        progress()
        except (OSError, EOFError) as exc:
            # A corrupt or truncated gzip stream: keep what was read before it, then stop.
            await self._send(chunk)
            raise ImportFileError(
                f"cannot read past line {number} ({exc}); the lines before it were imported:"
                f" {self.report.accepted} accepted, {self.report.duplicate} duplicate,"
                f" {self.report.rejected} rejected"
            ) from exc
        if chunk:
            await self._send(chunk)
        if first:
            raise ImportFileError("the file holds no records")
        return self.report

    async def _send(self, chunk: list[EventRow]) -> None:
        if not chunk:
            return
        unique: dict[str, EventRow] = {}
        for row in chunk:
            unique.setdefault(row.event_id, row)
        known = await exports.known_event_ids(self._conn, self._project_id, list(unique))
        fresh = [row for event_id, row in unique.items() if event_id not in known]
        self.report.duplicate += len(chunk) - len(fresh)
        if not fresh:
            return
        for name in {row.event_source for row in fresh} - self._sources.keys():
            self._sources[name] = await resolve_source(self._conn, self._project_id, name)
        rows = [row._replace(event_source_id=self._sources[row.event_source]) for row in fresh]
        await self._append(rows)
        self.report.accepted += len(rows)


async def wait_for_room(length: Callable[[], Awaitable[int]], max_entries: int) -> None:
    """Wait while the buffer holds more than ``max_entries`` entries (the worker drains it).

    Keeps an import of millions of events from filling Redis faster than the workers
    store them; with no worker running the import waits here.
    """
    while True:
        if await length() <= max_entries:
            return
        await asyncio.sleep(0.2)
