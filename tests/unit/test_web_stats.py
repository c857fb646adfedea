"""The per-batch fold of the stats rollups (``analytics.counting.web_stats``): the stats
dimensions per UTC hour and day, bots left out. (Visits are folded by PostgreSQL:
tests/analytics/test_web_stats.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.counting.sketch import member_hash
from analytics.counting.web_stats import StatsFold
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


def folded(pairs: list[tuple[EventRow, Enrichment]]) -> StatsFold:
    fold = StatsFold()
    fold.add(pairs)
    return fold


def visit_events() -> list[tuple[EventRow, Enrichment]]:
    return [
        event("e2", 2, page="/pricing", referrer_source="Google", country_code="DE"),
        event("e1", 1, "signup", page="/signup", referrer_source="Bing", country_code="FR"),
        event("e4", 25, page="/docs"),  # the next UTC day
        event("e3", 3, page="/about"),
        event("b0", 0, page="/robots", is_bot=True),  # a bot: in no visit and no stats
        event("n0", 0.5, session_id=None, page="/nosession"),  # stats only
    ]


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
