"""The batch fast path (issue 17): a batch body decoded by msgspec, properties kept as sent.

``decode_batch`` answers only when sure: the body is one ``web.body.parse_json`` reads
to the same values, every field has a type and length ``validate_event`` accepts, and
each event's properties text is the one ``properties_text`` would store. Anything else
(a wrong type, an unknown field, a NUL, an invalid property …) gives None, and the caller
validates the body the ordinary way, so every rejection keeps its code and field.
``batch_rows`` then finishes the events through ``validation.event_row``, the same
code ``validate_event`` ends in; None again when any event breaks a time rule.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, TypeAlias

import msgspec
import orjson

from analytics.errors import BadRequest
from analytics.events.long_integers import may_hold_long_integer
from analytics.events.models import EventRow
from analytics.events.raw_properties import kept_text, kept_texts
from analytics.events.validation import RequestContext, event_row, properties_text

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Text255 = Annotated[str, msgspec.Meta(max_length=255)]
Text128 = Annotated[str, msgspec.Meta(max_length=128)]
# A time as validation.parse_time takes it; msgspec refuses booleans and infinite numbers.
Instant: TypeAlias = str | int | float


class WireEvent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One event of a batch as sent; an empty optional text counts as absent."""

    event_name: Name
    event_source: Name
    event_id: Text128 | None = None
    user_id: Text255 | None = None
    session_id: Text255 | None = None
    properties: msgspec.Raw = msgspec.Raw()
    timestamp: Instant | None = None
    sent_at: Instant | None = None


class WireBatch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A batch body (SPEC §4), ``api_key`` for sendBeacon."""

    events: list[WireEvent]
    sent_at: Instant | None = None
    api_key: str | None = None


@dataclass(slots=True)
class DecodedBatch:
    """A batch the fast path is sure of, with each event's properties text to store."""

    events: list[WireEvent]
    properties: list[str]
    sent_at: Instant | None
    api_key: str | None


_DECODER = msgspec.json.Decoder(WireBatch)
_NUL = b"\\u0000"
# An ASCII character written as an escape: no encoder does it, but it could spell a key
# ``"propertie\u0073"`` that the count of properties members below would not see.
_ESCAPED_ASCII = re.compile(rb"\\u00[2-7][0-9a-fA-F]")
_PROPERTIES_KEY = b'"properties"'


def decode_batch(raw: bytes, max_bytes: int, max_depth: int) -> DecodedBatch | None:
    """The batch in ``raw`` when the fast path is sure of it, else None."""
    if _NUL in raw:
        return None  # a NUL in any text is refused by name: the ordinary path says which
    if b"\\u00" in raw and _ESCAPED_ASCII.search(raw):
        return None
    if not raw.isascii():
        try:
            raw.decode()  # msgspec does not check the UTF-8 of what it skips or keeps raw
        except UnicodeDecodeError:
            return None
    try:
        batch = _DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None
    raws = [bytes(event.properties) for event in batch.events]
    # A repeated key keeps its last value and msgspec checks no more than the syntax of a
    # raw value it drops: one "properties" member per event that has one proves none
    # was dropped (a repeated "events" list is typed, so fully checked, but for these).
    if raw.count(_PROPERTIES_KEY) != sum(1 for text in raws if text):
        return None
    objects = [text for text in raws if text[:1] == b"{"]
    kept = iter(kept_texts(objects, max_bytes, max_depth))
    texts: list[str] = []
    for text in raws:
        if text[:1] == b"{":
            stored = next(kept) or written_properties(text, max_bytes, max_depth)
        elif not text or text == b"null":
            stored = "{}"
        else:
            return None  # not an object: properties_invalid
        if stored is None:
            return None
        texts.append(stored)
    return DecodedBatch(batch.events, texts, batch.sent_at, batch.api_key)


def stored_properties(raw: bytes, max_bytes: int, max_depth: int) -> str | None:
    """``properties_text`` of the value ``raw`` holds, or None when it would refuse it."""
    if raw[:1] == b"{":
        return kept_text(raw, max_bytes, max_depth) or written_properties(raw, max_bytes, max_depth)
    return "{}" if raw == b"null" else None


def written_properties(raw: bytes, max_bytes: int, max_depth: int) -> str | None:
    """An object's text parsed and written by ``properties_text``; None when it refuses."""
    if may_hold_long_integer(raw):
        return None  # orjson may read a long integer inexactly
    try:
        return properties_text(orjson.loads(raw), max_bytes, max_depth)
    except (orjson.JSONDecodeError, BadRequest):
        return None


def batch_rows(batch: DecodedBatch, ctx: RequestContext) -> list[tuple[int, EventRow]] | None:
    """(index, row) of every event, or None when one breaks a rule (validate them anew)."""
    valid: list[tuple[int, EventRow]] = []
    try:
        for index, (event, text) in enumerate(zip(batch.events, batch.properties, strict=True)):
            valid.append(
                (
                    index,
                    event_row(
                        ctx,
                        event.event_name,
                        event.event_source,
                        event.event_id or str(uuid.uuid4()),
                        event.user_id or None,
                        event.session_id or None,
                        text,
                        event.timestamp,
                        event.sent_at,
                    ),
                )
            )
    except BadRequest:
        return None
    return valid
