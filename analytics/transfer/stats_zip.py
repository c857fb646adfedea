"""``GET /api/export/stats/``: a period's figures as a ZIP of CSV files (SPEC §11).

The period is named as the stats API of SPEC §10 names it: ``period`` one of
``day``, ``7d``, ``30d``, ``month``, ``6mo``, ``12mo`` (ending with the day ``date``,
default today, UTC), or ``custom`` with ``date=YYYY-MM-DD,YYYY-MM-DD`` (both days
included). The files are built from the aggregates that exist today (one row per day,
never a raw-event scan) and are small, so the archive is built in memory:

- ``visitors_per_day.csv``: day, events, estimated_events, unique_users,
  unique_sessions (``project_daily_summary``);
- ``custom_events.csv``: day, event_source, event_name, events, estimated_events,
  unique_users, unique_sessions (``agg_daily``);
- ``event_sources.csv``: day, event_source, events (the summary's per-source counts).

Pages, entry and exit pages, referrer sources, UTM, countries, devices, browsers and
operating systems need the enrichment columns and the visits tables, which do not
exist yet: those files are not in the archive until they do.
"""

from __future__ import annotations

import calendar
import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import orjson

from analytics.errors import BadRequest
from analytics.storage import exports
from analytics.transfer.events_file import csv_value

if TYPE_CHECKING:
    from analytics.storage import Connection

PERIODS = ("day", "7d", "30d", "month", "6mo", "12mo", "custom")
MAX_DAYS = 3660

VISITORS_COLUMNS = ("day", "events", "estimated_events", "unique_users", "unique_sessions")
EVENTS_COLUMNS = (
    "day",
    "event_source",
    "event_name",
    "events",
    "estimated_events",
    "unique_users",
    "unique_sessions",
)
SOURCES_COLUMNS = ("day", "event_source", "events")


@dataclass(slots=True, frozen=True)
class Period:
    """UTC days ``first`` to ``last``, both included."""

    first: date
    last: date


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadRequest(
            f"{field} must be a day YYYY-MM-DD (custom: YYYY-MM-DD,YYYY-MM-DD)",
            code=f"{field}_invalid",
            field=field,
        ) from exc


def _months_back(day: date, months: int) -> date:
    """The first day of the month ``months - 1`` months before ``day``'s month."""
    index = day.year * 12 + day.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


def resolve_period(period: str | None, date_text: str | None, today: date) -> Period:
    """The days a ``period`` / ``date`` pair names; a 400 naming the bad parameter."""
    period = period or "30d"
    if period not in PERIODS:
        raise BadRequest(
            f"period must be one of {', '.join(PERIODS)}", code="period_invalid", field="period"
        )
    if period == "custom":
        parts = (date_text or "").split(",")
        if len(parts) != 2:
            raise BadRequest(
                "period=custom needs date=YYYY-MM-DD,YYYY-MM-DD",
                code="date_invalid",
                field="date",
            )
        first, last = _day(parts[0], "date"), _day(parts[1], "date")
        if first > last:
            raise BadRequest(
                "the first day of date is after the last", code="date_range_invalid", field="date"
            )
        if (last - first).days >= MAX_DAYS:
            raise BadRequest(
                f"the period is longer than {MAX_DAYS} days",
                code="date_range_too_large",
                field="date",
            )
        return Period(first, last)
    end = today if not date_text else _day(date_text, "date")
    try:
        if period == "day":
            return Period(end, end)
        if period in ("7d", "30d"):
            return Period(end - timedelta(days=int(period[:-1]) - 1), end)
        if period == "month":
            last_day = calendar.monthrange(end.year, end.month)[1]
            return Period(end.replace(day=1), end.replace(day=last_day))
        return Period(_months_back(end, int(period[:-2])), end)
    except (OverflowError, ValueError) as exc:
        raise BadRequest(
            "date is too close to the calendar's limits", code="date_invalid", field="date"
        ) from exc


def _csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([csv_value(v) for v in row] for row in rows)
    return out.getvalue().encode()


async def stats_zip(conn: Connection, project_id: str, period: Period) -> bytes:
    """The ZIP archive of the period's CSV files (see the module docstring)."""
    summary = await exports.daily_summary_rows(conn, project_id, period.first, period.last)
    daily = await exports.daily_aggregate_rows(conn, project_id, period.first, period.last)
    visitors = [
        (
            r["day"],
            r["total_events"],
            r["estimated_events"],
            r["unique_users"],
            r["unique_sessions"],
        )
        for r in summary
    ]
    events = [
        (
            r["day"],
            r["event_source"],
            r["event_name"],
            r["event_count"],
            r["estimated_count"],
            r["unique_users"],
            r["unique_sessions"],
        )
        for r in daily
    ]
    sources = [
        (r["day"], name, count)
        for r in summary
        for name, count in sorted(orjson.loads(r["sources"]).items())
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("visitors_per_day.csv", _csv(VISITORS_COLUMNS, visitors))
        archive.writestr("custom_events.csv", _csv(EVENTS_COLUMNS, events))
        archive.writestr("event_sources.csv", _csv(SOURCES_COLUMNS, sources))
    return buffer.getvalue()
