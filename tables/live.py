"""Live state: faust windowed tables the realtime views read (no I/O here).

``live-minutes`` is a tumbling one-minute window per project, kept for an
hour and five minutes. Each value holds the minute's event count, estimated
count, counts by event name and a distinct-user sketch (base64 of
``analytics.sketch``), so "last 5 minutes", "last hour", "per minute" and
"active users" are all sums or unions of minutes.

Only events the raw sink's ledger accepted as new are added, so a replay
after a restart never doubles these figures; a worker killed between its
PostgreSQL commit and the table update under-counts that one batch in the
live view only (PostgreSQL stays exact).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from analytics.settings import Settings

LIVE_TABLE = "live-minutes"
LIVE_WINDOW_SECONDS = 60.0
LIVE_EXPIRES = timedelta(hours=1, minutes=5)

# The event time (epoch seconds) an update applies to: faust picks the window
# from it, not from the Kafka message time of the packed batch.
APPLY_AT: ContextVar[float] = ContextVar("sa_live_apply_at", default=0.0)


def _apply_at(event: Any) -> float:
    return APPLY_AT.get()


def live_minutes(app: Any, settings: Settings) -> Any:
    """The per-project, per-minute live table (changelog partitions = source partitions)."""
    table = app.Table(
        LIVE_TABLE,
        default=dict,
        partitions=settings.topic_partitions,
    )
    return table.tumbling(LIVE_WINDOW_SECONDS, expires=LIVE_EXPIRES).relative_to(_apply_at)
