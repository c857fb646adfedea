"""Folding a batch's new events into the live windowed table.

faust routes a table write to the changelog partition of the *current
event*; a ``take_events`` batch has none, so each project's updates run with
one of that project's own events set as current (all of a project's events
share a partition, because the bridge keys messages by project).
"""

from __future__ import annotations

import base64
import weakref
from collections.abc import Iterable
from typing import Any

from faust.streams import _current_event

from analytics.models import EventRow
from analytics.sketch import Sketch, member_hash
from tables.live import APPLY_AT, LIVE_WINDOW_SECONDS

_WIDTH_US = int(LIVE_WINDOW_SECONDS * 1_000_000)


def _minute_deltas(rows: Iterable[EventRow]) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        start = row.timestamp_us - row.timestamp_us % _WIDTH_US
        delta = out.get((row.project_id, start))
        if delta is None:
            delta = out[(row.project_id, start)] = {
                "n": 0,
                "e": 0.0,
                "names": {},
                "users": set(),
                "r": 0,
            }
        delta["n"] += 1
        delta["e"] += 1.0 / row.sample_rate if row.sample_rate > 0 else 1.0
        names = delta["names"]
        names[row.event_name] = names.get(row.event_name, 0) + 1
        if row.user_id is not None:
            delta["users"].add(member_hash(row.user_id))
        if row.received_at_us > delta["r"]:
            delta["r"] = row.received_at_us
    return out


def merge_minute(current: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """A live minute value with a delta added."""
    names = dict(current.get("names") or {})
    for name, n in delta["names"].items():
        names[name] = names.get(name, 0) + n
    users = Sketch.from_bytes(base64.b64decode(current["u"]) if current.get("u") else None)
    users.add_many(delta["users"])
    return {
        "n": int(current.get("n", 0)) + delta["n"],
        "e": float(current.get("e", 0.0)) + delta["e"],
        "names": names,
        "u": base64.b64encode(users.to_bytes()).decode(),
        "r": max(int(current.get("r", 0)), delta["r"]),
    }


def update_live(table: Any, rows: list[EventRow], anchors: dict[str, Any], horizon_us: int) -> int:
    """Add new rows to the live table; rows older than ``horizon_us`` are left to PostgreSQL."""
    updated = 0
    for (project_id, start), delta in sorted(_minute_deltas(rows).items()):
        if start < horizon_us:
            continue
        anchor = anchors.get(project_id)
        if anchor is None:
            continue
        token = _current_event.set(weakref.ref(anchor))
        at = APPLY_AT.set(start / 1_000_000 + LIVE_WINDOW_SECONDS / 2)
        try:
            window = table[project_id]
            table[project_id] = merge_minute(window.value(), delta)
            updated += 1
        finally:
            APPLY_AT.reset(at)
            _current_event.reset(token)
    return updated
