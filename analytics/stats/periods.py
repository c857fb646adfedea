"""``period`` and ``date`` as a range of local days in the project's time zone.

A range is ``[first, last]`` in local dates; its instants are local midnights, so a
day in a zone with daylight saving may last 23 or 25 hours. The previous period
(``compare=previous_period``) is the range of the same length just before it; for
``month`` it is the previous calendar month, for ``6mo``/``12mo`` the months before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from analytics.errors import BadRequest

PERIODS = ("day", "7d", "30d", "month", "6mo", "12mo", "custom")
INTERVALS = ("5min", "hour", "day", "month")
MAX_CUSTOM_DAYS = 5 * 366


@dataclass(frozen=True, slots=True)
class DateRange:
    """Local days ``first`` to ``last`` inclusive, in ``zone``."""

    first: date
    last: date
    zone: ZoneInfo
    period: str

    @property
    def start(self) -> datetime:
        """The first local midnight, as an aware UTC instant."""
        return _midnight(self.first, self.zone)

    @property
    def end(self) -> datetime:
        """The local midnight after the last day (exclusive), in UTC."""
        return _midnight(self.last + timedelta(days=1), self.zone)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> DateRange:
        """The period of the same kind just before this one."""
        if self.period == "month":
            last = self.first - timedelta(days=1)
            return DateRange(last.replace(day=1), last, self.zone, self.period)
        if self.period in ("6mo", "12mo"):
            months = 6 if self.period == "6mo" else 12
            last = self.first - timedelta(days=1)
            return DateRange(_add_months(self.first, -months), last, self.zone, self.period)
        last = self.first - timedelta(days=1)
        return DateRange(last - timedelta(days=self.days - 1), last, self.zone, self.period)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _parse_day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{field} must be a date as YYYY-MM-DD, got {text[:40]!r}",
            code=f"{field}_invalid",
            field=field,
        ) from None


def today_in(zone: ZoneInfo, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(zone).date()


def parse_range(
    period: str | None, when: str | None, zone: ZoneInfo, now: datetime | None = None
) -> DateRange:
    """The local days a request asks for (400 naming ``period`` or ``date`` when bad)."""
    period = period or "30d"
    if period not in PERIODS:
        raise BadRequest(
            f"period must be one of {', '.join(PERIODS)}, got {period[:40]!r}",
            code="period_invalid",
            field="period",
        )
    if period == "custom":
        if not when:
            raise BadRequest(
                "period=custom needs date=YYYY-MM-DD,YYYY-MM-DD",
                code="date_missing",
                field="date",
            )
        parts = when.split(",")
        if len(parts) != 2:
            raise BadRequest(
                "date must be two days YYYY-MM-DD,YYYY-MM-DD for period=custom",
                code="date_invalid",
                field="date",
            )
        first, last = (_parse_day(p.strip(), "date") for p in parts)
        if last < first:
            raise BadRequest(
                "date: the first day must not be after the last",
                code="date_invalid",
                field="date",
            )
        if (last - first).days >= MAX_CUSTOM_DAYS:
            raise BadRequest(
                f"date: a custom range spans at most {MAX_CUSTOM_DAYS} days",
                code="date_invalid",
                field="date",
            )
        return DateRange(first, last, zone, period)
    anchor = _parse_day(when, "date") if when else today_in(zone, now)
    if period == "day":
        return DateRange(anchor, anchor, zone, period)
    if period in ("7d", "30d"):
        days = 7 if period == "7d" else 30
        return DateRange(anchor - timedelta(days=days - 1), anchor, zone, period)
    if period == "month":
        first = anchor.replace(day=1)
        last = _add_months(first, 1) - timedelta(days=1)
        return DateRange(first, last, zone, period)
    months = 6 if period == "6mo" else 12
    first = _add_months(anchor.replace(day=1), -(months - 1))
    last = _add_months(anchor.replace(day=1), 1) - timedelta(days=1)
    return DateRange(first, last, zone, period)


def default_interval(period: str) -> str:
    if period == "day":
        return "hour"
    if period in ("6mo", "12mo"):
        return "month"
    return "day"


def parse_interval(text: str | None, span: DateRange) -> str:
    """``interval`` checked, and small enough that the answer stays bounded."""
    interval = text or default_interval(span.period)
    if interval not in INTERVALS:
        raise BadRequest(
            f"interval must be one of {', '.join(INTERVALS)}, got {interval[:40]!r}",
            code="interval_invalid",
            field="interval",
        )
    if interval == "5min" and span.days > 2:
        raise BadRequest(
            "interval=5min is for a range of at most 2 days",
            code="interval_invalid",
            field="interval",
        )
    if interval == "hour" and span.days > 31:
        raise BadRequest(
            "interval=hour is for a range of at most 31 days",
            code="interval_invalid",
            field="interval",
        )
    return interval


def buckets(span: DateRange, interval: str) -> list[tuple[str, datetime, datetime]]:
    """Every interval of the range: (label in local time, UTC start, UTC end)."""
    zone = span.zone
    out: list[tuple[str, datetime, datetime]] = []
    if interval == "month":
        month = span.first.replace(day=1)
        while month <= span.last:
            nxt = _add_months(month, 1)
            out.append((month.isoformat(), _midnight(month, zone), _midnight(nxt, zone)))
            month = nxt
        return out
    if interval == "day":
        day = span.first
        while day <= span.last:
            nxt = day + timedelta(days=1)
            out.append((day.isoformat(), _midnight(day, zone), _midnight(nxt, zone)))
            day = nxt
        return out
    step = timedelta(hours=1) if interval == "hour" else timedelta(minutes=5)
    moment, end = span.start, span.end
    while moment < end:
        local = moment.astimezone(zone)
        out.append((local.strftime("%Y-%m-%d %H:%M:%S"), moment, moment + step))
        moment += step
    return out
