"""Live minutes (``analytics.counting.live_minute``): built from a batch, merged across
batches and workers, sent as JSON, and turned into the realtime widget figures."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from analytics.counting.live_minute import (
    MINUTE_US,
    LiveMinute,
    merge_minutes,
    minutes_of,
    realtime_figures,
)
from analytics.counting.sketch import EXACT_LIMIT, Sketch, member_hash
from analytics.events.models import EventRow
from analytics.events.times import to_us
from tests.support.events import SECOND_US, event_row

NOON = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
NOON_US = to_us(datetime(2026, 3, 1, 12, tzinfo=UTC))


def minute(rows: list[EventRow]) -> LiveMinute:
    """The one live minute these rows (all in one minute of one project) make."""
    (only,) = minutes_of(rows).values()
    return only


def users(*ids: str) -> Sketch:
    sketch = Sketch()
    sketch.add_many(member_hash(i) for i in ids)
    return sketch


def at(offset_seconds: float, **fields: object) -> EventRow:
    """An event ``offset_seconds`` after noon, received 1 s after its time."""
    ts = NOON_US + int(offset_seconds * SECOND_US)
    return event_row(timestamp_us=ts, received_at_us=ts + SECOND_US, **fields)


def test_minutes_of_groups_by_project_and_minute() -> None:
    rows = [
        at(0, user_id="u1", event_name="a"),
        at(59.999, user_id="u2", event_name="a", sample_rate=0.5),
        at(60, user_id="u1", event_name="b"),
        at(5, project_id="p2", user_id="u1"),
        at(10, user_id=None, event_name="b"),
    ]
    found = minutes_of(rows)
    assert set(found) == {("p1", NOON_US), ("p1", NOON_US + MINUTE_US), ("p2", NOON_US)}
    first = found[("p1", NOON_US)]
    assert first.events == 3
    assert first.estimated == 1.0 + 2.0 + 1.0
    assert first.names == {"a": 2, "b": 1}
    assert first.users.cardinality() == 2  # the row without a user adds no member
    assert first.newest_received_us == NOON_US + int(59.999 * SECOND_US) + SECOND_US
    assert found[("p1", NOON_US + MINUTE_US)].events == 1


def test_merged_adds_up_and_changes_neither_side() -> None:
    one = LiveMinute(3, 3.0, {"a": 2, "b": 1}, users("u1", "u2"), 100)
    two = LiveMinute(2, 4.0, {"b": 1, "c": 1}, users("u2", "u3"), 90)
    total = one.merged(two)
    assert (total.events, total.estimated) == (5, 7.0)
    assert total.names == {"a": 2, "b": 2, "c": 1}
    assert total.users.cardinality() == 3  # u2 once
    assert total.newest_received_us == 100
    assert (one.events, one.names, one.users.cardinality()) == (3, {"a": 2, "b": 1}, 2)
    assert (two.events, two.names, two.users.cardinality()) == (2, {"b": 1, "c": 1}, 2)


def test_merging_an_empty_minute_changes_nothing() -> None:
    one = LiveMinute(3, 3.0, {"a": 3}, users("u1"), 100)
    for total in (one.merged(LiveMinute()), LiveMinute().merged(one)):
        assert total.to_value() == one.to_value()


def test_value_round_trip_through_json() -> None:
    original = LiveMinute(4, 5.5, {"page_view": 3, "signup": 1}, users("u1", "u2"), 123_456)
    value = orjson.loads(orjson.dumps(original.to_value()))
    back = LiveMinute.from_value(value)
    assert (back.events, back.estimated, back.names) == (4, 5.5, {"page_view": 3, "signup": 1})
    assert back.newest_received_us == 123_456
    assert back.users.to_bytes() == original.users.to_bytes()
    assert back.to_value() == original.to_value()


def test_value_round_trip_of_a_large_minute() -> None:
    many = Sketch()
    many.add_many(member_hash(f"u{i}") for i in range(EXACT_LIMIT + 500))
    original = LiveMinute(20_000, 20_000.0, {"a": 20_000}, many, 1)
    back = LiveMinute.from_value(orjson.loads(orjson.dumps(original.to_value())))
    assert not back.users.is_exact
    assert back.users.cardinality() == many.cardinality()


def test_a_missing_value_is_an_empty_minute() -> None:
    for value in (None, {}):
        empty = LiveMinute.from_value(value)
        assert (empty.events, empty.estimated, empty.names) == (0, 0.0, {})
        assert empty.users.cardinality() == 0 and empty.newest_received_us == 0
    partial = LiveMinute.from_value({"events": 2})
    assert (partial.events, partial.users.cardinality()) == (2, 0)


def test_merge_minutes_from_two_workers() -> None:
    a = LiveMinute(1, 1.0, {"a": 1}, users("u1"), 10)
    b = LiveMinute(2, 2.0, {"a": 2}, users("u2"), 20)
    c = LiveMinute(5, 5.0, {"c": 5}, users("u3"), 30)
    merged = merge_minutes([[(NOON, a), (NOON - 60, c)], [(NOON, b)]])
    assert [start for start, _ in merged] == [NOON - 60, NOON]
    assert merged[0][1] is c
    both = merged[1][1]
    assert (both.events, both.names, both.users.cardinality()) == (3, {"a": 3}, 2)
    assert merge_minutes([]) == []


def test_realtime_figures_windows() -> None:
    rows = [
        at(0, event_name="a", user_id="u1"),
        at(10, event_name="a", user_id="u2"),
        at(29, event_name="b", user_id="u2"),  # 3 events in the current minute
        at(-240, event_name="b", user_id="u2", sample_rate=0.5),
        at(-230, event_name="b", user_id="u3", sample_rate=0.5),  # 4 minutes ago: in
        at(-300, event_name="c", user_id="u9"),  # 5 minutes ago: hour only
        at(-3540, event_name="c", user_id="u9"),  # 59 minutes ago: hour only
        at(-3600, event_name="d", user_id="u8"),  # 60 minutes ago: out
    ]
    minutes = [(key[1] / SECOND_US, m) for key, m in minutes_of(rows).items()]
    figures = realtime_figures(minutes, NOON + 30)
    assert figures["events_last_5_minutes"] == 5
    assert figures["events_last_hour"] == 7
    assert figures["estimated_last_hour"] == 3 + 4 + 2
    assert figures["top_events_5_minutes"] == [
        {"event_name": "b", "count": 3},
        {"event_name": "a", "count": 2},
    ]
    assert figures["active_users_5_minutes"] == 3  # u1, u2, u3
    per_minute = figures["events_per_minute"]
    assert len(per_minute) == 30
    assert per_minute[0]["minute"] == NOON - 29 * 60
    assert per_minute[-1] == {"minute": NOON, "events": 3}
    assert per_minute[-5] == {"minute": NOON - 240, "events": 2}
    assert per_minute[-6] == {"minute": NOON - 300, "events": 1}
    assert figures["newest_minute"] == NOON
    assert figures["newest_received_at"] == NOON + 30  # the event at 29 s, received 1 s later


def test_realtime_top_events_break_ties_by_name_and_stop_at_top() -> None:
    counts = {"zeta": 2, "alpha": 2, "mid": 5, "low": 1}
    busy = LiveMinute(10, 10.0, counts, Sketch(), 1)
    top = realtime_figures([(NOON, busy)], NOON, top=3)["top_events_5_minutes"]
    assert top == [
        {"event_name": "mid", "count": 5},
        {"event_name": "alpha", "count": 2},
        {"event_name": "zeta", "count": 2},
    ]


def test_realtime_figures_without_traffic() -> None:
    figures = realtime_figures([], NOON)
    assert figures["events_last_5_minutes"] == figures["events_last_hour"] == 0
    assert figures["estimated_last_hour"] == 0
    assert figures["top_events_5_minutes"] == []
    assert figures["active_users_5_minutes"] == 0
    assert figures["newest_minute"] is None
    assert figures["newest_received_at"] is None
    assert [m["events"] for m in figures["events_per_minute"]] == [0] * 30


def test_visitors_leave_bots_out_but_active_users_keep_every_user() -> None:
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
    rows = [
        at(1, user_id="human", user_agent=chrome),
        at(2, user_id="crawler", user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)"),
        at(3, user_id="no-agent", user_agent=None),
    ]
    live = minute(rows)
    assert live.users.cardinality() == 3
    assert live.visitors.cardinality() == 2
    again = LiveMinute.from_value(orjson.loads(orjson.dumps(live.to_value())))
    assert again.visitors.cardinality() == 2
    old = live.to_value()
    del old["visitors"]  # a minute written before visitors existed reads as none
    assert LiveMinute.from_value(old).visitors.cardinality() == 0
    figures = realtime_figures([(NOON, live)], NOON + 30)
    assert (figures["active_users_5_minutes"], figures["visitors_5_minutes"]) == (3, 2)
