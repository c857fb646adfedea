"""Sketch members held between flushes (``analytics.counting.members``): any split of the
events into batches, taken in any order, holds the same members per row as one batch."""

from __future__ import annotations

import random

from analytics.counting.members import Members
from analytics.counting.rollup import Rollup
from analytics.counting.sketch import member_hash
from analytics.counting.web_stats import StatsFold, StatsKey
from analytics.enrich.enricher import COLUMNS
from analytics.events.models import EventRow
from tests.support.events import SERVER_NOW_US, event_row

HOUR = 3_600_000_000


def _enriched(page: str) -> tuple[object, ...]:
    values: dict[str, object] = {c: None for c in COLUMNS}
    values.update(pathname=page, hostname="example.com", is_bot=False)
    return tuple(values[c] for c in COLUMNS)


def _events(n: int, seed: int) -> list[tuple[EventRow, tuple[object, ...]]]:
    pick = random.Random(seed)
    return [
        (
            event_row(
                event_id=f"e{i}",
                user_id=None if i % 7 == 0 else f"u{pick.randrange(40)}",
                session_id=None if i % 11 == 0 else f"s{pick.randrange(60)}",
                event_name=pick.choice(("page_view", "signup")),
                timestamp_us=SERVER_NOW_US + pick.randrange(30) * HOUR // 4,
            ),
            _enriched(pick.choice(("/", "/docs", "/pricing"))),
        )
        for i in range(n)
    ]


def _members(batches: list[list[tuple[EventRow, tuple[object, ...]]]]) -> Members:
    held = Members()
    for batch in batches:
        mine = Members()
        rollup = Rollup()
        rollup.add(row for row, _ in batch)
        stats = StatsFold()
        stats.add(batch)
        mine.add_rollup(rollup)
        mine.add_stats(*stats.stats())
        held.update(mine)
    return held


def _as_plain(members: Members) -> tuple[object, ...]:
    return (
        {
            t: {k: (set(u), set(s)) for k, (u, s) in rows.items()}
            for t, rows in members.grains.items()
        },
        {k: (set(u), set(s)) for k, (u, s) in members.days.items()},
        {t: {k: set(v) for k, v in rows.items()} for t, rows in members.stats.items()},
        set(members.projects),
    )


def test_any_split_holds_the_members_of_one_batch() -> None:
    events = _events(500, seed=3)
    whole = _as_plain(_members([events]))
    for seed in range(5):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        cuts = sorted(random.Random(seed + 100).sample(range(1, 500), 6))
        parts = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, 500], strict=True)]
        assert _as_plain(_members(parts)) == whole


def test_rows_without_members_are_not_held() -> None:
    held = _members([[(event_row(user_id=None, session_id=None), _enriched("/"))]])
    assert len(held) == 0
    assert not held
    assert held.projects == set()


def test_members_are_per_row_and_counted_once() -> None:
    a = (event_row(event_id="a", user_id="u1", session_id="s1"), _enriched("/"))
    b = (event_row(event_id="b", user_id="u2", session_id="s1"), _enriched("/docs"))
    held = _members([[a], [b], [a]])
    day_users, day_sessions = next(iter(held.days.values()))
    assert day_users == {member_hash("u1"), member_hash("u2")}
    assert day_sessions == {member_hash("s1")}
    page_rows: dict[StatsKey, set[int]] = {
        key: visitors for key, visitors in held.stats["stats_daily"].items() if key[1] == "page"
    }
    assert {key[3]: v for key, v in page_rows.items()} == {
        "/": {member_hash("u1")},
        "/docs": {member_hash("u2")},
    }
    # one row per grain, the daily summary, and hourly + daily stats rows
    # for "", name, page (2) and hostname
    assert len(held) == 3 + 1 + 2 * 5
