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

import orjson
from aiohttp import web

from analytics import metrics
from analytics.errors import AnalyticsError, BadRequest, PayloadTooLarge
from analytics.projects.api_keys import KeyKind, bearer
from web.app_keys import KEY_CACHE
from web.body import read_json
from web.client import client_ip, relayed_ip
from web.ingest import Sender, browser_cookie, check_origin, ingest_events, trusted_networks
from web.middleware import json_response, measured

MESSAGE_LIMIT = 32 * 1024
BATCH_LIMIT = 500 * 1024
TYPES = ("track", "page", "screen", "identify", "group", "alias")
PAGE_FIELDS = ("url", "path", "referrer", "title")
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


def shape_error(message: Any, kind: str | None) -> BadRequest | None:
    """What makes ``message`` no Segment message at all (checked before our validation)."""
    if not isinstance(message, dict):
        return BadRequest("a message must be a JSON object", code="event_invalid", field="message")
    if (kind or message.get("type")) not in TYPES:
        return BadRequest(
            f"type must be one of {', '.join(TYPES)}", code="type_invalid", field="type"
        )
    try:
        size = len(orjson.dumps(message))
    except orjson.JSONEncodeError:
        # Nested past 254 levels or an integer beyond 64 bits: validation refuses it
        # by name when it is in the properties, and nothing else is stored.
        size = 0
    if size > MESSAGE_LIMIT:
        return BadRequest(
            f"the message is {size} bytes; the limit is {MESSAGE_LIMIT} (32 KB)",
            code="message_too_large",
            field="message",
        )
    return None


def _traits(message: dict[str, Any], context: dict[str, Any]) -> Any:
    """identify's traits: top-level ``traits`` over ``context.traits``, key by key."""
    top = message.get("traits")
    if top is not None and not isinstance(top, dict):
        return top  # rejected by validation, by name
    nested = context.get("traits")
    return {**(nested if isinstance(nested, dict) else {}), **(top or {})}


def kept_context(
    message: dict[str, Any], context: dict[str, Any], honoured_ip: str | None
) -> dict[str, Any]:
    """The part of ``context`` stored in ``properties.context`` (Segment's own names)."""
    kept: dict[str, Any] = {}
    page = context.get("page")
    if isinstance(page, dict):
        fields = {k: page[k] for k in PAGE_FIELDS if isinstance(page.get(k), str)}
        if fields:
            kept["page"] = fields
    for name in ("locale", "userAgent"):
        if isinstance(context.get(name), str):
            kept[name] = context[name]
    library = context.get("library")
    if isinstance(library, dict):
        named = {k: library[k] for k in ("name", "version") if isinstance(library.get(k), str)}
        if named:
            kept["library"] = named
    # RudderStack's SDKs mark every message with a channel ("server", "web"…);
    # Segment's do not: it tells the two analytics-python libraries apart.
    if isinstance(message.get("channel"), str):
        kept["channel"] = message["channel"]
    if honoured_ip is not None:
        kept["ip"] = honoured_ip
    return kept


def to_event(message: dict[str, Any], kind: str, honoured_ip: str | None = None) -> dict[str, Any]:
    """One Segment message (passed ``shape_error``) as our event body, validated after."""
    context = message.get("context")
    if not isinstance(context, dict):
        context = {}
    props: Any
    if kind in ("track", "page", "screen"):
        props = message.get("properties") or {}
        if kind != "track" and isinstance(props, dict):
            named = {k: message[k] for k in ("name", "category") if message.get(k) is not None}
            props = {**named, **props}  # the message's own properties win
    elif kind == "identify":
        props = _traits(message, context)
    elif kind == "group":
        props = message.get("traits") or {}
        if isinstance(props, dict):
            props = {**props, "groupId": message.get("groupId")}
    else:
        props = {"previousId": message.get("previousId")}
    # A non-object ``properties`` goes through as is: validation rejects it by name.
    if isinstance(props, dict) and "context" not in props:
        kept = kept_context(message, context, honoured_ip)
        if kept:
            props = {**props, "context": kept}
    names = {"track": message.get("event"), "page": "page_view", "screen": "screen_view"}
    library = context.get("library")
    source = library.get("name") if isinstance(library, dict) else None
    event: dict[str, Any] = {
        "event_name": names.get(kind, kind),
        "event_source": source if isinstance(source, str) and source else "segment",
        "properties": props,
    }
    if message.get("messageId") is not None:
        event["event_id"] = message["messageId"]
    user = message.get("userId") or message.get("anonymousId")
    if user is not None:
        event["user_id"] = str(user)
    for ours, theirs in (("timestamp", "timestamp"), ("sent_at", "sentAt")):
        if message.get(theirs) is not None:
            event[ours] = message[theirs]
    return event


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
