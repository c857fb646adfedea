"""Live state: faust windowed tables the realtime views read (no I/O here).

``live-minutes`` (named by the ``live_table`` setting, like every topic and stream)
is a tumbling one-minute window per project, kept for an hour and five minutes. Each
value is a ``LiveMinute`` (``analytics.counting.live_minute``) in its JSON form, so
"last 5 minutes", "last hour", "per minute" and "active users" are all sums or
unions of minutes.

Only events the raw sink's ledger accepted as new are added, so a replay
after a restart never doubles these figures; a worker killed between its
PostgreSQL commit and the table update under-counts that one batch in the
live view only (PostgreSQL stays exact).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from analytics.counting.live_minute import MINUTE_US
from analytics.settings import Settings

LIVE_WINDOW_SECONDS = MINUTE_US / 1_000_000
LIVE_EXPIRES = timedelta(hours=1, minutes=5)

# The event time (epoch seconds) an update applies to: faust picks the window
# from it, not from the Kafka message time of the packed batch.
APPLY_AT: ContextVar[float] = ContextVar("sa_live_apply_at", default=0.0)


def _apply_at(event: Any) -> float:
    return APPLY_AT.get()


def live_minutes(app: Any, settings: Settings) -> Any:
    """The per-project, per-minute live table (changelog partitions = source partitions)."""
    table = app.Table(
        settings.live_table,
        default=dict,
        partitions=settings.topic_partitions,
    )
    return table.tumbling(LIVE_WINDOW_SECONDS, expires=LIVE_EXPIRES).relative_to(_apply_at)
