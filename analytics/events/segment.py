"""Segment / RudderStack messages mapped onto our event body (pure; no I/O).

One mapping for every way a Segment message arrives: the ``/v1/*`` endpoints
(``web.segment``) and ``analytics import-events --format segment``. The rules
(``messageId`` -> ``event_id``, ``userId`` else ``anonymousId`` -> ``user_id``, the
event name per type, what is kept of ``context``) are listed in ``web.segment``'s
docstring and the README; the result is an event body that
``analytics.events.validation.validate_event`` then checks like any other.
"""

from __future__ import annotations

from typing import Any

import orjson

from analytics.errors import BadRequest

MESSAGE_LIMIT = 32 * 1024
TYPES = ("track", "page", "screen", "identify", "group", "alias")
PAGE_FIELDS = ("url", "path", "referrer", "title")


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
