"""Segment HTTP Tracking API compatibility (SPEC §4): existing Segment SDKs work unchanged.

``POST /v1/batch`` and ``/v1/{track,page,screen,identify,group,alias}``. The
write key is the project's public key, as the Basic-auth user name or
``writeKey`` in the body. Limits are Segment's: 32 KB per message, 500 KB per
batch (decompressed; gzip accepted). Mapping onto our event model:

- ``messageId`` -> ``event_id``; ``userId``, else ``anonymousId`` -> ``user_id``;
- ``track``'s ``event`` -> ``event_name``; ``page`` / ``screen`` -> ``page_view`` /
  ``screen_view``; ``identify`` / ``group`` / ``alias`` keep their type as the name;
- ``properties`` (``traits`` for identify and group, plus ``groupId`` / ``previousId``)
  -> ``properties``;
- ``context.library.name`` -> ``event_source`` (``segment`` when absent);
- ``timestamp`` and ``sentAt`` -> ``timestamp`` and ``sent_at`` (clock-skew correction).

Answers ``200 {"success": true}`` (with how many were accepted); a message
that fails validation is counted as rejected without failing the batch.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from aiohttp import web

from analytics.errors import BadRequest, PayloadTooLarge
from analytics.projects.api_keys import KeyKind, bearer
from web.app_keys import KEY_CACHE
from web.body import read_json
from web.ingest import browser_cookie, check_origin, ingest_events
from web.middleware import json_response

MESSAGE_LIMIT = 32 * 1024
BATCH_LIMIT = 500 * 1024
TYPES = ("track", "page", "screen", "identify", "group", "alias")


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


def to_event(message: Any, kind: str | None = None) -> Any:
    """One Segment message as our event body (validation happens after, as for any event)."""
    if not isinstance(message, dict):
        return message  # rejected by validation with a clear reason
    kind = kind or message.get("type")
    if kind not in TYPES:
        return {"event_source": "segment", "event_name": None}
    try:
        size = len(orjson.dumps(message))
    except orjson.JSONEncodeError:
        # Nested past 254 levels or an integer beyond 64 bits: validation refuses it
        # by name when it is in the properties, and nothing else is stored.
        size = 0
    if size > MESSAGE_LIMIT:
        return {"event_source": "segment", "event_name": kind, "properties": "too large"}
    props: Any
    if kind in ("track", "page", "screen"):
        props = message.get("properties") or {}
        if kind != "track" and message.get("name") and isinstance(props, dict):
            props = {**props, "name": props.get("name", message["name"])}
    elif kind in ("identify", "group"):
        props = message.get("traits") or {}
        if kind == "group" and isinstance(props, dict):
            props = {**props, "groupId": message.get("groupId")}
    else:
        props = {"previousId": message.get("previousId")}
    # A non-object ``properties`` goes through as is: validation rejects it by name.
    names = {"track": message.get("event"), "page": "page_view", "screen": "screen_view"}
    context = message.get("context")
    library = context.get("library") if isinstance(context, dict) else None
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
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise BadRequest(
                "batch must be a list of messages", code="batch_invalid", field="batch"
            )
        events = [to_event(m) for m in batch]
    else:
        events = [to_event(body, kind)]
    project = request.app[KEY_CACHE].settings_of(record)
    origin = check_origin(request, project)
    outcome, results = await ingest_events(
        request,
        record,
        project,
        browser_cookie(request, origin),
        events,
        body.get("sentAt"),
        single=False,
    )
    rejected = [r for r in results if r["status"] == "rejected"]
    return json_response(
        {
            "success": True,
            "accepted": len(outcome.kept),
            "sampled": len(outcome.sampled),
            "rejected": len(rejected),
            "errors": rejected,
        }
    )


async def batch(request: web.Request) -> web.Response:
    """POST /v1/batch — a Segment batch."""
    return await _handle(request, None)


def add_routes(app: web.Application) -> None:
    """Register the Segment-compatible endpoints."""
    app.router.add_post("/v1/batch", batch)
    app.router.add_post("/v1/import", batch)
    for kind in TYPES:

        async def one(request: web.Request, kind: str = kind) -> web.Response:
            return await _handle(request, kind)

        app.router.add_post(f"/v1/{kind}", one)
