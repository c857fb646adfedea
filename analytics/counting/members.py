"""Members waiting to be merged into the stored sketches (pure, no I/O).

Adding a member to a sketch twice changes nothing, so a batch's unique users, sessions
and visitors need not be merged in the batch's transaction: only its counts need the
ledger's exactly-once. The raw sink collects the members of its batches here, per
aggregate row, and merges them every few seconds
(``analytics.storage.sketches.flush_members``); a replay after a crash only adds members
that are already there. ``write_events`` without a collector merges them in the batch's
transaction instead.
"""

from __future__ import annotations

from datetime import date
from typing import TypeVar

from analytics.counting.rollup import GRAINS, AggKey, Rollup
from analytics.counting.web_stats import StatsDelta, StatsKey

STATS_TABLES = ("stats_hourly", "stats_daily")

K = TypeVar("K")


class Members:
    """Users and sessions per aggregate row and per daily summary, visitors per stats row."""

    __slots__ = ("days", "grains", "projects", "stats")

    def __init__(self) -> None:
        self.grains: dict[str, dict[AggKey, tuple[set[int], set[int]]]] = {t: {} for t in GRAINS}
        self.days: dict[tuple[str, date], tuple[set[int], set[int]]] = {}
        self.stats: dict[str, dict[StatsKey, set[int]]] = {t: {} for t in STATS_TABLES}
        self.projects: set[str] = set()

    def __len__(self) -> int:
        """Rows with members waiting."""
        return (
            sum(map(len, self.grains.values()))
            + len(self.days)
            + sum(map(len, self.stats.values()))
        )

    def update(self, other: Members) -> None:
        """Take every member of ``other`` (which is not used again)."""
        for table, rows in other.grains.items():
            mine = self.grains[table]
            for key, (users, sessions) in rows.items():
                _unite(mine, key, users, sessions)
        for day_key, (users, sessions) in other.days.items():
            _unite(self.days, day_key, users, sessions)
        for table, stats_rows in other.stats.items():
            mine_stats = self.stats[table]
            for stats_key, visitors in stats_rows.items():
                _add(mine_stats, stats_key, visitors)
        self.projects |= other.projects

    def add_rollup(self, rollup: Rollup) -> None:
        """Take the users and sessions of a batch's aggregate deltas (its counts are not
        kept). The rollup's sets may be shared: it is not used again."""
        for table, deltas in rollup.grains.items():
            rows = self.grains[table]
            for key, delta in deltas.items():
                _unite(rows, key, delta.users, delta.sessions)
        for day_key, day in rollup.days.items():
            if _unite(self.days, day_key, day.users, day.sessions):
                self.projects.add(day_key[0])  # every agg row of a project has its day's

    def add_stats(
        self, hourly: dict[StatsKey, StatsDelta], daily: dict[StatsKey, StatsDelta]
    ) -> None:
        """Take the visitors of a batch's stats deltas."""
        for table, deltas in zip(STATS_TABLES, (hourly, daily), strict=True):
            rows = self.stats[table]
            for key, delta in deltas.items():
                if delta.visitors:
                    _add(rows, key, delta.visitors)
                    self.projects.add(key[0])


def _unite(
    rows: dict[K, tuple[set[int], set[int]]], key: K, users: set[int], sessions: set[int]
) -> bool:
    """Add the members to ``rows[key]``; whether there were any."""
    if not users and not sessions:
        return False  # nothing to merge: the row's sketches stay as they are
    held = rows.get(key)
    if held is None:
        rows[key] = (users, sessions)
    else:
        held[0].update(users)
        held[1].update(sessions)
    return True


def _add(rows: dict[StatsKey, set[int]], key: StatsKey, visitors: set[int]) -> None:
    held = rows.get(key)
    if held is None:
        rows[key] = visitors
    else:
        held |= visitors
