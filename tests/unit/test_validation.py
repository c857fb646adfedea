"""Event validation at the edge (``validate_event``, SPEC §3 and §4): the field rules, the
error each broken rule gives (code and field), and the defaults filled in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from analytics.errors import BadRequest
from analytics.events.anonymous_ids import anonymous_user_id, derived_session_id
from analytics.events.times import to_us
from analytics.events.validation import parse_time, validate_event
from tests.support.events import SECOND_US, SEED, SERVER_NOW, SERVER_NOW_US, request_context

MINIMAL = {"event_name": "page_view", "event_source": "web"}


def refusal(body: Any, **ctx: Any) -> BadRequest:
    """The error validating ``body`` raises (the test fails if it is accepted)."""
    with pytest.raises(BadRequest) as caught:
        validate_event(body, request_context(**ctx))
    assert caught.value.status == 400
    return caught.value


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_the_seed_example_is_accepted_field_for_field() -> None:
    body = {
        **SEED,
        "project_id": "someone-else",  # never taken from the body
    }
    row = validate_event(body, request_context(), sample_rate=0.25)
    assert row.project_id == "p1"
    assert (row.event_name, row.event_source, row.event_id) == (
        "page_view",
        "web_app",
        "client_event_id",
    )
    assert (row.user_id, row.session_id) == ("user_123", "sess_abc")
    assert orjson.loads(row.properties) == body["properties"]
    assert row.timestamp_us == to_us(datetime(2023, 1, 1, 12, tzinfo=UTC))
    assert row.sample_rate == 0.25
    assert row.received_at_us == SERVER_NOW_US
    assert (row.ip_address, row.user_agent) == ("203.0.113.7", "Mozilla/5.0 (test)")
    assert row.event_source_id == 0  # the caller fills it in


@pytest.mark.parametrize("body", [[MINIMAL], "page_view", None, 3])
def test_an_event_must_be_an_object(body: Any) -> None:
    error = refusal(body)
    assert (error.code, error.field) == ("event_invalid", "event")


@pytest.mark.parametrize("field", ["event_name", "event_source"])
@pytest.mark.parametrize("value", [None, ""])
def test_required_fields(field: str, value: str | None) -> None:
    body: dict[str, Any] = dict(MINIMAL)
    if value is None:
        del body[field]
    else:
        body[field] = value
    error = refusal(body)
    assert (error.code, error.field) == (f"{field}_required", field)


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("event_name", 255),
        ("event_source", 255),
        ("event_id", 128),
        ("user_id", 255),
        ("session_id", 255),
    ],
)
def test_length_limits(field: str, limit: int) -> None:
    at_limit = validate_event({**MINIMAL, field: "x" * limit}, request_context())
    assert getattr(at_limit, field) == "x" * limit
    error = refusal({**MINIMAL, field: "x" * (limit + 1)})
    assert (error.code, error.field) == (f"{field}_too_long", field)
    assert error.detail == f"{field} is {limit + 1} characters; the limit is {limit}"


def test_the_spec_error_body_for_a_long_name() -> None:
    error = refusal({**MINIMAL, "event_name": "n" * 300})
    assert error.to_json() == {
        "code": "event_name_too_long",
        "detail": "event_name is 300 characters; the limit is 255",
        "field": "event_name",
    }


@pytest.mark.parametrize("field", ["event_name", "event_source", "event_id", "user_id"])
def test_text_fields_must_be_strings_without_nul(field: str) -> None:
    assert refusal({**MINIMAL, field: 42}).code == f"{field}_invalid"
    assert refusal({**MINIMAL, field: ["a"]}).code == f"{field}_invalid"
    error = refusal({**MINIMAL, field: "a\x00b"})
    assert (error.code, error.field) == (f"{field}_invalid", field)


def test_properties_default_to_an_empty_object() -> None:
    assert validate_event(MINIMAL, request_context()).properties == "{}"
    assert validate_event({**MINIMAL, "properties": None}, request_context()).properties == "{}"


@pytest.mark.parametrize("value", [[1, 2], "text", 5, True])
def test_properties_must_be_an_object(value: Any) -> None:
    error = refusal({**MINIMAL, "properties": value})
    assert (error.code, error.field) == ("properties_invalid", "properties")


def test_properties_size_limit_is_on_the_serialized_form() -> None:
    # {"k":"xxx…"} serializes to len(value) + 8 bytes.
    limit = 64 * 1024
    fits = {"k": "x" * (limit - 8)}
    assert len(orjson.dumps(fits)) == limit
    row = validate_event({**MINIMAL, "properties": fits}, request_context())
    assert len(row.properties) == limit
    error = refusal({**MINIMAL, "properties": {"k": "x" * (limit - 7)}})
    assert (error.code, error.field) == ("properties_too_large", "properties")
    assert error.detail == f"properties is {limit + 1} bytes serialized; the limit is {limit}"


def test_the_properties_limit_comes_from_the_context() -> None:
    body = {**MINIMAL, "properties": {"k": "x" * 10}}  # 18 bytes
    assert validate_event(body, request_context(max_properties_bytes=18)).properties
    assert refusal(body, max_properties_bytes=17).code == "properties_too_large"


@pytest.mark.parametrize(
    "properties",
    [{"k": "a\x00b"}, {"a\x00": 1}, {"nested": {"list": ["ok", "\x00"]}}],
)
def test_nul_anywhere_in_properties_is_refused(properties: dict[str, Any]) -> None:
    error = refusal({**MINIMAL, "properties": properties})
    assert (error.code, error.field) == ("properties_invalid", "properties")


def test_unicode_properties_are_kept() -> None:
    props = {"title": "Grüße, 世界", "emoji": "🎉"}
    row = validate_event({**MINIMAL, "properties": props}, request_context())
    assert orjson.loads(row.properties) == props


def test_timestamp_defaults_to_server_time() -> None:
    assert validate_event(MINIMAL, request_context()).timestamp_us == SERVER_NOW_US


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-31T12:00:00Z", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31T12:00:00", datetime(2024, 1, 31, 12, tzinfo=UTC)),  # naive = UTC
        ("2024-01-31T14:00:00+02:00", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        (1_706_702_400, datetime(2024, 1, 31, 12, tzinfo=UTC)),  # epoch seconds
        (1_706_702_400.5, datetime(2024, 1, 31, 12, 0, 0, 500_000, tzinfo=UTC)),
        ("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),  # any past is fine
    ],
)
def test_timestamp_forms(value: Any, expected: datetime) -> None:
    row = validate_event({**MINIMAL, "timestamp": value}, request_context())
    assert row.timestamp_us == to_us(expected)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("soon", "timestamp_invalid"),
        (True, "timestamp_invalid"),
        ({"t": 1}, "timestamp_invalid"),
        ("1899-12-31T23:59:59Z", "timestamp_out_of_range"),
        ("9000-01-01T00:00:00Z", "timestamp_out_of_range"),
        (-3_000_000_000, "timestamp_out_of_range"),  # epoch seconds in 1874
    ],
)
def test_bad_timestamps(value: Any, code: str) -> None:
    error = refusal({**MINIMAL, "timestamp": value})
    assert (error.code, error.field) == (code, "timestamp")


def test_at_most_24_hours_ahead_of_the_server() -> None:
    edge = SERVER_NOW + timedelta(hours=24)
    row = validate_event({**MINIMAL, "timestamp": iso(edge)}, request_context())
    assert row.timestamp_us == to_us(edge)
    error = refusal({**MINIMAL, "timestamp": iso(edge + timedelta(seconds=1))})
    assert (error.code, error.field) == ("timestamp_in_future", "timestamp")


def shifted(client_skew: timedelta, *, batch_level: bool = False) -> int:
    """The stored timestamp of an event stamped 10 min before ``sent_at`` on a client clock
    that runs ``client_skew`` ahead of the server's; µs shift from the client's own stamp."""
    sent_at = SERVER_NOW + client_skew
    stamped = sent_at - timedelta(minutes=10)
    body: dict[str, Any] = {**MINIMAL, "timestamp": iso(stamped)}
    ctx: dict[str, Any] = {}
    if batch_level:
        ctx["sent_at_us"] = to_us(sent_at)
    else:
        body["sent_at"] = iso(sent_at)
    row = validate_event(body, request_context(**ctx))
    return row.timestamp_us - to_us(stamped)


@pytest.mark.parametrize(
    ("client_skew", "expected_shift"),
    [
        (timedelta(seconds=0), 0),
        (timedelta(seconds=100), 0),
        (timedelta(seconds=150), 0),  # exactly the threshold: left alone
        (timedelta(seconds=-150), 0),
        (timedelta(seconds=151), -151),
        (timedelta(seconds=-200), 200),  # client clock behind: moved forward
        (timedelta(hours=-3), 3 * 3600),
    ],
)
def test_clock_skew_beyond_150_s_is_corrected(client_skew: timedelta, expected_shift: int) -> None:
    assert shifted(client_skew) == expected_shift * SECOND_US
    assert shifted(client_skew, batch_level=True) == expected_shift * SECOND_US


def test_skew_correction_rescues_a_client_clock_days_ahead() -> None:
    ahead = SERVER_NOW + timedelta(days=2)
    body = {**MINIMAL, "timestamp": iso(ahead)}
    assert refusal(body).code == "timestamp_in_future"
    row = validate_event({**body, "sent_at": iso(ahead)}, request_context())
    assert row.timestamp_us == SERVER_NOW_US


def test_an_events_own_sent_at_wins_over_the_batchs() -> None:
    stamped = SERVER_NOW - timedelta(hours=1)
    body = {**MINIMAL, "timestamp": iso(stamped), "sent_at": iso(SERVER_NOW)}  # no skew
    batch_sent_at = to_us(SERVER_NOW - timedelta(hours=5))
    row = validate_event(body, request_context(sent_at_us=batch_sent_at))
    assert row.timestamp_us == to_us(stamped)


def test_sent_at_without_timestamp_leaves_server_time() -> None:
    body = {**MINIMAL, "sent_at": iso(SERVER_NOW - timedelta(hours=2))}
    assert validate_event(body, request_context()).timestamp_us == SERVER_NOW_US


def test_a_bad_sent_at_names_its_field() -> None:
    error = refusal({**MINIMAL, "timestamp": iso(SERVER_NOW), "sent_at": "whenever"})
    assert (error.code, error.field) == ("sent_at_invalid", "sent_at")


def test_event_id_is_a_fresh_uuid_when_absent_or_empty() -> None:
    first = validate_event(MINIMAL, request_context()).event_id
    second = validate_event({**MINIMAL, "event_id": ""}, request_context()).event_id
    assert first != second
    assert str(uuid.UUID(first)) == first and str(uuid.UUID(second)) == second


def test_user_id_falls_back_to_the_browser_cookie() -> None:
    row = validate_event(MINIMAL, request_context(cookie_user_id="c00kie123"))
    assert row.user_id == "c00kie123"
    own = validate_event({**MINIMAL, "user_id": "u9"}, request_context(cookie_user_id="c00kie123"))
    assert own.user_id == "u9"


def test_user_id_falls_back_to_a_hash_of_ip_agent_and_salt() -> None:
    row = validate_event({**MINIMAL, "user_id": ""}, request_context())
    expected = anonymous_user_id("203.0.113.7", "Mozilla/5.0 (test)", "salt-1")
    assert row.user_id == expected
    assert expected.startswith("anon_")
    # Stable for the same client, different for another IP, agent or project salt.
    assert validate_event(MINIMAL, request_context()).user_id == expected
    others = {
        validate_event(MINIMAL, request_context(ip_address="203.0.113.8")).user_id,
        validate_event(MINIMAL, request_context(user_agent="curl/8")).user_id,
        validate_event(MINIMAL, request_context(salt="salt-2")).user_id,
    }
    assert expected not in others and len(others) == 3
    # The raw address is not readable from the id.
    assert "203.0.113.7" not in expected


def test_session_is_derived_from_the_window_of_the_timestamp() -> None:
    def session(at: datetime, **ctx: Any) -> str | None:
        body = {**MINIMAL, "user_id": "u1", "timestamp": iso(at)}
        return validate_event(body, request_context(**ctx)).session_id

    hour = datetime(2026, 3, 1, 9, tzinfo=UTC)
    first = session(hour)
    assert first == derived_session_id("p1", "u1", to_us(hour), 60)
    assert session(hour + timedelta(minutes=59, seconds=59)) == first
    assert session(hour + timedelta(minutes=60)) != first
    assert session(hour - timedelta(seconds=1)) != first
    # A shorter project window splits the hour; another project never shares sessions.
    assert session(hour, session_window_minutes=30) != session(
        hour + timedelta(minutes=31), session_window_minutes=30
    )
    assert session(hour, project_id="p2") != first


def test_a_clients_session_id_is_kept() -> None:
    row = validate_event({**MINIMAL, "session_id": "mine"}, request_context())
    assert row.session_id == "mine"


def test_parse_time_names_the_field_it_was_given() -> None:
    assert parse_time("2024-01-31", "start_date") == to_us(datetime(2024, 1, 31, tzinfo=UTC))
    with pytest.raises(BadRequest) as caught:
        parse_time("nope", "start_date")
    assert (caught.value.code, caught.value.field) == ("start_date_invalid", "start_date")
    with pytest.raises(BadRequest) as caught:
        parse_time(None, "end_date")
    assert caught.value.code == "end_date_invalid"


def test_derived_session_ids_keep_their_published_formula() -> None:
    # Stored ids must not change with the code that makes them: blake2b-96 of
    # "project \x1f user \x1f window minutes \x1f window number", hex, prefixed "s_".
    import hashlib

    hour = to_us(datetime(2026, 3, 1, 12, 30, tzinfo=UTC))
    window = hour // (60 * 60_000_000)
    material = f"p1\x1fu1\x1f60\x1f{window}".encode()
    expected = "s_" + hashlib.blake2b(material, digest_size=12).hexdigest()
    assert derived_session_id("p1", "u1", hour, 60) == expected
    assert derived_session_id("p1", "u1", hour, 60) == expected  # remembered, the same
    assert derived_session_id("p1", "u1", hour + 20 * 60_000_000, 60) == expected  # same hour
    assert derived_session_id("p1", "u1", hour + 60 * 60_000_000, 60) != expected
    assert derived_session_id("p1", "u2", hour, 60) != expected
    assert derived_session_id("p1", "u1", hour, 30) != expected


def test_remembered_session_ids_are_bounded_and_still_right() -> None:
    from analytics.events import anonymous_ids

    hour = to_us(datetime(2026, 3, 1, 12, 30, tzinfo=UTC))
    first = [derived_session_id("p1", f"u{i}", hour, 60) for i in range(50)]
    for i in range(anonymous_ids.SESSIONS_KEPT + 10):
        derived_session_id("p2", f"v{i}", hour, 60)
    assert len(anonymous_ids._SESSIONS) <= anonymous_ids.SESSIONS_KEPT
    assert [derived_session_id("p1", f"u{i}", hour, 60) for i in range(50)] == first
