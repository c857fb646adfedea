"""Export endpoints (SPEC §11), private key only: raw events streamed, stats as a ZIP.

``GET /api/export/events/``: ``start_date`` (inclusive, default: the beginning),
``end_date`` (exclusive, default: the end of time), ``format`` ``ndjson`` (default) or
``csv``. The answer is streamed as it is read from a server-side cursor
(``analytics.transfer.events_file``), gzip-compressed when ``Accept-Encoding`` allows
it, so the edge's memory does not depend on the export's size. Parameters are checked
before the first byte: once streaming has begun a failure can only cut the
connection (the client sees a truncated chunked body, never a complete-looking file).

``GET /api/export/stats/``: ``period`` and ``date`` (``analytics.transfer.stats_zip``).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, date, datetime

from aiohttp import web

from analytics.errors import BadRequest
from analytics.events.times import MAX_TIME, MIN_TIME, InvalidTime, parse_instant
from analytics.transfer.events_file import Format, export_chunks
from analytics.transfer.stats_zip import resolve_period, stats_zip
from web.app_keys import PG_POOL
from web.private_api import private_project_id, query_text

log = logging.getLogger(__name__)


def _moment(request: web.Request, name: str, default: datetime) -> datetime:
    text = query_text(request, name)
    if text is None:
        return default
    try:
        return parse_instant(text)
    except InvalidTime as exc:
        raise BadRequest(
            f"{name} {exc} (e.g. 2024-01-31T12:00:00Z)", code=f"{name}_invalid", field=name
        ) from exc


def _format(request: web.Request) -> Format:
    text = query_text(request, "format") or Format.NDJSON.value
    try:
        return Format(text)
    except ValueError as exc:
        raise BadRequest(
            "format must be ndjson or csv", code="format_invalid", field="format"
        ) from exc


async def export_events(request: web.Request) -> web.StreamResponse:
    """GET /api/export/events/ — every stored field of the range's raw events, streamed."""
    project_id = await private_project_id(request)
    start = _moment(request, "start_date", MIN_TIME)
    end = _moment(request, "end_date", MAX_TIME)
    if start > end:
        raise BadRequest(
            "start_date is after end_date", code="date_range_invalid", field="start_date"
        )
    fmt = _format(request)
    response = web.StreamResponse(
        headers={
            "Content-Disposition": f'attachment; filename="events-{project_id}.{fmt.value}"',
            "Cache-Control": "no-store",
        }
    )
    response.content_type = fmt.media_type
    response.charset = "utf-8"
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        response.enable_compression(web.ContentCoding.gzip)
    async with request.app[PG_POOL].acquire() as conn:
        chunks = export_chunks(conn, project_id, start, end, fmt)
        async with contextlib.aclosing(chunks):
            await response.prepare(request)
            try:
                async for chunk in chunks:
                    if chunk:
                        await response.write(chunk)
            except ConnectionResetError:
                # The client went away: closing the iterator rolls the read back.
                log.info("export of project %s stopped: the client disconnected", project_id)
                return response
    await response.write_eof()
    return response


async def export_stats(request: web.Request) -> web.Response:
    """GET /api/export/stats/ — a ZIP of one CSV per breakdown for the period."""
    project_id = await private_project_id(request)
    period = resolve_period(
        query_text(request, "period"), query_text(request, "date"), datetime.now(UTC).date()
    )
    async with request.app[PG_POOL].acquire() as conn:
        body = await stats_zip(conn, project_id, period)
    name = f"stats-{project_id}-{_day(period.first)}-{_day(period.last)}.zip"
    return web.Response(
        body=body,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _day(day: date) -> str:
    return day.isoformat()


def add_routes(app: web.Application) -> None:
    """Register the export endpoints."""
    # No HEAD: it would run the whole export to throw the body away.
    app.router.add_get("/api/export/events/", export_events, allow_head=False)
    app.router.add_get("/api/export/stats/", export_stats)
