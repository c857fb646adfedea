"""Segment messages mapped onto our events (``analytics.events.segment``, pure), then validated
as any event is; and where the write key is read from (``_write_key``, which reads only the
request's headers: a request built in memory, no socket)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request

from analytics.errors import BadRequest
from analytics.events.segment import MESSAGE_LIMIT, shape_error, to_event
from analytics.events.times import to_us
from analytics.events.validation import validate_event
from tests.support.events import SERVER_NOW, request_context
from web.segment import _write_key


def _to_event(message: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """``to_event`` with the kind a message names itself, as the edge calls it."""
    return to_event(message, kind or message["type"])


def validated_or_error(message: Any, kind: str | None = None) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        validate_event(_to_event(message, kind), request_context())
    return caught.value


def test_track_maps_every_field() -> None:
    message = {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "anonymousId": "anon-1",
        "messageId": "m1",
        "properties": {"total": 30},
        "timestamp": "2026-02-01T10:00:00Z",
        "sentAt": "2026-02-01T10:00:01Z",
        "context": {"library": {"name": "analytics-node", "version": "6.0"}},
    }
    assert _to_event(message) == {
        "event_name": "Order Completed",
        "event_source": "analytics-node",
        # the library is kept in properties.context, by Segment's own names
        "properties": {
            "total": 30,
            "context": {"library": {"name": "analytics-node", "version": "6.0"}},
        },
        "event_id": "m1",
        "user_id": "u1",  # userId wins over anonymousId
        "timestamp": "2026-02-01T10:00:00Z",
        "sent_at": "2026-02-01T10:00:01Z",
    }


@pytest.mark.parametrize(
    ("message", "name", "properties"),
    [
        ({"type": "page", "name": "Home", "properties": {"path": "/"}}, "page_view", None),
        ({"type": "page", "properties": {"path": "/"}}, "page_view", {"path": "/"}),
        ({"type": "page"}, "page_view", {}),
        ({"type": "screen", "name": "Cart"}, "screen_view", {"name": "Cart"}),
        ({"type": "identify", "traits": {"plan": "pro"}}, "identify", {"plan": "pro"}),
        ({"type": "identify"}, "identify", {}),
        ({"type": "group", "groupId": "g9", "traits": {"n": 3}}, "group", None),
        ({"type": "alias", "previousId": "anon-7"}, "alias", {"previousId": "anon-7"}),
    ],
)
def test_names_and_properties_per_type(
    message: dict[str, Any], name: str, properties: dict[str, Any] | None
) -> None:
    event = _to_event({**message, "userId": "u1"})
    assert event["event_name"] == name
    if properties is not None:
        assert event["properties"] == properties


def test_page_name_goes_into_the_properties_unless_they_have_one() -> None:
    page = _to_event({"type": "page", "name": "Home", "properties": {"path": "/"}})
    assert page["properties"] == {"path": "/", "name": "Home"}
    own = _to_event({"type": "page", "name": "Home", "properties": {"name": "Landing"}})
    assert own["properties"] == {"name": "Landing"}
    # Track events keep their properties as sent.
    assert _to_event({"type": "track", "event": "x", "name": "N"})["properties"] == {}


def test_group_adds_its_group_id() -> None:
    event = _to_event({"type": "group", "groupId": "g9", "traits": {"n": 3}})
    assert event["properties"] == {"n": 3, "groupId": "g9"}


@pytest.mark.parametrize(
    ("ids", "user_id"),
    [
        ({"userId": "u1", "anonymousId": "a1"}, "u1"),
        ({"anonymousId": "a1"}, "a1"),
        ({"userId": None, "anonymousId": "a1"}, "a1"),
        ({"userId": 42}, "42"),
        ({}, None),
    ],
)
def test_user_id_from_user_or_anonymous_id(ids: dict[str, Any], user_id: str | None) -> None:
    event = _to_event({"type": "track", "event": "x", **ids})
    assert event.get("user_id") == user_id


@pytest.mark.parametrize(
    "context",
    [None, "not an object", {}, {"library": "x"}, {"library": {}}, {"library": {"name": ""}}],
)
def test_source_defaults_to_segment(context: Any) -> None:
    event = _to_event({"type": "track", "event": "x", "context": context})
    assert event["event_source"] == "segment"


def test_the_endpoint_kind_wins_over_the_body() -> None:
    # POST /v1/page: the message needs no "type".
    assert _to_event({"name": "Pricing"}, "page")["event_name"] == "page_view"
    assert _to_event({"type": "track", "event": "x"}, "screen")["event_name"] == "screen_view"


def test_without_message_id_the_edge_makes_the_event_id() -> None:
    event = _to_event({"type": "track", "event": "x", "userId": "u"})
    assert "event_id" not in event
    assert len(validate_event(event, request_context()).event_id) == 36  # a UUID


def test_a_mapped_message_validates_into_the_expected_row() -> None:
    sent_at = SERVER_NOW + timedelta(hours=1)  # the device clock is an hour ahead
    stamped = sent_at - timedelta(seconds=5)
    message = {
        "type": "track",
        "event": "Signed Up",
        "userId": "u1",
        "messageId": "m1",
        "properties": {"plan": "pro"},
        "timestamp": stamped.isoformat(),
        "sentAt": sent_at.isoformat(),
    }
    row = validate_event(_to_event(message), request_context())
    assert (row.event_name, row.event_source, row.event_id, row.user_id) == (
        "Signed Up",
        "segment",
        "m1",
        "u1",
    )
    assert orjson.loads(row.properties) == {"plan": "pro"}
    # Corrected by the device's skew: 5 s before the server's now.
    assert row.timestamp_us == to_us(SERVER_NOW - timedelta(seconds=5))


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "track", "userId": "u"}, "event_name_required"),  # no event name
        ({"type": "track", "event": "x", "properties": [1, 2]}, "properties_invalid"),
        ({"type": "identify", "traits": "nope"}, "properties_invalid"),
        ({"type": "track", "event": "x", "messageId": 7}, "event_id_invalid"),
    ],
)
def test_malformed_messages_are_rejected_by_validation(message: Any, code: str) -> None:
    assert validated_or_error(message).code == code


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [
        ({"type": "unknown", "userId": "u"}, "type_invalid", "type"),
        ({"userId": "u"}, "type_invalid", "type"),  # no type at /v1/batch
        ("not a message", "event_invalid", "message"),
        (
            {"type": "track", "event": "x", "properties": {"blob": "x" * MESSAGE_LIMIT}},
            "message_too_large",
            "message",
        ),
    ],
)
def test_what_is_no_segment_message_is_refused_before_mapping(
    message: Any, code: str, field: str
) -> None:
    error = shape_error(message, None)
    assert error is not None and (error.code, error.field) == (code, field)


def test_a_message_under_32_kb_passes() -> None:
    fits = {"type": "track", "event": "x", "properties": {"blob": "x" * 30_000}}
    assert validate_event(_to_event(fits), request_context()).event_name == "x"


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "body", "key"),
    [
        (basic("sa_key"), {}, "sa_key"),
        (basic("sa_key", "ignored"), {}, "sa_key"),
        (basic("sa_key"), {"writeKey": "sa_body"}, "sa_key"),  # the header wins
        ("Bearer sa_key", {}, "sa_key"),
        (None, {"writeKey": "sa_body"}, "sa_body"),
        (basic(""), {"writeKey": "sa_body"}, "sa_body"),  # empty user name
        ("Basic !!!not-base64", {"writeKey": "sa_body"}, "sa_body"),
        (None, {"writeKey": 12}, None),
        (None, ["not", "an", "object"], None),
        (None, {}, None),
    ],
)
def test_write_key_sources(authorization: str | None, body: Any, key: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    request = make_mocked_request("POST", "/v1/batch", headers=headers)
    assert _write_key(request, body) == key
