"""The batch fast path (``analytics.events.wire``) against the ordinary one.

For every body the fast path takes, the ordinary path (``parse_json`` then
``validate_event`` per event) must read the same envelope and produce byte-for-byte the
same rows; where an event breaks a rule the fast path must decline, so the rejection
comes from the ordinary path with its code and field. Bodies are generated (valid and
invalid, near every limit) and the same fixed seeds run every time.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import msgspec
import pytest

from analytics.errors import BadRequest
from analytics.events.models import EventRow
from analytics.events.raw_properties import kept_text
from analytics.events.validation import RequestContext, parse_time, validate_event
from analytics.events.wire import batch_rows, decode_batch, stored_properties
from tests.support.events import request_context
from tests.support.wire_bodies import body
from web.body import parse_json

Outcome = tuple[str, Any]


@pytest.fixture
def fixed_uuids(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """uuid.uuid4 as a counter the test resets, so generated event ids can be compared."""
    counter = [0]

    def next_uuid() -> uuid.UUID:
        counter[0] += 1
        return uuid.UUID(int=counter[0])

    monkeypatch.setattr(uuid, "uuid4", next_uuid)
    yield counter


def ordinary(raw: bytes, ctx: RequestContext) -> tuple[str, Any]:
    """What the ordinary path makes of a batch body: an envelope error or per-event outcomes."""
    try:
        parsed = parse_json(raw)
    except BadRequest as error:
        return "request", (error.code, error.field)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("events"), list):
        return "request", ("envelope", None)
    sent_at = parsed.get("sent_at")
    try:
        own = replace(ctx, sent_at_us=None if sent_at is None else parse_time(sent_at, "sent_at"))
    except BadRequest as error:
        return "request", (error.code, error.field)
    outcomes: list[Outcome] = []
    for event in parsed["events"]:
        try:
            outcomes.append(("row", validate_event(event, own)))
        except BadRequest as error:
            outcomes.append(("rejected", (error.code, error.field)))
    return "events", outcomes


def fast(raw: bytes, ctx: RequestContext) -> tuple[str, Any] | None:
    """What the fast path makes of it, or None where it declines the body."""
    decoded = decode_batch(raw, ctx.max_properties_bytes, ctx.max_properties_depth)
    if decoded is None:
        return None
    try:
        sent_at_us = None if decoded.sent_at is None else parse_time(decoded.sent_at, "sent_at")
    except BadRequest as error:
        return "request", (error.code, error.field)
    rows = batch_rows(decoded, replace(ctx, sent_at_us=sent_at_us))
    if rows is None:
        return "declined", None
    assert [index for index, _ in rows] == list(range(len(rows)))
    return "events", [("row", row) for _, row in rows]


CONTEXTS = {
    "defaults": request_context(),
    "tight limits": request_context(max_properties_bytes=120, max_properties_depth=4),
    "cookie, sent_at": request_context(cookie_user_id="c00kie123", sent_at_us=None),
}


@pytest.mark.parametrize("name", list(CONTEXTS))
@pytest.mark.parametrize("seed", range(4))
def test_fast_path_agrees_with_validate_event(name: str, seed: int, fixed_uuids: list[int]) -> None:
    ctx = CONTEXTS[name]
    rng = random.Random(f"{name}-{seed}")
    taken = declined_events = 0
    for _ in range(400):
        raw = body(rng, ctx.max_properties_bytes, ctx.max_properties_depth)
        fixed_uuids[0] = 0
        expected = ordinary(raw, ctx)
        fixed_uuids[0] = 0
        got = fast(raw, ctx)
        if got is None:
            continue
        if got[0] == "declined":
            # Only an event the ordinary path rejects may make the fast path decline.
            assert expected[0] == "events", raw
            assert any(kind == "rejected" for kind, _ in expected[1]), raw
            declined_events += 1
            continue
        taken += 1
        assert got == expected, raw
        if expected[0] == "events":
            api_key = parse_json(raw).get("api_key")
            decoded = decode_batch(raw, ctx.max_properties_bytes, ctx.max_properties_depth)
            assert decoded is not None
            assert decoded.api_key == (api_key if isinstance(api_key, str) else None)
    assert taken >= 80  # the fast path is taken for a good share of these bodies


def test_every_row_field_is_compared() -> None:
    # The comparison above is of whole EventRows: a tuple of every stored field.
    assert EventRow._fields[7] == "properties" and len(EventRow._fields) == 13


def test_a_valid_batch_of_common_events_takes_the_fast_path(fixed_uuids: list[int]) -> None:
    raw = (
        b'{"events":['
        b'{"event_name":"page_view","event_source":"web","user_id":"u1","event_id":"e1",'
        b'"properties":{"path":"/a b","n":3,"ok":true,"tags":["x","y"],"none":null}},'
        b'{"event_name":"signup","event_source":"web","properties":{"plan":"pro","seats":12},'
        b'"timestamp":"2026-05-01T12:00:00Z"},'
        b'{"event_name":"caf\xc3\xa9","event_source":"app","session_id":"s1","properties":{}}'
        b'],"sent_at":"2026-05-01T12:00:00Z"}'
    )
    ctx = request_context()
    decoded = decode_batch(raw, ctx.max_properties_bytes, ctx.max_properties_depth)
    assert decoded is not None
    assert decoded.properties == [
        '{"path":"/a b","n":3,"ok":true,"tags":["x","y"],"none":null}',
        '{"plan":"pro","seats":12}',
        "{}",
    ]
    fixed_uuids[0] = 0
    got = fast(raw, ctx)
    fixed_uuids[0] = 0
    assert got == ordinary(raw, ctx)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"events":[{"event_name":"a","event_source":"w","extra":1}]}',  # unknown field
        b'{"events":[{"event_name":"","event_source":"w"}]}',  # event_name_required
        b'{"events":[{"event_name":"a\\u0000","event_source":"w"}]}',  # NUL
        b'{"events":[{"event_name":"a","event_source":"w","properties":[1]}]}',
        b'{"events":[{"event_name":"a","event_source":"w","timestamp":true}]}',
        b'{"events":[{"event_name":"a","event_source":"w","properties":{"a":1e400}}]}',
        b'{"events":[{"event_name":"a","event_source":"w","x":"\xff"}]}',
        b'{"events":[{"event_name":"a","event_source":"w","properties":{"a":"\xff"}}]}',
        b'{"events":[{"event_name":"a","event_source":"w","properties":'
        + b"[" * 40
        + b"]" * 40
        + b"}]}",
        b'{"events":{}}',
        b"[]",
        # Replaced members: msgspec checks only the syntax of the raw value it drops.
        b'{"events":[{"event_name":"a","event_source":"w","properties":{"a":1e400},'
        b'"properties":{}}]}',
        b'{"events":[{"event_name":"a","event_source":"w","propertie\\u0073":{"a":1e400},'
        b'"properties":{}}]}',
        b'{"events":[{"event_name":"a","event_source":"w","properties":{"a":1e400}}],"events":[]}',
    ],
)
def test_the_fast_path_declines_what_it_cannot_vouch_for(raw: bytes) -> None:
    assert decode_batch(raw, 64 * 1024, 32) is None


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (b'{"a":1}', True),
        (b'{"a":"x y","b":[1,-2,{"c":null}],"d":false}', True),
        (b"{}", True),
        (b'{"a": 1}', False),  # whitespace
        (b'{"a":1.5}', False),  # a fraction: orjson's spelling may differ
        (b'{"a":1e5}', False),
        (b'{"a":-0}', False),
        (b'{"a":"\\/"}', False),  # an escape
        (b'{"a":1,"a":2}', False),  # a repeated key
        (b'{"a":1234567890123456789}', False),  # 19 digits: may not fit 64 bits
        (b'{"a":[[[[1]]]]}', False),  # more brackets than max_depth (4)
    ],
)
def test_kept_text_keeps_only_text_orjson_writes_back_unchanged(raw: bytes, kept: bool) -> None:
    text = kept_text(raw, 1000, 4)
    assert (text == raw.decode()) if kept else text is None
    if kept:
        # The proof holds: a parse and orjson write gives the very same text.
        assert stored_properties(raw, 1000, 4) == raw.decode()


def test_kept_text_refuses_text_over_the_size_limit() -> None:
    raw = b'{"a":"' + b"x" * 100 + b'"}'
    assert kept_text(raw, len(raw), 32) == raw.decode()
    assert kept_text(raw, len(raw) - 1, 32) is None
    assert stored_properties(raw, len(raw) - 1, 32) is None  # properties_too_large


def test_wire_structs_are_not_tracked_by_the_garbage_collector() -> None:
    import gc

    decoded = msgspec.json.decode(b'{"events":[{"event_name":"a","event_source":"w"}]}')
    batch = decode_batch(b'{"events":[{"event_name":"a","event_source":"w"}]}', 100, 4)
    assert decoded and batch is not None
    assert not gc.is_tracked(batch.events[0])
