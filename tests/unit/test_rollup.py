"""The per-batch roll-up (``analytics.counting.rollup``): UTC-aligned buckets per grain,
counts, estimated counts scaled by sample rate, distinct users and sessions, and the
per-(project, day) summary."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from analytics.counting.rollup import GRAINS, Rollup
from analytics.counting.sketch import member_hash
from analytics.events.times import to_us
from tests.support.events import event_row

MOMENT = datetime(2026, 3, 1, 12, 7, 30, tzinfo=UTC)


def test_grain_widths() -> None:
    assert GRAINS == {
        "agg_5min": 300_000_000,
        "agg_hourly": 3_600_000_000,
        "agg_daily": 86_400_000_000,
    }


def test_one_event_lands_in_its_utc_buckets() -> None:
    rollup = Rollup()
    rollup.add([event_row(timestamp_us=to_us(MOMENT))])
    expected_starts = {
        "agg_5min": datetime(2026, 3, 1, 12, 5, tzinfo=UTC),
        "agg_hourly": datetime(2026, 3, 1, 12, tzinfo=UTC),
        "agg_daily": datetime(2026, 3, 1, tzinfo=UTC),
    }
    for table, start in expected_starts.items():
        assert list(rollup.grains[table]) == [("p1", "web", "page_view", to_us(start))], table
        delta = rollup.grains[table][("p1", "web", "page_view", to_us(start))]
        assert (delta.count, delta.estimated) == (1, 1.0)
        assert delta.users == {member_hash("u1")}
        assert delta.sessions == {member_hash("s1")}
    assert rollup.projects == {"p1"}


def test_bucket_edges() -> None:
    rollup = Rollup()
    rollup.add(
        [
            event_row(timestamp_us=to_us(datetime(2026, 3, 1, 12, 4, 59, 999_999, tzinfo=UTC))),
            event_row(timestamp_us=to_us(datetime(2026, 3, 1, 12, 5, tzinfo=UTC))),
            event_row(timestamp_us=to_us(datetime(2026, 3, 1, 12, 59, 59, tzinfo=UTC))),
        ]
    )
    five = {key[3]: d.count for key, d in rollup.grains["agg_5min"].items()}
    assert five == {
        to_us(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)): 1,
        to_us(datetime(2026, 3, 1, 12, 5, tzinfo=UTC)): 1,
        to_us(datetime(2026, 3, 1, 12, 55, tzinfo=UTC)): 1,
    }
    hourly = {key[3]: d.count for key, d in rollup.grains["agg_hourly"].items()}
    assert hourly == {to_us(datetime(2026, 3, 1, 12, tzinfo=UTC)): 3}


def test_events_before_1970_align_downwards() -> None:
    rollup = Rollup()
    rollup.add([event_row(timestamp_us=to_us(datetime(1969, 12, 31, 23, 58, 20, tzinfo=UTC)))])
    starts = {table: next(iter(deltas))[3] for table, deltas in rollup.grains.items()}
    assert starts == {
        "agg_5min": to_us(datetime(1969, 12, 31, 23, 55, tzinfo=UTC)),
        "agg_hourly": to_us(datetime(1969, 12, 31, 23, tzinfo=UTC)),
        "agg_daily": to_us(datetime(1969, 12, 31, tzinfo=UTC)),
    }
    assert list(rollup.days) == [("p1", date(1969, 12, 31))]


def test_estimated_count_scales_by_the_sample_rate() -> None:
    rollup = Rollup()
    rollup.add(
        [
            event_row(event_id="a", sample_rate=0.5),
            event_row(event_id="b", sample_rate=0.25),
            event_row(event_id="c", sample_rate=1.0),
            event_row(event_id="d", sample_rate=0.0),  # never stored so; counted as 1
        ]
    )
    (delta,) = rollup.grains["agg_daily"].values()
    assert delta.count == 4
    assert delta.estimated == 2.0 + 4.0 + 1.0 + 1.0
    (day,) = rollup.days.values()
    assert (day.count, day.estimated) == (4, 8.0)


def test_distinct_users_and_sessions() -> None:
    rollup = Rollup()
    rollup.add(
        [
            event_row(user_id="u1", session_id="s1"),
            event_row(user_id="u1", session_id="s2"),
            event_row(user_id="u2", session_id="s2"),
            event_row(user_id=None, session_id=None),  # counted, but no member
        ]
    )
    (delta,) = rollup.grains["agg_hourly"].values()
    assert delta.count == 4
    assert delta.users == {member_hash("u1"), member_hash("u2")}
    assert delta.sessions == {member_hash("s1"), member_hash("s2")}


def test_rows_split_by_project_source_and_name() -> None:
    rollup = Rollup()
    rollup.add(
        [
            event_row(),
            event_row(event_name="signup"),
            event_row(event_source="ios"),
            event_row(project_id="p2"),
            event_row(),
        ]
    )
    counts = {key[:3]: d.count for key, d in rollup.grains["agg_5min"].items()}
    assert counts == {
        ("p1", "web", "page_view"): 2,
        ("p1", "web", "signup"): 1,
        ("p1", "ios", "page_view"): 1,
        ("p2", "web", "page_view"): 1,
    }
    assert rollup.projects == {"p1", "p2"}


def test_daily_summary_per_project_and_utc_day() -> None:
    late = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    rollup = Rollup()
    rollup.add(
        [
            event_row(timestamp_us=to_us(late), event_name="page_view", user_id="u1"),
            event_row(timestamp_us=to_us(late), event_name="signup", event_source="ios"),
            event_row(timestamp_us=to_us(late + timedelta(seconds=1)), user_id="u2"),
            event_row(project_id="p2", timestamp_us=to_us(late)),
        ]
    )
    assert set(rollup.days) == {
        ("p1", date(2026, 3, 1)),
        ("p1", date(2026, 3, 2)),
        ("p2", date(2026, 3, 1)),
    }
    first = rollup.days[("p1", date(2026, 3, 1))]
    assert first.count == 2
    assert first.names == {"page_view": 1, "signup": 1}
    assert first.sources == {"web": 1, "ios": 1}
    assert first.users == {member_hash("u1")}  # both rows are u1
    assert rollup.days[("p1", date(2026, 3, 2))].users == {member_hash("u2")}


def test_batches_accumulate() -> None:
    rollup = Rollup()
    rollup.add([event_row(event_id="a", user_id="u1")])
    rollup.add([event_row(event_id="b", user_id="u2")])
    (delta,) = rollup.grains["agg_5min"].values()
    assert delta.count == 2
    assert len(delta.users) == 2


def test_every_grain_counts_the_same_events() -> None:
    rng = random.Random(5)
    start = to_us(datetime(2026, 3, 1, tzinfo=UTC))
    rows = [
        event_row(
            event_id=str(i),
            event_name=rng.choice(["a", "b"]),
            timestamp_us=start + rng.randrange(86_400_000_000),
            sample_rate=rng.choice([1.0, 0.5]),
        )
        for i in range(2000)
    ]
    rollup = Rollup()
    rollup.add(rows)
    for table, deltas in rollup.grains.items():
        assert sum(d.count for d in deltas.values()) == 2000, table
        assert sum(d.estimated for d in deltas.values()) == sum(1 / r.sample_rate for r in rows)
    assert len(rollup.grains["agg_daily"]) == 2  # one day, two names
    assert rollup.days[("p1", date(2026, 3, 1))].count == 2000
