"""Per-batch fold of new events into visits and stats rollups (pure, no I/O; SPEC §10).

The input is each event beside its enriched columns (``analytics.enrich.enricher.COLUMNS``
order), since pages, hosts, sources and the bot verdict are computed on the way in. Bots
(``is_bot`` true) are left out of both. Every value folded here is a commutative merge
(least or greatest ``(timestamp, event_id)``, a sum, a set union), so folding the events
of a visit in any split and any order, and merging the pieces in the database
(``analytics.storage.web_stats``), gives the same row. event_id ties compare as plain
``str`` (code point order), which is PostgreSQL's ``COLLATE "C"`` on UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from analytics.counting.rollup import DAY_US
from analytics.counting.sketch import member_hash
from analytics.enrich.enricher import COLUMNS
from analytics.events.models import EventRow

HOUR_US = 3_600_000_000
PAGE_VIEW = "page_view"

# The visit columns taken from the first event's enrichment: all but the per-page and
# per-version ones and the bot verdict.
VISIT_SOURCE_COLUMNS = tuple(
    c for c in COLUMNS if c not in ("pathname", "browser_version", "os_version", "is_bot")
)
_SOURCE_AT = tuple(COLUMNS.index(c) for c in VISIT_SOURCE_COLUMNS)
_PATH = COLUMNS.index("pathname")
_HOST = COLUMNS.index("hostname")
_BOT = COLUMNS.index("is_bot")

# (project_id, session_id)
VisitKey = tuple[str, str]
# (project_id, dimension, bucket start in µs, value)
StatsKey = tuple[str, str, int, str]


class Visit:
    """What a batch knows of one visit: the bounds and counts of its events in the batch."""

    __slots__ = (
        "ended_ts",
        "entry_id",
        "entry_page",
        "entry_ts",
        "events",
        "exit_id",
        "exit_page",
        "exit_ts",
        "first_id",
        "first_sources",
        "first_ts",
        "first_user",
        "pageviews",
    )

    def __init__(self, row: EventRow, enriched: Sequence[Any]) -> None:
        ts = row.timestamp_us
        self.first_ts = ts
        self.first_id = row.event_id
        self.first_user = row.user_id
        self.first_sources = enriched
        self.ended_ts = ts
        self.entry_ts: int | None = None
        self.entry_id: str | None = None
        self.entry_page: str | None = None
        self.exit_ts: int | None = None
        self.exit_id: str | None = None
        self.exit_page: str | None = None
        self.pageviews = 0
        self.events = 0

    def add(self, row: EventRow, enriched: Sequence[Any]) -> None:
        """Merge one event in (the one the constructor saw included)."""
        ts = row.timestamp_us
        event_id = row.event_id
        self.events += 1
        if (ts, event_id) < (self.first_ts, self.first_id):
            self.first_ts = ts
            self.first_id = event_id
            self.first_user = row.user_id
            self.first_sources = enriched
        if ts > self.ended_ts:
            self.ended_ts = ts
        if row.event_name != PAGE_VIEW:
            return
        self.pageviews += 1
        page = enriched[_PATH]
        if self.entry_ts is None:
            self.entry_ts = self.exit_ts = ts
            self.entry_id = self.exit_id = event_id
            self.entry_page = self.exit_page = page
            return
        assert self.entry_id is not None and self.exit_ts is not None and self.exit_id is not None
        if (ts, event_id) < (self.entry_ts, self.entry_id):
            self.entry_ts, self.entry_id, self.entry_page = ts, event_id, page
        if (ts, event_id) > (self.exit_ts, self.exit_id):
            self.exit_ts, self.exit_id, self.exit_page = ts, event_id, page

    def sources(self) -> tuple[Any, ...]:
        """The first event's enriched columns, in ``VISIT_SOURCE_COLUMNS`` order."""
        first = self.first_sources
        return tuple(first[i] for i in _SOURCE_AT)


class StatsDelta:
    """What a batch adds to one stats row."""

    __slots__ = ("events", "pageviews", "visitors")

    def __init__(self) -> None:
        self.events = 0
        self.pageviews = 0
        self.visitors: set[int] = set()


class _Combo:
    """Events of one (project, hour, name, page, hostname): the fold's first step."""

    __slots__ = ("events", "visitors")

    def __init__(self) -> None:
        self.events = 0
        self.visitors: set[int] = set()


class WebFold:
    """Visits and stats deltas of one batch of new events.

    ``add_visits`` and ``add_stats`` are separate because a rebuild folds a day's events
    into the stats but a whole session's events (any day) into its visit.
    """

    __slots__ = ("_combos", "projects", "visits")

    def __init__(self) -> None:
        self.visits: dict[VisitKey, Visit] = {}
        self._combos: dict[tuple[str, int, str, str | None, str | None], _Combo] = {}
        self.projects: set[str] = set()

    def add(self, rows: Iterable[EventRow], enriched: Iterable[Sequence[Any]]) -> None:
        """Fold events into both the visits and the stats (the live path)."""
        pairs = [(r, e) for r, e in zip(rows, enriched, strict=True) if e[_BOT] is not True]
        self.add_visits(pairs)
        self.add_stats(pairs)

    def add_visits(self, pairs: Iterable[tuple[EventRow, Sequence[Any]]]) -> None:
        """Fold non-bot events with a session into their visits."""
        visits = self.visits
        for row, enriched in pairs:
            session = row.session_id
            if session is None or enriched[_BOT] is True:
                continue
            key = (row.project_id, session)
            visit = visits.get(key)
            if visit is None:
                visit = visits[key] = Visit(row, enriched)
                self.projects.add(row.project_id)
            visit.add(row, enriched)

    def add_stats(self, pairs: Iterable[tuple[EventRow, Sequence[Any]]]) -> None:
        """Fold non-bot events into the stats (grouped first: a batch repeats its pages)."""
        combos = self._combos
        for row, enriched in pairs:
            if enriched[_BOT] is True:
                continue
            ts = row.timestamp_us
            key = (row.project_id, ts - ts % HOUR_US, row.event_name, enriched[_PATH],
                   enriched[_HOST])  # fmt: skip
            combo = combos.get(key)
            if combo is None:
                combo = combos[key] = _Combo()
                self.projects.add(row.project_id)
            combo.events += 1
            if row.user_id is not None:
                combo.visitors.add(member_hash(row.user_id))

    def stats(self) -> tuple[dict[StatsKey, StatsDelta], dict[StatsKey, StatsDelta]]:
        """The hourly and the daily deltas (bucket starts in µs, UTC)."""
        hourly: dict[StatsKey, StatsDelta] = {}
        daily: dict[StatsKey, StatsDelta] = {}
        for (project, hour, name, page, host), combo in self._combos.items():
            day = hour - hour % DAY_US
            pageviews = combo.events if name == PAGE_VIEW else 0
            for dimension, value in (("", ""), ("name", name), ("page", page), ("hostname", host)):
                if value is None:
                    continue
                for deltas, bucket in ((hourly, hour), (daily, day)):
                    key = (project, dimension, bucket, value)
                    delta = deltas.get(key)
                    if delta is None:
                        delta = deltas[key] = StatsDelta()
                    delta.events += combo.events
                    delta.pageviews += pageviews
                    delta.visitors |= combo.visitors
        return hourly, daily
