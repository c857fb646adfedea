"""Per-batch roll-up of new events into aggregate deltas (pure, no I/O).

The live path and ``aggregate-events`` both go through here, so a rebuild
from raw events produces exactly what the live path wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from analytics.counting.sketch import member_hash
from analytics.events.models import EventRow

# Aggregate table -> bucket width in microseconds. Buckets are UTC-aligned.
GRAINS: dict[str, int] = {
    "agg_5min": 300_000_000,
    "agg_hourly": 3_600_000_000,
    "agg_daily": 86_400_000_000,
}
DAY_US = 86_400_000_000

# (project_id, event_source, event_name, bucket_start in µs)
AggKey = tuple[str, str, str, int]


@dataclass(slots=True)
class Delta:
    """What a batch adds to one aggregate row."""

    count: int = 0
    estimated: float = 0.0
    users: set[int] = field(default_factory=set)
    sessions: set[int] = field(default_factory=set)


@dataclass(slots=True)
class DayDelta:
    """What a batch adds to one project's daily summary."""

    count: int = 0
    estimated: float = 0.0
    users: set[int] = field(default_factory=set)
    sessions: set[int] = field(default_factory=set)
    names: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Rollup:
    """All deltas of one batch: per aggregate table, and per (project, day)."""

    grains: dict[str, dict[AggKey, Delta]] = field(
        default_factory=lambda: {table: {} for table in GRAINS}
    )
    days: dict[tuple[str, date], DayDelta] = field(default_factory=dict)
    projects: set[str] = field(default_factory=set)

    def add(self, rows: Iterable[EventRow]) -> None:
        """Fold events (already known to be new) into the deltas.

        One pass per event into 5-minute deltas; the hourly, daily and per-day deltas are
        then merged from those (a set union per 5-minute key, not a set add per event and
        grain: the fold's cost in the sink's profile).
        """
        from analytics.events.times import from_us

        finest = min(GRAINS.values())
        fine: dict[AggKey, Delta] = {}
        hashes: dict[str, int] = {}
        for row in rows:
            ts = row.timestamp_us
            key = (row.project_id, row.event_source, row.event_name, ts - ts % finest)
            delta = fine.get(key)
            if delta is None:
                delta = fine[key] = Delta()
            delta.count += 1
            delta.estimated += 1.0 / row.sample_rate if row.sample_rate > 0 else 1.0
            if row.user_id is not None:
                user = hashes.get(row.user_id)
                if user is None:
                    user = hashes[row.user_id] = member_hash(row.user_id)
                delta.users.add(user)
            if row.session_id is not None:
                session = hashes.get(row.session_id)
                if session is None:
                    session = hashes[row.session_id] = member_hash(row.session_id)
                delta.sessions.add(session)
        days = self.days
        day_dates: dict[int, date] = {}
        for table, width in GRAINS.items():
            deltas = self.grains[table]
            for (project, source, name, start), part in fine.items():
                key = (project, source, name, start - start % width)
                delta = deltas.get(key)
                if delta is None:
                    delta = deltas[key] = Delta()
                _merge(delta, part)
        for (project, source, name, start), part in fine.items():
            self.projects.add(project)
            day_index = start // DAY_US
            when = day_dates.get(day_index)
            if when is None:
                when = day_dates[day_index] = from_us(day_index * DAY_US).date()
            day = days.get((project, when))
            if day is None:
                day = days[(project, when)] = DayDelta()
            _merge(day, part)
            day.names[name] = day.names.get(name, 0) + part.count
            day.sources[source] = day.sources.get(source, 0) + part.count


def _merge(into: Delta | DayDelta, part: Delta) -> None:
    into.count += part.count
    into.estimated += part.estimated
    into.users |= part.users
    into.sessions |= part.sessions
