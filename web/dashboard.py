"""Private dashboard read API (SPEC §7): raw events, aggregates, summaries, names, sources.

Every endpoint takes ``Authorization: Bearer sa_priv_…`` and answers only
about that key's project (401 for a missing or unknown key, 403
``public_key_not_allowed`` for a public one). Time ranges are half-open,
``start_date <= t < end_date``, ISO 8601 (naive means UTC, a bare date is
its midnight); an empty parameter counts as absent.

Paging raw events (``GET /api/events/query/``): newest first, on the total
order (timestamp DESC, event_id DESC). ``next`` and ``previous`` are full
URLs carrying an opaque ``cursor`` (the position of the page's last or first
event and a direction) and the range resolved to absolute times, so a client
that follows them walks a fixed set of events with no repeat and no gap,
however many events arrive meanwhile, and every page costs the same at any
depth (keyset, see ``analytics.storage.queries``). ``page`` is still
accepted for the first :data:`MAX_OFFSET` events (offset paging, as the
SPEC names it); beyond that it is 400 ``page_invalid`` and the ``next``
links are the way on. ``count`` covers the whole filtered range, exact up to
``queries.COUNT_CAP`` events and estimated above (``count_is_estimate``).

Aggregates return the buckets that overlap the range (so the bucket holding
``start_date`` is included); ranges are capped per grain
(:data:`MAX_RANGES`) so one request cannot ask for millions of rows.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from aiohttp import web

from analytics.errors import BadRequest
from analytics.events.times import EPOCH, InvalidTime, parse_instant, to_us
from analytics.storage import queries
from analytics.storage.queries import EventFilter, Keyset
from web.app_keys import PG_POOL
from web.middleware import json_response
from web.private_api import private_project_id, query_text

if TYPE_CHECKING:
    from analytics.storage import Connection

Handler = Callable[[web.Request], Awaitable[web.Response]]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Offset paging reads (offset + page size) rows per source: keep it shallow.
MAX_OFFSET = 10_000

DEFAULT_RANGES: dict[str, timedelta] = {
    "agg_5min": timedelta(hours=24),
    "agg_hourly": timedelta(hours=24),
    "agg_daily": timedelta(days=30),
}
MAX_RANGES: dict[str, timedelta] = {
    "agg_5min": timedelta(days=31),
    "agg_hourly": timedelta(days=366),
    "agg_daily": timedelta(days=3660),
}
SUMMARY_RANGE = timedelta(days=30)


def _moment(value: str, field: str) -> datetime:
    """An ISO 8601 query value as an aware UTC datetime; 400 ``<field>_invalid`` otherwise."""
    try:
        return parse_instant(value)
    except InvalidTime as exc:
        raise BadRequest(
            f"{field} {exc} (e.g. 2024-01-31T12:00:00Z)", code=f"{field}_invalid", field=field
        ) from exc


def _time_range(
    request: web.Request, default: timedelta, limit: timedelta | None = None
) -> tuple[datetime, datetime]:
    """[start_date, end_date): end defaults to now, start to ``default`` before end."""
    end_text = query_text(request, "end_date")
    start_text = query_text(request, "start_date")
    end = datetime.now(UTC) if end_text is None else _moment(end_text, "end_date")
    if start_text is not None:
        start = _moment(start_text, "start_date")
    else:
        try:
            start = end - default
        except OverflowError as exc:
            raise BadRequest(
                "end_date is too early for the default range; give start_date too",
                code="end_date_invalid",
                field="end_date",
            ) from exc
    if start > end:
        raise BadRequest(
            f"start_date {_iso(start)} is after end_date {_iso(end)}",
            code="date_range_invalid",
            field="start_date",
        )
    if limit is not None and end - start > limit:
        raise BadRequest(
            f"the range is {end - start}; this endpoint serves at most {limit.days} days",
            code="date_range_too_large",
            field="start_date",
        )
    return start, end


def _int(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    text = query_text(request, name)
    if text is None:
        return default
    bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise BadRequest(f"{name} must be an integer {bounds}", code=f"{name}_invalid", field=name)
    return value


async def _filter(
    request: web.Request, conn: Connection, project_id: str, start: datetime, end: datetime
) -> EventFilter:
    """The request's filters; ``event_source_id`` must be one of the project's sources."""
    source_id: int | None = None
    source: str | None = None
    raw = query_text(request, "event_source_id")
    if raw is not None:
        try:
            source_id = int(raw)
        except ValueError:
            source_id = None
        if source_id is not None and -(2**63) <= source_id < 2**63:
            source = await queries.source_name(conn, project_id, source_id)
        if source is None:
            raise BadRequest(
                f"event_source_id {raw[:32]!r} is not a source of this project",
                code="event_source_id_invalid",
                field="event_source_id",
            )
    return EventFilter(
        project_id=project_id,
        start=start,
        end=end,
        event_name=query_text(request, "event_name"),
        event_source_id=source_id,
        event_source=source,
        user_id=query_text(request, "user_id"),
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _encode_cursor(direction: queries.Direction, position: Keyset) -> str:
    body = orjson.dumps({"d": direction, "t": to_us(position.timestamp), "i": position.event_id})
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode()


def _decode_cursor(text: str) -> tuple[queries.Direction, Keyset]:
    """The direction and position of a cursor this module made; 400 ``cursor_invalid`` else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body = orjson.loads(raw)
        direction, micros, event_id = body["d"], body["t"], body["i"]
        if direction not in ("after", "before") or not isinstance(event_id, str):
            raise ValueError("bad cursor fields")
        if not isinstance(micros, int) or isinstance(micros, bool):
            raise ValueError("bad cursor time")
        # Exact microseconds: a float round trip could move the position by 1 µs.
        position = Keyset(EPOCH + timedelta(microseconds=micros), event_id)
    except (binascii.Error, ValueError, TypeError, KeyError, OverflowError) as exc:
        raise BadRequest(
            "cursor is not one this API issued; follow the next/previous links as they are",
            code="cursor_invalid",
            field="cursor",
        ) from exc
    return direction, position


def _event_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "event_id": row["event_id"],
        "project_id": row["project_id"],
        "event_source_id": row["event_source_id"],
        "event_source": row["event_source"],
        "user_id": row["user_id"],
        "session_id": row["session_id"],
        "event_name": row["event_name"],
        # Already JSON text in the database: embedded as is, never re-parsed.
        "properties": orjson.Fragment(row["properties"]),
        "timestamp": row["timestamp"],
        "sample_rate": row["sample_rate"],
        "received_at": row["received_at"],
        "ip_address": row["ip_address"],
        "user_agent": row["user_agent"],
    }


def _position(row: asyncpg.Record) -> Keyset:
    return Keyset(row["timestamp"], row["event_id"])


async def query_events(request: web.Request) -> web.Response:
    """GET /api/events/query/ — raw events, newest first, keyset-paginated."""
    project_id = await private_project_id(request)
    start, end = _time_range(request, timedelta(hours=24))
    page_size = _int(request, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int(request, "page", 1, 1, None)
    cursor_text = query_text(request, "cursor")
    cursor = None if cursor_text is None else _decode_cursor(cursor_text)
    if cursor is not None and query_text(request, "page") is not None:
        raise BadRequest("give either page or cursor, not both", code="page_invalid", field="page")
    offset = (page - 1) * page_size
    if offset > MAX_OFFSET:
        raise BadRequest(
            f"page {page} starts past event {MAX_OFFSET}; follow the next links (cursor) instead",
            code="page_invalid",
            field="page",
        )
    async with request.app[PG_POOL].acquire() as conn:
        flt = await _filter(request, conn, project_id, start, end)
        direction, anchor = cursor if cursor is not None else (None, None)
        rows = await queries.event_page(
            conn,
            flt,
            limit=page_size + 1,
            after=anchor if direction == "after" else None,
            before=anchor if direction == "before" else None,
            offset=offset,
        )
        more = len(rows) > page_size
        # The extra row lies beyond the page in the direction of travel.
        rows = rows[max(len(rows) - page_size, 0) :] if direction == "before" else rows[:page_size]
        first = _position(rows[0]) if rows else anchor
        last = _position(rows[-1]) if rows else anchor
        if direction is None:
            has_next, has_previous = more, False
        elif direction == "after":
            has_next = more
            has_previous = first is not None and bool(
                await queries.event_page(conn, flt, limit=1, before=first)
            )
        else:
            has_previous = more
            has_next = last is not None and bool(
                await queries.event_page(conn, flt, limit=1, after=last)
            )
        count = await queries.count_events(conn, flt)

    params = {"start_date": _iso(start), "end_date": _iso(end), "page_size": str(page_size)}
    for name in ("event_name", "event_source_id", "user_id"):
        value = query_text(request, name)
        if value is not None:
            params[name] = value

    def link(**extra: str) -> str:
        return str(request.url.with_query({**params, **extra}))

    next_url = link(cursor=_encode_cursor("after", last)) if has_next and last is not None else None
    if direction is None:
        previous_url = link(page=str(page - 1)) if page > 1 else None
    elif has_previous and first is not None:
        previous_url = link(cursor=_encode_cursor("before", first))
    else:
        previous_url = None
    return json_response(
        {
            "count": count.value,
            "count_is_estimate": count.estimated,
            "next": next_url,
            "previous": previous_url,
            "start_date": start,
            "end_date": end,
            "page_size": page_size,
            "results": [_event_json(row) for row in rows],
        }
    )


def _aggregation(table: str, granularity: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        project_id = await private_project_id(request)
        start, end = _time_range(request, DEFAULT_RANGES[table], MAX_RANGES[table])
        async with request.app[PG_POOL].acquire() as conn:
            flt = await _filter(request, conn, project_id, start, end)
            rows = await queries.aggregates(conn, table, flt)
        return json_response(
            {
                "granularity": granularity,
                "start_date": start,
                "end_date": end,
                "results": [
                    {
                        "bucket_start": row["bucket_start"],
                        "event_source": row["event_source"],
                        "event_source_id": row["event_source_id"],
                        "event_name": row["event_name"],
                        "event_count": row["event_count"],
                        "estimated_count": row["estimated_count"],
                        "unique_users": row["unique_users"],
                        "unique_sessions": row["unique_sessions"],
                    }
                    for row in rows
                ],
            }
        )

    handler.__doc__ = f"GET /api/events/aggregations/{granularity}/ — rows of {table}."
    return handler


async def daily_summaries(request: web.Request) -> web.Response:
    """GET /api/events/summaries/daily/ — one row per UTC day overlapping the range."""
    project_id = await private_project_id(request)
    start, end = _time_range(request, SUMMARY_RANGE)
    async with request.app[PG_POOL].acquire() as conn:
        rows = await queries.daily_summaries(conn, EventFilter(project_id, start, end))
    return json_response(
        {
            "start_date": start,
            "end_date": end,
            "results": [
                {
                    "day": row["day"],
                    "total_events": row["total_events"],
                    "estimated_events": row["estimated_events"],
                    "unique_users": row["unique_users"],
                    "unique_sessions": row["unique_sessions"],
                    "top_events": orjson.Fragment(row["top_events"]),
                    "sources": orjson.Fragment(row["sources"]),
                }
                for row in rows
            ],
        }
    )


async def event_names(request: web.Request) -> web.Response:
    """GET /api/events/names/ — every event name ever stored, with totals and last bucket seen.

    ``last_seen`` is the start of the latest 5-minute bucket holding the name
    (its day's start when the 5-minute rows are gone).
    """
    project_id = await private_project_id(request)
    async with request.app[PG_POOL].acquire() as conn:
        rows = await queries.event_names(conn, project_id)
    return json_response(
        {
            "results": [
                {
                    "event_name": row["event_name"],
                    "total_count": row["total_count"],
                    "estimated_count": row["estimated_count"],
                    "last_seen": row["last_bucket"] or row["last_day"],
                }
                for row in rows
            ]
        }
    )


async def event_sources(request: web.Request) -> web.Response:
    """GET /api/events/sources/ — the project's sources and their setting overrides."""
    project_id = await private_project_id(request)
    async with request.app[PG_POOL].acquire() as conn:
        rows = await queries.event_sources(conn, project_id)
    return json_response(
        {
            "results": [
                {
                    "id": row["id"],
                    "name": row["name"],
                    "created_at": row["created_at"],
                    "settings": orjson.Fragment(row["settings"]),
                }
                for row in rows
            ]
        }
    )


def add_routes(app: web.Application) -> None:
    """Register every dashboard endpoint on the edge."""
    app.router.add_get("/api/events/query/", query_events)
    app.router.add_get("/api/events/aggregations/daily/", _aggregation("agg_daily", "daily"))
    app.router.add_get("/api/events/aggregations/hourly/", _aggregation("agg_hourly", "hourly"))
    app.router.add_get("/api/events/aggregations/5min/", _aggregation("agg_5min", "5min"))
    app.router.add_get("/api/events/summaries/daily/", daily_summaries)
    app.router.add_get("/api/events/names/", event_names)
    app.router.add_get("/api/events/sources/", event_sources)
