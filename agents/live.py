"""Folding a batch's new events into the live windowed table (``tables.live``).

Each project's updates run with one of that project's own events set as faust's
current event, so they go to that project's changelog partition (see
``agents.faust_internals.current_event``).
"""

from __future__ import annotations

from typing import Any

from agents.faust_internals import current_event
from analytics.counting.live_minute import LiveMinute, minutes_of
from analytics.events.models import EventRow
from tables.live import APPLY_AT, LIVE_WINDOW_SECONDS


def update_live(table: Any, rows: list[EventRow], anchors: dict[str, Any], horizon_us: int) -> int:
    """Add new rows to the live table; rows older than ``horizon_us`` are left to PostgreSQL."""
    updated = 0
    for (project_id, start), delta in sorted(minutes_of(rows).items(), key=lambda kv: kv[0]):
        if start < horizon_us:
            continue
        anchor = anchors.get(project_id)
        if anchor is None:
            continue
        at = APPLY_AT.set(start / 1_000_000 + LIVE_WINDOW_SECONDS / 2)
        try:
            with current_event(anchor):
                window = table[project_id]
                current = LiveMinute.from_value(window.value())
                table[project_id] = current.merged(delta).to_value()
            updated += 1
        finally:
            APPLY_AT.reset(at)
    return updated
