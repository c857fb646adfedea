"""Ingest endpoints (SPEC §4): one event, or a batch with per-event results.

Per request: authenticate the public key, check the Origin against the
project's CORS allowlist, validate each event and fill its defaults, apply
the project's (or source's) sampling, then append to the buffer together
with the rate-limit and quota check (one Redis round trip, shared with
concurrent requests).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from aiohttp import web

from analytics import metrics
from analytics.errors import AnalyticsError, BadRequest, Forbidden, PayloadTooLarge, RateLimited
from analytics.events.anonymous_ids import anonymous_user_id
from analytics.events.models import EventRow
from analytics.events.validation import RequestContext, parse_time, validate_event
from analytics.events.wire import DecodedBatch, batch_rows, decode_batch
from analytics.projects.api_keys import KeyKind, bearer
from analytics.projects.limits import Limit, request_limits
from analytics.projects.policy import Policy, ProjectSettings, resolve
from analytics.projects.sampling import decide
from analytics.storage.projects import KeyRecord
from web.app_keys import BUFFER, KEY_CACHE, SETTINGS, SOURCE_CACHE, TRUSTED_PROXIES
from web.audit import AUDIT
from web.body import parse_json, read_body
from web.client import Network, client_ip, parse_networks
from web.middleware import json_response, measured

make_row = tuple.__new__

COOKIE_NAME = "sa_uid"
COOKIE_MAX_AGE = 2 * 365 * 86_400


async def _authenticate(request: web.Request, key_in_body: Any) -> KeyRecord:
    """Public key from the Authorization header, or ``api_key`` in the body (sendBeacon)."""
    key = bearer(request.headers.get("Authorization"))
    if key is None:
        key = key_in_body if isinstance(key_in_body, str) else None
    return await request.app[KEY_CACHE].authenticate(key, KeyKind.PUBLIC)


def check_origin(request: web.Request, project: ProjectSettings) -> str | None:
    """The request's Origin if the project allows it; 403 if it does not."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    allowed = project.cors_origins
    if allowed != "*" and origin not in allowed:
        raise Forbidden(
            f"origin {origin} is not in this project's CORS allowlist",
            code="origin_not_allowed",
            field="Origin",
        )
    return origin


@dataclass(slots=True)
class BrowserCookie:
    """The browser id this request carries or is given (``sa_uid`` cookie)."""

    user_id: str | None
    is_new: bool


def _valid_cookie(value: str) -> bool:
    # Ours are 32 hex digits (older edges) or ``anon_`` + 24 hex digits.
    return 8 <= len(value) <= 64 and value.replace("_", "").isalnum() and value.isascii()


def browser_cookie(
    request: web.Request, origin: str | None, ip: str | None, salt: str
) -> BrowserCookie:
    """A browser (it sent an Origin) keeps one id in a first-party cookie; others get none.

    Without the cookie (a ``fetch`` without credentials, a browser that blocks
    cookies, the first visit) the id is the one any client without a user id
    gets, the hash of (IP, User-Agent, project salt), so such requests from one
    browser agree with each other; the cookie is then set to that same id and
    keeps it when the IP changes.
    """
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie and _valid_cookie(cookie):
        return BrowserCookie(cookie, False)
    if origin is not None:
        derived = anonymous_user_id(ip, request.headers.get("User-Agent"), salt)
        return BrowserCookie(derived, True)
    return BrowserCookie(None, False)


def trusted_networks(request: web.Request, project: ProjectSettings) -> tuple[Network, ...]:
    """The proxies whose forwarded addresses are believed: the edge's and the project's."""
    trusted = request.app[TRUSTED_PROXIES]
    if project.trusted_proxies:
        trusted = trusted + parse_networks(project.trusted_proxies)
    return trusted


class Sender(NamedTuple):
    """The client an event is about when a relay states it (a server-side SDK sending on
    behalf of its user): replaces the request's IP and User-Agent for that one event."""

    ip_address: str | None
    user_agent: str | None


def _context(
    request: web.Request, record: KeyRecord, project: ProjectSettings, uid: str | None, sent_at: Any
) -> RequestContext:
    settings = request.app[SETTINGS]
    return RequestContext(
        project_id=record.project_id,
        salt=record.salt,
        now_us=time.time_ns() // 1000,
        ip_address=client_ip(request, trusted_networks(request, project)),
        user_agent=request.headers.get("User-Agent"),
        cookie_user_id=uid,
        sent_at_us=None if sent_at is None else parse_time(sent_at, "sent_at"),
        max_properties_bytes=settings.max_properties_bytes,
        max_properties_depth=settings.max_properties_depth,
        future_tolerance_us=settings.future_tolerance_seconds * 1_000_000,
        skew_threshold_us=settings.clock_skew_threshold_seconds * 1_000_000,
        session_window_minutes=project.session_window_minutes,
    )


@dataclass(slots=True)
class Outcome:
    """What became of a request's events."""

    kept: list[EventRow]
    sampled: list[int]
    limits: list[Limit]


async def _sample_and_limit(
    request: web.Request,
    project: ProjectSettings,
    rows: list[tuple[int, EventRow]],
    ip: str | None,
) -> Outcome:
    """Fill source ids, apply sampling, and list the limits the kept events are charged to."""
    outcome = Outcome([], [], [])
    if not rows:
        return outcome
    project_id = rows[0][1].project_id
    sources = await request.app[SOURCE_CACHE].resolve(project_id, {r.event_source for _, r in rows})
    policies = {name: resolve(project, source) for name, (_, source) in sources.items()}
    charged: dict[str, Policy] = {}
    for index, row in rows:
        policy = policies[row.event_source]
        kept, rate = decide(policy.sampling, project_id, row.user_id, row.timestamp_us)
        if not kept:
            outcome.sampled.append(index)
            continue
        source_id = sources[row.event_source][0]
        # row with its source id (field 2) and sample rate (field 9), without _replace's cost
        outcome.kept.append(make_row(EventRow, (*row[:2], source_id, *row[3:9], rate, *row[10:])))
        charged[row.event_source] = policy
    outcome.limits = request_limits(
        project_id, resolve(project, None), charged.items(), ip, time.time()
    )
    return outcome


def _finish(
    response: web.Response, origin: str | None, browser: BrowserCookie, secure: bool
) -> web.Response:
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
    if browser.is_new and browser.user_id:
        response.set_cookie(
            COOKIE_NAME,
            browser.user_id,
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=secure,
            path="/",
        )
    return response


async def ingest_events(
    request: web.Request,
    record: KeyRecord,
    project: ProjectSettings,
    browser: BrowserCookie,
    events: list[Any],
    sent_at: Any,
    *,
    single: bool,
    skew_threshold_us: int | None = None,
    senders: Sequence[Sender | None] | None = None,
) -> tuple[Outcome, list[dict[str, Any]]]:
    """Validate, sample, rate-limit and buffer events; per-event rejections unless ``single``.

    ``skew_threshold_us`` replaces the settings' clock-skew threshold (0: always
    correct by ``sent_at``, Segment's rule); ``senders[i]``, when given, is the
    IP and User-Agent of event ``i`` instead of the request's.
    """
    ctx = _context(request, record, project, browser.user_id, sent_at)
    if skew_threshold_us is not None:
        ctx = replace(ctx, skew_threshold_us=skew_threshold_us)
    valid, results = _validate(events, ctx, single=single, senders=senders)
    return await _store(request, record, project, ctx, valid, results)


async def _ingest_decoded(
    request: web.Request,
    record: KeyRecord,
    project: ProjectSettings,
    browser: BrowserCookie,
    batch: DecodedBatch,
    raw: bytes,
) -> tuple[Outcome, list[dict[str, Any]]]:
    """``ingest_events`` for a batch the fast path decoded; validated anew from ``raw``
    when an event breaks a rule, so its rejection reads as it always has."""
    ctx = _context(request, record, project, browser.user_id, batch.sent_at)
    valid = batch_rows(batch, ctx)
    results: list[dict[str, Any]] = []
    if valid is None:
        valid, results = _validate(parse_json(raw)["events"], ctx, single=False, senders=None)
    return await _store(request, record, project, ctx, valid, results)


def _validate(
    events: list[Any],
    ctx: RequestContext,
    *,
    single: bool,
    senders: Sequence[Sender | None] | None,
) -> tuple[list[tuple[int, EventRow]], list[dict[str, Any]]]:
    """(index, row) of the valid events and a result for each rejected one."""
    valid: list[tuple[int, EventRow]] = []
    results: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        sender = senders[index] if senders is not None else None
        own = (
            ctx
            if sender is None
            else replace(ctx, ip_address=sender.ip_address, user_agent=sender.user_agent)
        )
        try:
            valid.append((index, validate_event(event, own)))
        except AnalyticsError as error:
            if single:
                raise
            results.append(
                {
                    "index": index,
                    "status": "rejected",
                    "code": error.code,
                    "detail": error.detail,
                    "field": error.field,
                }
            )
    return valid, results


async def _store(
    request: web.Request,
    record: KeyRecord,
    project: ProjectSettings,
    ctx: RequestContext,
    valid: list[tuple[int, EventRow]],
    results: list[dict[str, Any]],
) -> tuple[Outcome, list[dict[str, Any]]]:
    """Sample, rate-limit and buffer the valid events; count every outcome."""
    app = request.app
    outcome = await _sample_and_limit(request, project, valid, ctx.ip_address)
    if outcome.kept:
        try:
            await app[BUFFER].append(outcome.kept, outcome.limits)
        except RateLimited as error:
            app[AUDIT].violation(record.project_id, error.code)
            raise
    _count(record.project_id, len(outcome.kept), len(outcome.sampled), results)
    return outcome, results


async def _accept(request: web.Request, limit: int, batch: bool) -> web.Response:
    app = request.app
    settings = app[SETTINGS]
    raw = await read_body(request, limit)
    decoded = (
        decode_batch(raw, settings.max_properties_bytes, settings.max_properties_depth)
        if batch
        else None
    )
    body = parse_json(raw) if decoded is None else None
    if decoded is not None:
        key_in_body: Any = decoded.api_key
    else:
        key_in_body = body.get("api_key") if isinstance(body, dict) else None
    record = await _authenticate(request, key_in_body)
    project = app[KEY_CACHE].settings_of(record)
    origin = check_origin(request, project)
    ip = client_ip(request, trusted_networks(request, project))
    browser = browser_cookie(request, origin, ip, record.salt)
    if decoded is not None:
        _check_size(len(decoded.events), settings.max_batch_events)
        outcome, results = await _ingest_decoded(request, record, project, browser, decoded, raw)
        return _answer(request, outcome, results, origin, browser, batch)
    if batch:
        if not isinstance(body, dict):
            raise BadRequest(
                'the body must be an object {"events": [...]}', code="invalid_batch", field="body"
            )
        events = body.get("events")
        if not isinstance(events, list):
            raise BadRequest(
                "events must be a list of event objects", code="events_invalid", field="events"
            )
        _check_size(len(events), settings.max_batch_events)
        sent_at = body.get("sent_at")
    else:
        events = [body]
        sent_at = None
    outcome, results = await ingest_events(
        request, record, project, browser, events, sent_at, single=not batch
    )
    return _answer(request, outcome, results, origin, browser, batch)


def _check_size(count: int, maximum: int) -> None:
    if count > maximum:
        raise PayloadTooLarge(
            f"the batch has {count} events; the limit is {maximum}",
            code="batch_too_large",
            field="events",
        )


def _answer(
    request: web.Request,
    outcome: Outcome,
    results: list[dict[str, Any]],
    origin: str | None,
    browser: BrowserCookie,
    batch: bool,
) -> web.Response:
    secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
    if not batch:
        answer = {"status": "accepted", "sampled": bool(outcome.sampled)}
        return _finish(json_response(answer, status=202), origin, browser, secure)
    for index in outcome.sampled:
        results.append(
            {
                "index": index,
                "status": "sampled",
                "code": "sampled",
                "detail": "dropped by the project's sampling rules",
                "field": None,
            }
        )
    results.sort(key=lambda r: r["index"])
    answer = {
        "status": "accepted",
        "accepted": len(outcome.kept),
        "sampled": len(outcome.sampled),
        "rejected": sum(1 for r in results if r["status"] == "rejected"),
        "results": results,
    }
    return _finish(json_response(answer, status=202), origin, browser, secure)


def _count(project_id: str, kept: int, sampled: int, results: list[dict[str, Any]]) -> None:
    if kept:
        metrics.child(metrics.INGEST_EVENTS, project_id, "accepted").inc(kept)
    if sampled:
        metrics.child(metrics.INGEST_EVENTS, project_id, "sampled").inc(sampled)
    if not results:
        return
    rejected = [r for r in results if r["status"] == "rejected"]
    if rejected:
        metrics.child(metrics.INGEST_EVENTS, project_id, "rejected").inc(len(rejected))
        for result in rejected:
            metrics.child(metrics.INGEST_REJECTIONS, result["code"]).inc()


@measured("ingest")
async def ingest_one(request: web.Request) -> web.Response:
    """POST /api/events/ingest/ — one event; 202 once it is durable in the buffer."""
    return await _accept(request, request.app[SETTINGS].max_event_bytes, False)


@measured("batch")
async def ingest_batch(request: web.Request) -> web.Response:
    """POST /api/events/batch/ — up to 1,000 events, each validated on its own."""
    return await _accept(request, request.app[SETTINGS].max_batch_bytes, True)


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight: a browser sends no key here, so the allowlist is enforced on the POST."""
    response = web.Response(status=204)
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = (
        "Authorization, Content-Type, Content-Encoding"
    )
    response.headers["Access-Control-Max-Age"] = "600"
    return response
