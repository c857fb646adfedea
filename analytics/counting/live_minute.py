"""One live minute of one project, and the realtime figures made from many of them.

``LiveMinute`` is the value of the worker's ``live-minutes`` windowed table (see
``tables.live``): how many events arrived in that minute, their estimated count
(scaled by sample rate), counts by event name, a distinct-user sketch and the newest
``received_at``. It is built from a batch's new rows (``minutes_of``), merged
(``merged``), stored in the table and sent from worker to edge as its JSON form
(``to_value`` / ``from_value``), and read by ``realtime_figures``. Nothing else
knows the JSON keys.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from analytics.counting.sketch import Sketch, member_hash
from analytics.enrich.useragents import cached_agent
from analytics.events.models import EventRow

MINUTE_US = 60_000_000


@dataclass(slots=True)
class LiveMinute:
    """The figures of one (project, minute); add with ``merged``, never in place."""

    events: int = 0
    estimated: float = 0.0
    names: dict[str, int] = field(default_factory=dict)
    users: Sketch = field(default_factory=Sketch)
    newest_received_us: int = 0
    # the users whose user agent is not a bot's: the stats API's realtime visitors
    visitors: Sketch = field(default_factory=Sketch)

    def merged(self, other: LiveMinute) -> LiveMinute:
        """The sum of two minutes (a batch's delta, or two workers' copies mid-rebalance)."""
        names = dict(self.names)
        for name, n in other.names.items():
            names[name] = names.get(name, 0) + n
        users = Sketch.from_bytes(self.users.to_bytes())
        users.merge(other.users)
        visitors = Sketch.from_bytes(self.visitors.to_bytes())
        visitors.merge(other.visitors)
        return LiveMinute(
            events=self.events + other.events,
            estimated=self.estimated + other.estimated,
            names=names,
            users=users,
            newest_received_us=max(self.newest_received_us, other.newest_received_us),
            visitors=visitors,
        )

    def to_value(self) -> dict[str, Any]:
        """The JSON-able form kept in the table's changelog and sent to the edge."""
        return {
            "events": self.events,
            "estimated": self.estimated,
            "names": self.names,
            "users": base64.b64encode(self.users.to_bytes()).decode(),
            "newest_received_us": self.newest_received_us,
            "visitors": base64.b64encode(self.visitors.to_bytes()).decode(),
        }

    @classmethod
    def from_value(cls, value: dict[str, Any] | None) -> LiveMinute:
        """The inverse of ``to_value``; an empty or missing value is an empty minute."""
        if not value:
            return cls()
        users = value.get("users")
        visitors = value.get("visitors")  # absent in minutes written before it existed
        return cls(
            events=int(value.get("events", 0)),
            estimated=float(value.get("estimated", 0.0)),
            names={str(k): int(v) for k, v in (value.get("names") or {}).items()},
            users=Sketch.from_bytes(base64.b64decode(users) if users else None),
            newest_received_us=int(value.get("newest_received_us", 0)),
            visitors=Sketch.from_bytes(base64.b64decode(visitors) if visitors else None),
        )


def minutes_of(rows: Iterable[EventRow]) -> dict[tuple[str, int], LiveMinute]:
    """A batch's rows as one delta per (project, minute start in epoch µs)."""
    out: dict[tuple[str, int], LiveMinute] = {}
    hashes: dict[tuple[str, int], set[int]] = {}
    humans: dict[tuple[str, int], set[int]] = {}
    # A batch repeats its users and user agents: hash and classify each once.
    user_hashes: dict[str, int] = {}
    bots: dict[str, bool] = {}
    for row in rows:
        key = (row.project_id, row.timestamp_us - row.timestamp_us % MINUTE_US)
        minute = out.get(key)
        if minute is None:
            minute = out[key] = LiveMinute()
            hashes[key] = set()
            humans[key] = set()
        minute.events += 1
        minute.estimated += 1.0 / row.sample_rate if row.sample_rate > 0 else 1.0
        minute.names[row.event_name] = minute.names.get(row.event_name, 0) + 1
        user = row.user_id
        if user is not None:
            member = user_hashes.get(user)
            if member is None:
                member = user_hashes[user] = member_hash(user)
            hashes[key].add(member)
            # visitors leave bots out (SPEC §10), as the stats rollups do
            agent = row.user_agent
            bot = False
            if agent:
                known = bots.get(agent)
                bot = bots[agent] = bool(cached_agent(agent).is_bot) if known is None else known
            if not bot:
                humans[key].add(member)
        if row.received_at_us > minute.newest_received_us:
            minute.newest_received_us = row.received_at_us
    for key, members in hashes.items():
        out[key].users.add_many(members)
        out[key].visitors.add_many(humans[key])
    return out


def merge_minutes(
    parts: Iterable[Iterable[tuple[float, LiveMinute]]],
) -> list[tuple[float, LiveMinute]]:
    """Minutes gathered from several workers, by start; a minute seen twice is summed."""
    merged: dict[float, LiveMinute] = {}
    for part in parts:
        for start, minute in part:
            have = merged.get(start)
            merged[start] = minute if have is None else have.merged(minute)
    return sorted(merged.items(), key=lambda item: item[0])


def realtime_figures(
    minutes: Iterable[tuple[float, LiveMinute]], now: float, *, top: int = 10
) -> dict[str, Any]:
    """Widget figures from (minute start in epoch seconds, minute) pairs of one project."""
    by_minute = {int(start): minute for start, minute in minutes}
    empty = LiveMinute()
    current = int(now // 60 * 60)
    last_5 = [by_minute.get(current - 60 * i, empty) for i in range(5)]
    last_60 = [by_minute.get(current - 60 * i, empty) for i in range(60)]
    names: dict[str, int] = {}
    users = Sketch()
    visitors = Sketch()
    for minute in last_5:
        visitors.merge(minute.visitors)
        for name, n in minute.names.items():
            names[name] = names.get(name, 0) + n
        users.merge(minute.users)
    per_minute = [
        {"minute": current - 60 * i, "events": by_minute.get(current - 60 * i, empty).events}
        for i in reversed(range(30))
    ]
    newest = max((start for start, m in by_minute.items() if m.events), default=None)
    received = max((m.newest_received_us for m in by_minute.values()), default=0)
    return {
        "events_last_5_minutes": sum(m.events for m in last_5),
        "events_last_hour": sum(m.events for m in last_60),
        "estimated_last_hour": sum(m.estimated for m in last_60),
        "events_per_minute": per_minute,
        "top_events_5_minutes": [
            {"event_name": n, "count": c}
            for n, c in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ],
        "active_users_5_minutes": users.cardinality(),
        "visitors_5_minutes": visitors.cardinality(),
        "newest_minute": newest,
        "newest_received_at": received / 1_000_000 if received else None,
    }
