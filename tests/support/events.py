"""Events and request contexts built in memory, for the pure tests of the event rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.events.validation import RequestContext

# The seed request body of SPEC §4 (only event_name and event_source are required).
SEED = {
    "event_name": "page_view",
    "event_source": "web_app",
    "user_id": "user_123",
    "session_id": "sess_abc",
    "event_id": "client_event_id",
    "properties": {"page": "/dashboard", "referrer": "https://google.com"},
    "timestamp": "2023-01-01T12:00:00Z",
}

# A fixed server clock: 2026-03-01 12:00:00 UTC.
SERVER_NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SERVER_NOW_US = to_us(SERVER_NOW)
SECOND_US = 1_000_000


def request_context(**overrides: Any) -> RequestContext:
    """The context the edge builds for a request, with the Settings defaults (SPEC §3, §4)."""
    ctx = RequestContext(
        project_id="p1",
        salt="salt-1",
        now_us=SERVER_NOW_US,
        ip_address="203.0.113.7",
        user_agent="Mozilla/5.0 (test)",
        cookie_user_id=None,
        sent_at_us=None,
        max_properties_bytes=64 * 1024,
        max_properties_depth=32,
        future_tolerance_us=24 * 3600 * SECOND_US,
        skew_threshold_us=150 * SECOND_US,
        session_window_minutes=60,
    )
    return replace(ctx, **overrides)


def event_row(**overrides: Any) -> EventRow:
    """An accepted event at SERVER_NOW; override any field by name."""
    row = EventRow(
        project_id="p1",
        event_id="e1",
        event_source_id=1,
        event_source="web",
        user_id="u1",
        session_id="s1",
        event_name="page_view",
        properties="{}",
        timestamp_us=SERVER_NOW_US,
        sample_rate=1.0,
        received_at_us=SERVER_NOW_US,
        ip_address=None,
        user_agent=None,
    )
    return row._replace(**overrides)
