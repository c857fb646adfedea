"""Segment HTTP Tracking API compatibility (SPEC §4): existing Segment SDKs work unchanged.

``POST /v1/batch`` and ``/v1/{track,page,screen,identify,group,alias}``. The
write key is the project's public key, as the Basic-auth user name or
``writeKey`` in the body. Limits are Segment's: 32 KB per message, 500 KB per
batch (decompressed; gzip accepted). Mapping onto our event model:

- ``messageId`` -> ``event_id``; ``userId``, else ``anonymousId`` -> ``user_id``;
- ``track``'s ``event`` -> ``event_name``; ``page`` / ``screen`` -> ``page_view`` /
  ``screen_view``; ``identify`` / ``group`` / ``alias`` keep their type as the name;
- ``properties`` (plus ``name`` and ``category`` of a page or screen), ``traits``
  (identify: top-level over ``context.traits``, where RudderStack's SDKs put them;
  group: plus ``groupId``), ``previousId`` (alias) -> ``properties``;
- what we keep of ``context`` (``page.url/path/referrer/title``, ``locale``,
  ``userAgent``, ``library``, the message's ``channel``, an honoured ``ip``) ->
  ``properties.context``; ``context.userAgent`` -> ``user_agent``; ``context.ip``
  -> ``ip_address`` only from a trusted proxy (``web.client.relayed_ip``);
- ``context.library.name`` -> ``event_source`` (``segment`` when absent);
- ``timestamp`` and ``sentAt`` -> ``timestamp`` corrected by Segment's rule
  (``timestamp + (received - sentAt)``, whatever the skew), then checked as any.

Answers ``200 {"success": true, …}`` when every message was accepted. When
any message is invalid the valid ones are still stored, and the answer is a
400 whose ``message`` (and reason phrase) names each rejected index and why:
the SDKs report a 400 to their error callbacks and do not retry it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from analytics import metrics
from analytics.errors import AnalyticsError, BadRequest, PayloadTooLarge
from analytics.events.segment import MESSAGE_LIMIT, TYPES, shape_error, to_event
from analytics.projects.api_keys import KeyKind, bearer
from web.app_keys import KEY_CACHE
from web.body import read_json
from web.client import client_ip, relayed_ip
from web.ingest import Sender, browser_cookie, check_origin, ingest_events, trusted_networks
from web.middleware import json_response, measured

BATCH_LIMIT = 500 * 1024
# Rejections spelled out in ``message``; the ``errors`` list always has them all.
NAMED_LIMIT = 20


def _write_key(request: web.Request, body: Any) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            user, _, _ = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return user
    token = bearer(header)
    if token is not None:
        return token
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        key: str = body["writeKey"]
        return key
    return None


def _rejection(index: int, error: AnalyticsError) -> dict[str, Any]:
    return {
        "index": index,
        "status": "rejected",
        "code": error.code,
        "detail": error.detail,
        "field": error.field,
    }


def rejected_answer(
    kind: str | None, total: int, accepted: int, sampled: int, rejected: list[dict[str, Any]]
) -> web.Response:
    """The 400 for a request with invalid messages (the valid ones are already durable).

    ``message`` is what Segment's and RudderStack's Python SDKs hand to their
    error callbacks; Node's reads no body, only the reason phrase, so that
    names the rejected indexes and codes too.
    """
    named = "; ".join(
        f"message {r['index']}: {r['code']} ({r['detail']})" for r in rejected[:NAMED_LIMIT]
    )
    if len(rejected) > NAMED_LIMIT:
        named += f"; and {len(rejected) - NAMED_LIMIT} more (see errors)"
    others = total - len(rejected)
    text = (
        f"{len(rejected)} of {total} messages rejected"
        f"{f', the other {others} accepted' if others else ''}: {named}"
    )
    codes = ", ".join(f"message {r['index']} ({r['code']})" for r in rejected[:NAMED_LIMIT])
    reason = "".join(c for c in f"Bad Request: rejected {codes}" if " " <= c <= "~")
    single = kind is not None and len(rejected) == 1
    body = {
        "code": rejected[0]["code"] if single else "messages_rejected",
        "detail": text,
        "field": (rejected[0]["field"] or "message") if single else "batch",
        "message": text,
        "success": False,
        "accepted": accepted,
        "sampled": sampled,
        "rejected": len(rejected),
        "errors": rejected,
    }
    return json_response(body, status=400, reason=reason[:400])


async def _handle(request: web.Request, kind: str | None) -> web.Response:
    limit = BATCH_LIMIT if kind is None else MESSAGE_LIMIT
    try:
        body = await read_json(request, limit)
    except PayloadTooLarge as error:
        raise PayloadTooLarge(
            f"Segment limits: {MESSAGE_LIMIT // 1024} KB per message, "
            f"{BATCH_LIMIT // 1024} KB per batch",
            code=error.code,
            field="body",
        ) from error
    record = await request.app[KEY_CACHE].authenticate(_write_key(request, body), KeyKind.PUBLIC)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json", field="body")
    if kind is None:
        messages = body.get("batch")
        if not isinstance(messages, list):
            raise BadRequest(
                "batch must be a list of messages", code="batch_invalid", field="batch"
            )
    else:
        messages = [body]
    project = request.app[KEY_CACHE].settings_of(record)
    origin = check_origin(request, project)
    trusted = trusted_networks(request, project)
    ip = client_ip(request, trusted)
    rejected: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    senders: list[Sender | None] = []
    positions: list[int] = []
    for index, message in enumerate(messages):
        problem = shape_error(message, kind)
        if problem is not None:
            rejected.append(_rejection(index, problem))
            continue
        context = message.get("context")
        context = context if isinstance(context, dict) else {}
        own_ip = relayed_ip(ip, context.get("ip"), trusted)
        agent = context.get("userAgent")
        senders.append(
            Sender(own_ip, agent if isinstance(agent, str) else request.headers.get("User-Agent"))
            if own_ip != ip or isinstance(agent, str)
            else None
        )
        events.append(to_event(message, kind or message["type"], own_ip if own_ip != ip else None))
        positions.append(index)
    outcome, results = await ingest_events(
        request,
        record,
        project,
        browser_cookie(request, origin, ip, record.salt),
        events,
        body.get("sentAt"),
        single=False,
        skew_threshold_us=0,  # Segment's rule: always correct by sentAt
        senders=senders,
    )
    if rejected:  # not messages at all: counted here, as ingest_events counts its own
        metrics.INGEST_EVENTS.labels(record.project_id, "rejected").inc(len(rejected))
        for item in rejected:
            metrics.INGEST_REJECTIONS.labels(item["code"]).inc()
    rejected += [{**r, "index": positions[r["index"]]} for r in results]
    if rejected:
        rejected.sort(key=lambda r: int(r["index"]))
        return rejected_answer(
            kind, len(messages), len(outcome.kept), len(outcome.sampled), rejected
        )
    return json_response(
        {
            "success": True,
            "accepted": len(outcome.kept),
            "sampled": len(outcome.sampled),
            "rejected": 0,
            "errors": [],
        }
    )


def add_routes(app: web.Application) -> None:
    """Register the Segment-compatible endpoints, each measured as ``segment_<path>``."""
    for path in ("batch", "import"):

        async def batch(request: web.Request) -> web.Response:
            """POST /v1/batch (and /v1/import) — a Segment batch."""
            return await _handle(request, None)

        app.router.add_post(f"/v1/{path}", measured(f"segment_{path}")(batch))
    for kind in TYPES:

        async def one(request: web.Request, kind: str = kind) -> web.Response:
            return await _handle(request, kind)

        app.router.add_post(f"/v1/{kind}", measured(f"segment_{kind}")(one))
