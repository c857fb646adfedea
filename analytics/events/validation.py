"""Event validation at the edge: one JSON object in, one ``EventRow`` or a ``BadRequest`` out.

Written as explicit per-field rules rather than a generic model so each
failure carries the stable code and the field SPEC §4 promises
(``event_name_too_long``, ``properties_too_large``, ``timestamp_in_future``…).

Every rule runs per event, so the common case stays in C: properties are
serialized once by orjson, and only text that could break a rule (more opening
brackets than the depth limit, or text orjson refuses to write) is walked in
Python, iteratively, so no nesting depth can exhaust the stack.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import orjson

from analytics.errors import BadRequest
from analytics.events.anonymous_ids import anonymous_user_id, derived_session_id
from analytics.events.models import EventRow
from analytics.events.times import InvalidTime, check_range_us, parse_instant, to_us


@dataclass(slots=True, frozen=True)
class RequestContext:
    """What the edge knows about the request, shared by every event in it."""

    project_id: str
    salt: str
    now_us: int
    ip_address: str | None
    user_agent: str | None
    cookie_user_id: str | None
    sent_at_us: int | None
    max_properties_bytes: int
    max_properties_depth: int
    future_tolerance_us: int
    skew_threshold_us: int
    session_window_minutes: int


def _text(body: dict[str, Any], name: str, *, required: bool, max_len: int) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required", code=f"{name}_required", field=name)
        return None
    if not isinstance(value, str):
        raise BadRequest(
            f"{name} must be a string, not {type(value).__name__}",
            code=f"{name}_invalid",
            field=name,
        )
    if not value:
        if required:
            raise BadRequest(f"{name} must not be empty", code=f"{name}_required", field=name)
        return None
    if len(value) > max_len:
        raise BadRequest(
            f"{name} is {len(value)} characters; the limit is {max_len}",
            code=f"{name}_too_long",
            field=name,
        )
    if "\x00" in value:
        raise BadRequest(
            f"{name} must not contain NUL (U+0000) characters", code=f"{name}_invalid", field=name
        )
    return value


def parse_time(value: Any, field: str) -> int:
    """ISO 8601 text (naive means UTC) or epoch seconds, as epoch microseconds."""
    if isinstance(value, bool):
        raise BadRequest(
            f"{field} must be an ISO 8601 datetime", code=f"{field}_invalid", field=field
        )
    if isinstance(value, int | float):
        try:
            moment = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise BadRequest(
                f"{field} is not a valid epoch time", code=f"{field}_invalid", field=field
            ) from exc
        return in_range(to_us(moment), field)
    if not isinstance(value, str):
        raise BadRequest(
            f"{field} must be an ISO 8601 datetime", code=f"{field}_invalid", field=field
        )
    try:
        return to_us(parse_instant(value))
    except InvalidTime as exc:
        code = "out_of_range" if exc.out_of_range else "invalid"
        raise BadRequest(f"{field} {exc}", code=f"{field}_{code}", field=field) from exc


def in_range(micros: int, field: str) -> int:
    """``micros`` when within the accepted years (``analytics.events.times``); else a 400."""
    try:
        return check_range_us(micros)
    except InvalidTime as exc:
        raise BadRequest(f"{field} {exc}", code=f"{field}_out_of_range", field=field) from exc


def corrected_time(timestamp_us: int, sent_at_us: int | None, ctx: RequestContext) -> int:
    """The event time shifted by the client's clock skew, held to every time rule.

    The skew (server now - ``sent_at``) applies only beyond the threshold. The range
    (1900 to 8999) and the 24-hour future rule apply to the time that is stored, so a
    far-off ``sent_at`` cannot push an accepted event out of range.
    """
    corrected = timestamp_us
    if sent_at_us is not None:
        skew = ctx.now_us - sent_at_us
        if abs(skew) > ctx.skew_threshold_us:
            corrected += skew
    if corrected != timestamp_us:
        try:
            check_range_us(corrected)
        except InvalidTime as exc:
            raise BadRequest(
                f"timestamp corrected by sent_at for the client's clock skew {exc}",
                code="timestamp_out_of_range",
                field="timestamp",
            ) from exc
    if corrected - ctx.now_us > ctx.future_tolerance_us:
        raise BadRequest(
            "timestamp is more than 24 hours ahead of the server clock"
            + (" once corrected by sent_at" if corrected != timestamp_us else ""),
            code="timestamp_in_future",
            field="timestamp",
        )
    return corrected


# The 64-bit range orjson writes: JSON integers outside it cannot be stored exactly.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

# Where a value sits in properties: (parent path, key or index), None for the object itself.
_Path: TypeAlias = tuple[Any, str | int] | None


def properties_text(properties: Any, max_bytes: int, max_depth: int) -> str:
    """``properties`` as the JSON text to store; a 400 naming the rule it breaks."""
    if properties is None:
        return "{}"
    if not isinstance(properties, dict):
        raise BadRequest(
            f"properties must be a JSON object, not {type(properties).__name__}",
            code="properties_invalid",
            field="properties",
        )
    try:
        encoded = orjson.dumps(properties)
    except orjson.JSONEncodeError as exc:
        # orjson writes at most 254 levels and 64-bit integers; say which rule is broken.
        check_shape(properties, max_depth)
        raise BadRequest(
            f"properties cannot be serialized: {exc}", code="properties_invalid", field="properties"
        ) from exc
    if len(encoded) > max_bytes:
        raise BadRequest(
            f"properties is {len(encoded)} bytes serialized; the limit is {max_bytes}",
            code="properties_too_large",
            field="properties",
        )
    if b"\\u0000" in encoded:
        # PostgreSQL's jsonb cannot hold U+0000 anywhere in a value or key.
        raise BadRequest(
            "properties must not contain NUL (U+0000) characters",
            code="properties_invalid",
            field="properties",
        )
    # Each level opens a bracket, so no more brackets than the limit (counting any inside
    # strings too) prove the depth without a walk; text shorter than the smallest one
    # nested too deep (`{"":[[…]]}`, 2 bytes a level) needs no count at all.
    if len(encoded) > 2 * max_depth + 2 and (
        len(encoded) - len(encoded.translate(None, b"{[")) > max_depth
    ):
        check_shape(properties, max_depth)
    return encoded.decode()


def check_shape(properties: dict[str, Any], max_depth: int) -> None:
    """A 400 if ``properties`` nests deeper than ``max_depth`` or holds an integer beyond 64 bits.

    The object itself is level 1. Walked with an explicit stack, never recursion; a
    path is a chain of ``(parent, key)`` pairs, spelled out only for the error.
    """
    stack: list[tuple[Any, int, _Path]] = [(properties, 1, None)]
    while stack:
        node, depth, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, dict | list):
                if depth >= max_depth:
                    raise BadRequest(
                        f"properties nest more than {max_depth} levels deep;"
                        f" the limit is {max_depth}",
                        code="properties_too_deep",
                        field="properties",
                    )
                stack.append((value, depth + 1, (path, key)))
            elif type(value) is int and not _INT_MIN <= value <= _INT_MAX:
                raise BadRequest(
                    f"{_spell((path, key))} is an integer beyond 64 bits;"
                    " integers must lie in -2^63 .. 2^64-1 (send larger ones as strings)",
                    code="properties_invalid",
                    field="properties",
                )


def _spell(path: _Path) -> str:
    """``properties.order.items[2].id`` from a ``(parent, key)`` chain."""
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key[:64]}")
    text = "properties" + "".join(reversed(parts))
    return text if len(text) <= 300 else text[:300] + "…"


_make_row = tuple.__new__


def validate_event(body: Any, ctx: RequestContext, *, sample_rate: float = 1.0) -> EventRow:
    """Check one event and fill its defaults; ``event_source_id`` is left 0 for the caller."""
    if not isinstance(body, dict):
        raise BadRequest("an event must be a JSON object", code="event_invalid", field="event")
    event_name = _text(body, "event_name", required=True, max_len=255)
    event_source = _text(body, "event_source", required=True, max_len=255)
    assert event_name is not None and event_source is not None
    event_id = _text(body, "event_id", required=False, max_len=128) or str(uuid.uuid4())
    user_id = _text(body, "user_id", required=False, max_len=255)
    session_id = _text(body, "session_id", required=False, max_len=255)

    props_text = properties_text(
        body.get("properties"), ctx.max_properties_bytes, ctx.max_properties_depth
    )
    return event_row(
        ctx,
        event_name,
        event_source,
        event_id,
        user_id,
        session_id,
        props_text,
        body.get("timestamp"),
        body.get("sent_at"),
        sample_rate,
    )


def event_row(
    ctx: RequestContext,
    event_name: str,
    event_source: str,
    event_id: str,
    user_id: str | None,
    session_id: str | None,
    props_text: str,
    raw_ts: Any,
    raw_sent_at: Any,
    sample_rate: float = 1.0,
) -> EventRow:
    """The row of an event whose text fields and properties passed: its times and defaults.

    Shared by ``validate_event`` and the batch fast path (``analytics.events.wire``), so
    both derive times, user ids and session ids the one way.
    """
    sent_at_us = ctx.sent_at_us
    if raw_sent_at is not None:
        sent_at_us = parse_time(raw_sent_at, "sent_at")
    if raw_ts is None:
        timestamp_us = ctx.now_us  # the server's own clock needs no correction
    else:
        timestamp_us = corrected_time(parse_time(raw_ts, "timestamp"), sent_at_us, ctx)

    if user_id is None:
        user_id = ctx.cookie_user_id or anonymous_user_id(ctx.ip_address, ctx.user_agent, ctx.salt)
    if session_id is None:
        session_id = derived_session_id(
            ctx.project_id, user_id, timestamp_us, ctx.session_window_minutes
        )
    # Positional, through tuple.__new__: the NamedTuple's own __new__ parses keywords and
    # costs a sizeable share of a batch's validation. The order is EventRow's fields.
    return _make_row(
        EventRow,
        (
            ctx.project_id,
            event_id,
            0,  # event_source_id, filled by the caller
            event_source,
            user_id,
            session_id,
            event_name,
            props_text,
            timestamp_us,
            sample_rate,
            ctx.now_us,  # received_at_us
            ctx.ip_address,
            ctx.user_agent,
        ),
    )
