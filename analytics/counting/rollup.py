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
        """Fold events (already known to be new) into the deltas."""
        from analytics.events.times import from_us

        grains = [(self.grains[table], width) for table, width in GRAINS.items()]
        days = self.days
        hashes: dict[str, int] = {}
        day_dates: dict[int, date] = {}
        for row in rows:
            self.projects.add(row.project_id)
            weight = 1.0 / row.sample_rate if row.sample_rate > 0 else 1.0
            user = session = None
            if row.user_id is not None:
                user = hashes.get(row.user_id)
                if user is None:
                    user = hashes[row.user_id] = member_hash(row.user_id)
            if row.session_id is not None:
                session = hashes.get(row.session_id)
                if session is None:
                    session = hashes[row.session_id] = member_hash(row.session_id)
            ts = row.timestamp_us
            for deltas, width in grains:
                key = (row.project_id, row.event_source, row.event_name, ts - ts % width)
                delta = deltas.get(key)
                if delta is None:
                    delta = deltas[key] = Delta()
                delta.count += 1
                delta.estimated += weight
                if user is not None:
                    delta.users.add(user)
                if session is not None:
                    delta.sessions.add(session)
            day_index = ts // DAY_US
            when = day_dates.get(day_index)
            if when is None:
                when = day_dates[day_index] = from_us(day_index * DAY_US).date()
            day_key = (row.project_id, when)
            day = days.get(day_key)
            if day is None:
                day = days[day_key] = DayDelta()
            day.count += 1
            day.estimated += weight
            if user is not None:
                day.users.add(user)
            if session is not None:
                day.sessions.add(session)
            day.names[row.event_name] = day.names.get(row.event_name, 0) + 1
            day.sources[row.event_source] = day.sources.get(row.event_source, 0) + 1
