"""Per-batch fold of new events into the stats rollups (pure, no I/O; SPEC §10).

The input is each event beside its enriched columns (``analytics.enrich.enricher.COLUMNS``
order), since pages, hosts and the bot verdict are computed on the way in. Bots
(``is_bot`` true) are left out. Every value folded here is a sum or a set union, so any
split and order of the events, merged in the database (``analytics.storage.web_stats``),
gives the same rows. Visits are folded by PostgreSQL itself, from the rows just stored
(``analytics.storage.web_stats.visits_upsert``); only their column list lives here.
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
_PATH = COLUMNS.index("pathname")
_HOST = COLUMNS.index("hostname")
_BOT = COLUMNS.index("is_bot")

# (project_id, dimension, bucket start in µs, value)
StatsKey = tuple[str, str, int, str]


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


class StatsFold:
    """The stats deltas of one batch of new events (or of a rebuilt day)."""

    __slots__ = ("_combos", "projects")

    def __init__(self) -> None:
        self._combos: dict[tuple[str, int, str, str | None, str | None], _Combo] = {}
        self.projects: set[str] = set()

    def add(self, pairs: Iterable[tuple[EventRow, Sequence[Any]]]) -> None:
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
