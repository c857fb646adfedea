"""Answers of the stats API (SPEC §10), read from the rollups, ``visits`` and ``events``.

Where each figure comes from:
- unfiltered event figures (visitors, pageviews, events; ``event:name|page|hostname``
  breakdowns) from ``stats_daily`` for whole UTC days and ``stats_hourly`` for the rest,
  visitors by merging the rows' sketches (exact up to 10,000, HyperLogLog beyond);
- visit figures (visits, bounce rate, duration, ``visit:*`` breakdowns) from ``visits``,
  a visit belonging to the period its first event falls in;
- anything filtered, ``event:props:KEY``, or a range that is not whole hours (a
  ``5min`` interval, a zone with a half-hour offset) from ``events`` joined to
  ``visits``.
Bots (``is_bot``) are in none of them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics.counting.sketch import Union
from analytics.stats.filters import Filter
from analytics.stats.properties import NONE, ROLLUP_DIMENSIONS, Property

if TYPE_CHECKING:
    from analytics.storage import Connection

_HOUR = timedelta(hours=1)
_BOUNCE = "(v.pageviews = 1 AND v.events = 1)"
_DURATION = "extract(epoch FROM v.ended_at - v.started_at)"


class Sql:
    """Positional parameters collected while a statement is built."""

    __slots__ = ("args",)

    def __init__(self, *args: Any) -> None:
        self.args: list[Any] = list(args)

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


def _column(prop: Property, alias: str, sql: Sql) -> str:
    if prop.props_key is not None:
        return f"({alias}.properties ->> {sql.param(prop.props_key)})"
    return f"{alias}.{prop.column}"


def _condition(f: Filter, sql: Sql) -> str:
    column = f"coalesce({_column(f.prop, 'e' if f.prop.kind == 'event' else 'v', sql)}, '{NONE}')"
    if f.op == "~":
        patterns = [
            "%" + v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            for v in f.values
        ]
        return f"{column} ILIKE ANY({sql.param(patterns)}::text[])"
    values = sql.param(list(f.values))
    if f.op == "==":
        return f"{column} = ANY({values}::text[])"
    return f"{column} <> ALL({values}::text[])"


def _event_where(filters: Sequence[Filter], sql: Sql) -> tuple[str, str]:
    """(join, where) of an events query: project $1, range [$2, $3), no bots, filters."""
    where = [
        "e.project_id = $1",
        'e."timestamp" >= $2',
        'e."timestamp" < $3',
        "e.is_bot IS NOT TRUE",
    ]
    where += [_condition(f, sql) for f in filters]
    join = ""
    if any(f.prop.kind == "visit" for f in filters):
        join = "JOIN visits v ON v.project_id = e.project_id AND v.session_id = e.session_id"
    return join, " AND ".join(where)


def _visit_where(filters: Sequence[Filter], sql: Sql) -> str:
    """Visits of project $1 starting in [$2, $3), filtered (event filters: a matching event)."""
    where = ["v.project_id = $1", "v.started_at >= $2", "v.started_at < $3"]
    where += [_condition(f, sql) for f in filters if f.prop.kind == "visit"]
    event_filters = [f for f in filters if f.prop.kind == "event"]
    if event_filters:
        inner = " AND ".join(_condition(f, sql) for f in event_filters)
        where.append(
            "v.session_id IN (SELECT e.session_id FROM events e WHERE e.project_id = $1"
            ' AND e."timestamp" >= $2 AND e."timestamp" < $3 AND e.is_bot IS NOT TRUE'
            f" AND e.session_id IS NOT NULL AND {inner})"
        )
    return " AND ".join(where)


@dataclass(slots=True)
class Figures:
    """Event figures of one row or bucket; visitors as merged sketches or an exact count."""

    events: int = 0
    pageviews: int = 0
    sketches: Union | None = None
    visitors_exact: int | None = None

    @property
    def visitors(self) -> int:
        if self.visitors_exact is None:
            self.visitors_exact = self.sketches.cardinality() if self.sketches else 0
        return self.visitors_exact

    def add(self, events: int, pageviews: int, sketch: bytes | None) -> None:
        self.events += events
        self.pageviews += pageviews
        if sketch:
            if self.sketches is None:
                self.sketches = Union()
            self.sketches.add(sketch)
            self.visitors_exact = None


@dataclass(slots=True)
class VisitFigures:
    visits: int = 0
    bounces: int = 0
    duration: float = 0.0
    pageviews: int = 0
    visitors: int = 0

    def metric(self, name: str) -> float | int:
        if name == "visits":
            return self.visits
        if name == "visitors":
            return self.visitors
        if name == "pageviews":
            return self.pageviews
        if name == "bounce_rate":
            return round(100.0 * self.bounces / self.visits, 1) if self.visits else 0.0
        if name == "visit_duration":
            return round(self.duration / self.visits) if self.visits else 0
        if name == "views_per_visit":
            return round(self.pageviews / self.visits, 2) if self.visits else 0.0
        raise KeyError(name)


def _hour_aligned(moment: datetime) -> bool:
    return moment.minute == 0 and moment.second == 0 and moment.microsecond == 0


def _rollup_spans(
    start: datetime, end: datetime
) -> tuple[date, date, list[tuple[datetime, datetime]]]:
    """Whole UTC days [first, last) inside [start, end), and the hour ranges around them."""
    first_day = (start + timedelta(days=1) - timedelta(microseconds=1)).date()
    first_at = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    last_day = end.astimezone(UTC).date()
    last_at = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC)
    if first_at >= last_at:
        return first_day, first_day, [(start, end)]
    return first_day, last_day, [(start, first_at), (last_at, end)]


def _rollup_union(columns: str, only: str = "") -> str:
    """The rollup rows of $1 project, $2 dimension over [start, end): whole UTC days from
    ``stats_daily`` ($3, $4), the hours around them from ``stats_hourly`` ($5-$8)."""
    return f"""
        SELECT {columns} FROM stats_daily
        WHERE project_id = $1 AND dimension = $2 AND day >= $3 AND day < $4{only}
        UNION ALL
        SELECT {columns} FROM stats_hourly
        WHERE project_id = $1 AND dimension = $2 AND ((bucket_start >= $5 AND bucket_start < $6)
           OR (bucket_start >= $7 AND bucket_start < $8)){only}
        """


def _rollup_args(project_id: str, dimension: str, start: datetime, end: datetime) -> list[Any]:
    """$1-$8 of ``_rollup_union``."""
    first, last, hours = _rollup_spans(start.astimezone(UTC), end.astimezone(UTC))
    after = hours[-1] if len(hours) > 1 else (hours[0][1], hours[0][1])
    return [project_id, dimension, first, last, *hours[0], *after]


async def rollup_figures(
    conn: Connection,
    project_id: str,
    dimension: str,
    start: datetime,
    end: datetime,
    values: Sequence[str] | None = None,
) -> dict[str, Figures] | None:
    """Per value, the rollups' figures over [start, end); None when it is not whole hours."""
    if not (_hour_aligned(start) and _hour_aligned(end)):
        return None
    only = "" if values is None else " AND value = ANY($9::text[])"
    rows = await conn.fetch(
        _rollup_union("value, events, pageviews, visitors_sketch", only),
        *_rollup_args(project_id, dimension, start, end),
        *([list(values)] if values is not None else []),
    )
    out: dict[str, Figures] = {}
    for value, events, pageviews, sketch in rows:
        figures = out.get(value)
        if figures is None:
            figures = out[value] = Figures()
        figures.add(events, pageviews, sketch)
    return out


async def event_totals(
    conn: Connection, project_id: str, start: datetime, end: datetime, filters: Sequence[Filter]
) -> Figures:
    """Visitors, pageviews and events of the range."""
    if not filters:
        found = await rollup_figures(conn, project_id, "", start, end)
        if found is not None:
            return found.get("", Figures(visitors_exact=0))
    sql = Sql(project_id, start, end)
    join, where = _event_where(filters, sql)
    row = await conn.fetchrow(
        f"""SELECT count(DISTINCT e.user_id), count(*) FILTER (WHERE e.event_name = 'page_view'),
                   count(*) FROM events e {join} WHERE {where}""",
        *sql.args,
    )
    assert row is not None
    return Figures(events=row[2], pageviews=row[1], visitors_exact=row[0])


_VISIT_FIGURES = f"""count(*), count(*) FILTER (WHERE {_BOUNCE}),
    coalesce(sum({_DURATION}), 0)::float8, coalesce(sum(v.pageviews), 0)::bigint,
    count(DISTINCT v.user_id)"""
# The same without the distinct visitors (the costly part), where visitors come from
# the event figures instead.
_VISIT_FIGURES_NO_VISITORS = _VISIT_FIGURES.replace("count(DISTINCT v.user_id)", "0::bigint")


async def visit_totals(
    conn: Connection, project_id: str, start: datetime, end: datetime, filters: Sequence[Filter]
) -> VisitFigures:
    sql = Sql(project_id, start, end)
    where = _visit_where(filters, sql)
    row = await conn.fetchrow(
        f"SELECT {_VISIT_FIGURES_NO_VISITORS} FROM visits v WHERE {where}", *sql.args
    )
    assert row is not None
    return VisitFigures(row[0], row[1], row[2], row[3], row[4])


async def event_series(
    conn: Connection,
    project_id: str,
    bounds: Sequence[datetime],
    end: datetime,
    filters: Sequence[Filter],
    visitors: bool,
) -> list[Figures]:
    """Event figures per bucket; ``bounds`` are the buckets' starts, ``end`` the last's end."""
    out = [Figures(visitors_exact=0 if not visitors else None) for _ in bounds]
    start = bounds[0]
    if not filters and all(_hour_aligned(b) for b in bounds) and _hour_aligned(end):
        rows = await conn.fetch(
            "SELECT bucket_start, events, pageviews, "
            + ("visitors_sketch" if visitors else "NULL::bytea")
            + " FROM stats_hourly WHERE project_id = $1 AND dimension = ''"
            " AND bucket_start >= $2 AND bucket_start < $3",
            project_id,
            start,
            end,
        )
        for at, events, pageviews, sketch in rows:
            out[bisect_right(bounds, at) - 1].add(events, pageviews, sketch)
        return out
    sql = Sql(project_id, start, end)
    join, where = _event_where(filters, sql)
    edges = sql.param(list(bounds))
    rows = await conn.fetch(
        f"""SELECT width_bucket(e."timestamp", {edges}::timestamptz[]), count(DISTINCT e.user_id),
                   count(*) FILTER (WHERE e.event_name = 'page_view'), count(*)
            FROM events e {join} WHERE {where} GROUP BY 1""",
        *sql.args,
    )
    for index, users, pageviews, events in rows:
        out[index - 1] = Figures(events=events, pageviews=pageviews, visitors_exact=users)
    return out


async def visit_series(
    conn: Connection,
    project_id: str,
    bounds: Sequence[datetime],
    end: datetime,
    filters: Sequence[Filter],
) -> list[VisitFigures]:
    out = [VisitFigures() for _ in bounds]
    sql = Sql(project_id, bounds[0], end)
    where = _visit_where(filters, sql)
    edges = sql.param(list(bounds))
    rows = await conn.fetch(
        f"SELECT width_bucket(v.started_at, {edges}::timestamptz[]), "
        f"{_VISIT_FIGURES_NO_VISITORS}"
        f" FROM visits v WHERE {where} GROUP BY 1",
        *sql.args,
    )
    for index, *figures in rows:
        out[index - 1] = VisitFigures(*figures)
    return out


_ORDER = {
    "visitors": "2",
    "pageviews": "3",
    "events": "4",
    "visits": "3",
    "bounce_rate": "CASE WHEN count(*) > 0 THEN count(*) FILTER (WHERE "
    + _BOUNCE
    + ")::float8 / count(*) ELSE 0 END",
    "visit_duration": f"CASE WHEN count(*) > 0 THEN sum({_DURATION}) / count(*) ELSE 0 END",
}


async def event_breakdown(
    conn: Connection,
    project_id: str,
    start: datetime,
    end: datetime,
    prop: Property,
    filters: Sequence[Filter],
    order_by: str,
    limit: int,
    offset: int,
) -> list[tuple[str, Figures]]:
    """Rows of an ``event:*`` breakdown, ranked by ``order_by`` (then by value)."""
    dimension = ROLLUP_DIMENSIONS.get(prop.name)
    if dimension is not None and not filters:
        ranked = await _rollup_breakdown(
            conn, project_id, dimension, start, end, order_by, limit, offset
        )
        if ranked is not None:
            return ranked
    sql = Sql(project_id, start, end)
    join, where = _event_where(filters, sql)
    column = _column(prop, "e", sql)
    rows = await conn.fetch(
        f"""SELECT {column} AS value, count(DISTINCT e.user_id),
                   count(*) FILTER (WHERE e.event_name = 'page_view'), count(*)
            FROM events e {join} WHERE {where} AND {column} IS NOT NULL
            GROUP BY 1 ORDER BY {_ORDER[order_by]} DESC, {column} COLLATE "C"
            LIMIT {sql.param(limit)} OFFSET {sql.param(offset)}""",
        *sql.args,
    )
    return [(r[0], Figures(events=r[3], pageviews=r[2], visitors_exact=r[1])) for r in rows]


async def _rollup_breakdown(
    conn: Connection,
    project_id: str,
    dimension: str,
    start: datetime,
    end: datetime,
    order_by: str,
    limit: int,
    offset: int,
) -> list[tuple[str, Figures]] | None:
    """Rank values on the rollups' summed counts in SQL, then merge sketches for the page.

    Ranking by visitors uses the sum of each bucket's visitors (a visitor seen on two
    days counts twice there); the page's rows are then ordered by their true visitors.
    """
    if not (_hour_aligned(start) and _hour_aligned(end)):
        return None
    rank = {"visitors": "sum(visitors)", "pageviews": "sum(pageviews)"}.get(order_by, "sum(events)")
    union = _rollup_union("value, events, pageviews, visitors")
    rows = await conn.fetch(
        f"""SELECT value FROM ({union}) r GROUP BY value
            ORDER BY {rank} DESC, value COLLATE "C" LIMIT $9 OFFSET $10""",
        *_rollup_args(project_id, dimension, start, end),
        limit,
        offset,
    )
    ordered = [r[0] for r in rows]
    if not ordered:
        return []
    exact = await rollup_figures(conn, project_id, dimension, start, end, values=ordered)
    assert exact is not None
    page = [(v, exact[v]) for v in ordered if v in exact]
    if order_by == "visitors":
        page.sort(key=lambda item: (-item[1].visitors, item[0]))
    return page


async def visit_breakdown(
    conn: Connection,
    project_id: str,
    start: datetime,
    end: datetime,
    prop: Property,
    filters: Sequence[Filter],
    order_by: str,
    limit: int,
    offset: int,
) -> list[tuple[str, VisitFigures]]:
    sql = Sql(project_id, start, end)
    where = _visit_where(filters, sql)
    order = {"visitors": "6", "visits": "2", "pageviews": "5"}.get(order_by) or _ORDER[order_by]
    value = f"coalesce(v.{prop.column}, '{NONE}')"
    rows = await conn.fetch(
        f"""SELECT {value}, {_VISIT_FIGURES}
            FROM visits v WHERE {where}
            GROUP BY 1 ORDER BY {order} DESC, {value} COLLATE "C"
            LIMIT {sql.param(limit)} OFFSET {sql.param(offset)}""",
        *sql.args,
    )
    return [(r[0], VisitFigures(r[1], r[2], r[3], r[4], r[5])) for r in rows]


async def project_timezone(conn: Connection, project_id: str) -> str:
    zone = await conn.fetchval(
        "SELECT settings ->> 'timezone' FROM projects WHERE id = $1", project_id
    )
    return str(zone) if zone else "UTC"
