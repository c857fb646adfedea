"""The per-batch fold of visits and stats rollups (``analytics.counting.web_stats``):
first/last by (timestamp, event_id), page_view counts, bots and session-less events left
out of visits, and the stats dimensions per UTC hour and day."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.counting.sketch import member_hash
from analytics.counting.web_stats import VISIT_SOURCE_COLUMNS, Visit, WebFold
from analytics.enrich.enricher import Enrichment
from analytics.events.models import EventRow
from analytics.events.times import to_us
from tests.support.events import event_row

T0 = datetime(2026, 3, 1, 23, 50, tzinfo=UTC)  # ten minutes before a UTC day ends


def enriched(page: str | None = None, **fields: Any) -> Enrichment:
    """An enrichment with every column None but the given ones (``page`` is the pathname)."""
    values: dict[str, Any] = dict.fromkeys(Enrichment._fields)
    values.update(pathname=page, hostname="example.com" if page else None)
    values.update(fields)
    return Enrichment(**values)


def event(
    event_id: str, minutes: float, name: str = "page_view", **fields: Any
) -> tuple[EventRow, Enrichment]:
    row_fields = {k: fields.pop(k) for k in ("session_id", "user_id") if k in fields}
    row = event_row(
        event_id=event_id,
        event_name=name,
        timestamp_us=to_us(T0 + timedelta(minutes=minutes)),
        **row_fields,
    )
    return row, enriched(**fields)


def folded(pairs: list[tuple[EventRow, Enrichment]]) -> WebFold:
    fold = WebFold()
    fold.add([p[0] for p in pairs], [p[1] for p in pairs])
    return fold


def snapshot(visit: Visit) -> tuple[Any, ...]:
    return tuple(getattr(visit, name) for name in sorted(Visit.__slots__)) + visit.sources()


def visit_events() -> list[tuple[EventRow, Enrichment]]:
    return [
        event("e2", 2, page="/pricing", referrer_source="Google", country_code="DE"),
        event("e1", 1, "signup", page="/signup", referrer_source="Bing", country_code="FR"),
        event("e4", 25, page="/docs"),  # the next UTC day
        event("e3", 3, page="/about"),
        event("b0", 0, page="/robots", is_bot=True),  # a bot: in no visit and no stats
        event("n0", 0.5, session_id=None, page="/nosession"),  # stats only
    ]


def test_a_visit_takes_its_first_and_last_events() -> None:
    fold = folded(visit_events())
    assert list(fold.visits) == [("p1", "s1")]
    visit = fold.visits[("p1", "s1")]
    assert (visit.first_ts, visit.first_id) == (to_us(T0 + timedelta(minutes=1)), "e1")
    assert visit.ended_ts == to_us(T0 + timedelta(minutes=25))
    assert (visit.entry_page, visit.entry_id) == ("/pricing", "e2")
    assert (visit.exit_page, visit.exit_id) == ("/docs", "e4")
    assert (visit.pageviews, visit.events) == (3, 4)
    # Where the visit came from: the first event's columns (the custom event here).
    sources = dict(zip(VISIT_SOURCE_COLUMNS, visit.sources(), strict=True))
    assert sources["hostname"] == "example.com"
    assert (sources["referrer_source"], sources["country_code"]) == ("Bing", "FR")
    assert visit.first_user == "u1"


def test_any_order_gives_the_same_visit() -> None:
    pairs = visit_events()
    want = snapshot(folded(pairs).visits[("p1", "s1")])
    rng = random.Random(7)
    for _ in range(20):
        rng.shuffle(pairs)
        assert snapshot(folded(pairs).visits[("p1", "s1")]) == want


def test_a_timestamp_tie_goes_to_the_smaller_event_id_in_code_point_order() -> None:
    # "B" (0x42) sorts before "a" (0x61) in code point order, as COLLATE "C" sorts them.
    pairs = [event("a", 1, page="/lower"), event("B", 1, page="/upper")]
    for order in (pairs, pairs[::-1]):
        visit = folded(order).visits[("p1", "s1")]
        assert (visit.first_id, visit.entry_page, visit.exit_page) == ("B", "/upper", "/lower")


def test_a_visit_without_page_views_has_no_entry_or_exit() -> None:
    visit = folded([event("c1", 0, "click"), event("c2", 5, "click")]).visits[("p1", "s1")]
    assert (visit.entry_page, visit.entry_ts, visit.exit_page, visit.exit_ts) == (None,) * 4
    assert (visit.pageviews, visit.events) == (0, 2)


def test_stats_per_dimension_hour_and_day() -> None:
    pairs = visit_events()
    pairs.append(event("x1", 4, "signup", user_id="u2"))  # no page, no hostname
    hourly, daily = folded(pairs).stats()
    hour = to_us(T0.replace(minute=0))
    next_day = to_us(datetime(2026, 3, 2, tzinfo=UTC))
    day = to_us(datetime(2026, 3, 1, tzinfo=UTC))
    got = {k: (d.events, d.pageviews, d.visitors) for k, d in hourly.items()}
    u1, u2 = member_hash("u1"), member_hash("u2")
    assert got == {
        ("p1", "", hour, ""): (5, 3, {u1, u2}),
        ("p1", "name", hour, "page_view"): (3, 3, {u1}),
        ("p1", "name", hour, "signup"): (2, 0, {u1, u2}),
        ("p1", "page", hour, "/pricing"): (1, 1, {u1}),
        ("p1", "page", hour, "/signup"): (1, 0, {u1}),
        ("p1", "page", hour, "/about"): (1, 1, {u1}),
        ("p1", "page", hour, "/nosession"): (1, 1, {u1}),
        ("p1", "hostname", hour, "example.com"): (4, 3, {u1}),
        ("p1", "", next_day, ""): (1, 1, {u1}),
        ("p1", "name", next_day, "page_view"): (1, 1, {u1}),
        ("p1", "page", next_day, "/docs"): (1, 1, {u1}),
        ("p1", "hostname", next_day, "example.com"): (1, 1, {u1}),
    }
    by_day = {k: (d.events, d.pageviews) for k, d in daily.items()}
    assert by_day[("p1", "", day, "")] == (5, 3)
    assert by_day[("p1", "", next_day, "")] == (1, 1)
    assert len(daily) == len(hourly)  # one hour per day here


def test_events_without_a_user_add_no_visitor() -> None:
    hourly, _ = folded([event("a1", 0, user_id=None, page="/")]).stats()
    assert [(d.events, d.visitors) for d in hourly.values()] == [(1, set())] * 4
