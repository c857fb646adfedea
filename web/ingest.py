"""Ingest endpoints (SPEC §4): one event, or a batch with per-event results."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from analytics import buffer
from analytics.errors import AnalyticsError, BadRequest, PayloadTooLarge
from analytics.keys import KeyKind
from analytics.models import EventRow
from analytics.storage.projects import KeyRecord
from web.body import read_json
from web.client import client_ip
from web.keys import KEY_CACHE, REDIS, SETTINGS, SOURCE_CACHE, TRUSTED_PROXIES
from web.middleware import json_response
from web.validation import RequestContext, parse_time, validate_event

COOKIE_NAME = "sa_uid"


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def _authenticate(request: web.Request, body: Any) -> KeyRecord:
    """Public key from the Authorization header, or ``api_key`` in the body (sendBeacon)."""
    key = _bearer(request)
    if key is None and isinstance(body, dict):
        candidate = body.get("api_key")
        key = candidate if isinstance(candidate, str) else None
    return await request.app[KEY_CACHE].authenticate(key, KeyKind.PUBLIC)


def _context(request: web.Request, record: KeyRecord, sent_at: Any) -> RequestContext:
    settings = request.app[SETTINGS]
    return RequestContext(
        project_id=record.project_id,
        salt=record.salt,
        now_us=time.time_ns() // 1000,
        ip_address=client_ip(request, request.app[TRUSTED_PROXIES]),
        user_agent=request.headers.get("User-Agent"),
        cookie_user_id=request.cookies.get(COOKIE_NAME) or None,
        sent_at_us=None if sent_at is None else parse_time(sent_at, "sent_at"),
        max_properties_bytes=settings.max_properties_bytes,
        future_tolerance_us=settings.future_tolerance_seconds * 1_000_000,
        skew_threshold_us=settings.clock_skew_threshold_seconds * 1_000_000,
        session_window_minutes=settings.session_window_minutes,
    )


async def _with_sources(request: web.Request, rows: list[EventRow]) -> list[EventRow]:
    """Rows with their ``event_source_id`` filled in (sources created on first use)."""
    if not rows:
        return rows
    ids = await request.app[SOURCE_CACHE].resolve(
        rows[0].project_id, {r.event_source for r in rows}
    )
    return [r._replace(event_source_id=ids[r.event_source]) for r in rows]


async def ingest_one(request: web.Request) -> web.Response:
    """POST /api/events/ingest/ — one event; 202 once it is durable in the buffer."""
    settings = request.app[SETTINGS]
    body = await read_json(request, settings.max_event_bytes)
    record = await _authenticate(request, body)
    ctx = _context(request, record, None)
    row = validate_event(body, ctx)
    rows = await _with_sources(request, [row])
    await buffer.append(request.app[REDIS], settings.stream_key, rows)
    return json_response({"status": "accepted", "sampled": False}, status=202)


async def ingest_batch(request: web.Request) -> web.Response:
    """POST /api/events/batch/ — up to 1,000 events, each validated on its own."""
    settings = request.app[SETTINGS]
    body = await read_json(request, settings.max_batch_bytes)
    record = await _authenticate(request, body)
    if not isinstance(body, dict):
        raise BadRequest(
            'the body must be an object {"events": [...]}', code="invalid_batch", field="body"
        )
    events = body.get("events")
    if not isinstance(events, list):
        raise BadRequest(
            "events must be a list of event objects", code="events_invalid", field="events"
        )
    if len(events) > settings.max_batch_events:
        raise PayloadTooLarge(
            f"the batch has {len(events)} events; the limit is {settings.max_batch_events}",
            code="batch_too_large",
            field="events",
        )
    ctx = _context(request, record, body.get("sent_at"))
    accepted: list[EventRow] = []
    results: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        try:
            accepted.append(validate_event(event, ctx))
        except AnalyticsError as error:
            results.append(
                {
                    "index": index,
                    "status": "rejected",
                    "code": error.code,
                    "detail": error.detail,
                    "field": error.field,
                }
            )
    rows = await _with_sources(request, accepted)
    if rows:
        await buffer.append(request.app[REDIS], settings.stream_key, rows)
    return json_response(
        {
            "status": "accepted",
            "accepted": len(rows),
            "sampled": 0,
            "rejected": len(results),
            "results": results,
        },
        status=202,
    )
