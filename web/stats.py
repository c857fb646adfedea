"""The stats API (SPEC §10): ``/api/stats/aggregate|timeseries|breakdown|realtime/visitors/``.

Private key or share link only. Each handler parses its query through ``analytics.stats`` (a bad
parameter is a 400 naming it) and answers ``{"results": …}`` in the project's time zone.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from analytics.errors import BadRequest
from analytics.stats.filters import Filter, parse_filters
from analytics.stats.periods import DateRange, buckets, parse_interval, parse_range
from analytics.stats.properties import (
    EVENT_METRICS,
    METRICS,
    VISIT_METRICS,
    parse_metrics,
    parse_property,
)
from analytics.storage import stats
from web.app_keys import PG_POOL
from web.middleware import json_response
from web.private_api import query_text, stats_project_id
from web.realtime import live_figures

AGGREGATE_DEFAULT = ("visitors", "visits", "pageviews", "bounce_rate", "visit_duration")
TIMESERIES_DEFAULT = ("visitors", "pageviews")
_EVENT_LEVEL = frozenset(EVENT_METRICS)
_KNOWN = frozenset(
    {"period", "date", "filters", "compare", "interval", "metrics", "property", "limit", "page"}
)


def _check_known(request: web.Request, allowed: frozenset[str]) -> None:
    for name in request.query:
        if name not in _KNOWN:
            raise BadRequest(
                f"{name[:40]}: unknown parameter", code="parameter_unknown", field=name[:40]
            )
        if name not in allowed:
            raise BadRequest(
                f"{name}: not a parameter of this endpoint", code=f"{name}_invalid", field=name
            )


async def _common(
    request: web.Request, allowed: frozenset[str]
) -> tuple[str, DateRange, list[Filter]]:
    project_id = await stats_project_id(request)
    _check_known(request, allowed)
    async with request.app[PG_POOL].acquire() as conn:
        zone = ZoneInfo(await stats.project_timezone(conn, project_id))
    span = parse_range(query_text(request, "period"), query_text(request, "date"), zone)
    filters = parse_filters(query_text(request, "filters"))
    return project_id, span, filters


def _compare(request: web.Request) -> bool:
    value = query_text(request, "compare")
    if value is None:
        return False
    if value != "previous_period":
        raise BadRequest(
            f"compare must be previous_period, got {value[:40]!r}",
            code="compare_invalid",
            field="compare",
        )
    return True


def _positive(request: web.Request, name: str, default: int, high: int) -> int:
    text = query_text(request, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= high:
        raise BadRequest(
            f"{name} must be a whole number from 1 to {high}, got {text[:20]!r}",
            code=f"{name}_invalid",
            field=name,
        )
    return value


async def _figures(
    request: web.Request,
    project_id: str,
    span: DateRange,
    filters: list[Filter],
    metrics: list[str],
) -> dict[str, float | None]:
    out: dict[str, float] = {}
    async with request.app[PG_POOL].acquire() as conn:
        if _EVENT_LEVEL & set(metrics):
            events = await stats.event_totals(conn, project_id, span.start, span.end, filters)
            out.update(visitors=events.visitors, pageviews=events.pageviews, events=events.events)
        visit_count: int | None = None
        if set(metrics) - _EVENT_LEVEL:
            visits = await stats.visit_totals(conn, project_id, span.start, span.end, filters)
            visit_count = visits.visits
            for name in set(metrics) - _EVENT_LEVEL:
                out[name] = visits.metric(name)
    figures: dict[str, float | None] = {name: out[name] for name in metrics}
    if visit_count == 0:
        # a rate or mean of no visits is shown as 0 but is not a value to compare with
        figures.update({name: None for name in _PER_VISIT if name in figures})
    return figures


_PER_VISIT = ("bounce_rate", "visit_duration", "views_per_visit")


def _change(metric: str, now: float | None, before: float | None) -> float | None:
    if now is None or before is None:
        return None
    if metric == "bounce_rate":
        return round(now - before, 1)
    if before == 0:
        return None
    return round(100.0 * (now - before) / before, 1)


async def aggregate(request: web.Request) -> web.Response:
    """Totals of the period, each with its change when ``compare=previous_period``."""
    allowed = frozenset({"period", "date", "filters", "compare", "metrics"})
    project_id, span, filters = await _common(request, allowed)
    metrics = parse_metrics(query_text(request, "metrics"), AGGREGATE_DEFAULT, METRICS)
    compare = _compare(request)
    now = await _figures(request, project_id, span, filters, metrics)
    results: dict[str, dict[str, Any]] = {
        name: {"value": 0 if value is None else value} for name, value in now.items()
    }
    if compare:
        before = await _figures(request, project_id, span.previous(), filters, metrics)
        for name, entry in results.items():
            entry["change"] = _change(name, now[name], before[name])
    return json_response({"results": results})


async def _series(
    request: web.Request,
    project_id: str,
    span: DateRange,
    interval: str,
    filters: list[Filter],
    metrics: list[str],
    labels: bool = True,
) -> list[dict[str, Any]]:
    slots = buckets(span, interval)
    bounds = [start for _, start, _ in slots]
    end = slots[-1][2]
    rows: list[dict[str, Any]] = [{"date": label} for label, _, _ in slots]
    async with request.app[PG_POOL].acquire() as conn:
        if _EVENT_LEVEL & set(metrics):
            events = await stats.event_series(
                conn, project_id, bounds, end, filters, "visitors" in metrics
            )
            for row, figures in zip(rows, events, strict=True):
                row.update(
                    visitors=figures.visitors, pageviews=figures.pageviews, events=figures.events
                )
        if set(metrics) - _EVENT_LEVEL:
            visits = await stats.visit_series(conn, project_id, bounds, end, filters)
            for row, visit in zip(rows, visits, strict=True):
                for name in set(metrics) - _EVENT_LEVEL:
                    row[name] = visit.metric(name)
    return [{"date": row["date"], **{m: row[m] for m in metrics}} for row in rows]


async def timeseries(request: web.Request) -> web.Response:
    """One row per interval of the period (empty ones included), in the project's zone."""
    allowed = frozenset({"period", "date", "filters", "compare", "interval", "metrics"})
    project_id, span, filters = await _common(request, allowed)
    metrics = parse_metrics(query_text(request, "metrics"), TIMESERIES_DEFAULT, METRICS)
    interval = parse_interval(query_text(request, "interval"), span)
    compare = _compare(request)
    body: dict[str, Any] = {
        "results": await _series(request, project_id, span, interval, filters, metrics)
    }
    if compare:
        body["comparison"] = await _series(
            request, project_id, span.previous(), interval, filters, metrics
        )
    return json_response(body)


async def breakdown(request: web.Request) -> web.Response:
    """The top values of one property, ranked by the first metric asked for."""
    allowed = frozenset({"period", "date", "filters", "metrics", "property", "limit", "page"})
    project_id, span, filters = await _common(request, allowed)
    prop = parse_property(query_text(request, "property"))
    allowed_metrics = EVENT_METRICS if prop.kind == "event" else VISIT_METRICS
    metrics = parse_metrics(query_text(request, "metrics"), ("visitors",), allowed_metrics)
    limit = _positive(request, "limit", 100, 1000)
    page = _positive(request, "page", 1, 100_000)
    offset = (page - 1) * limit
    results: list[dict[str, Any]] = []
    async with request.app[PG_POOL].acquire() as conn:
        if prop.kind == "event":
            for value, figures in await stats.event_breakdown(
                conn, project_id, span.start, span.end, prop, filters, metrics[0], limit, offset
            ):
                figures_of = {
                    "visitors": figures.visitors,
                    "pageviews": figures.pageviews,
                    "events": figures.events,
                }
                results.append({prop.key: value, **{m: figures_of[m] for m in metrics}})
        else:
            for value, visit in await stats.visit_breakdown(
                conn, project_id, span.start, span.end, prop, filters, metrics[0], limit, offset
            ):
                results.append({prop.key: value, **{m: visit.metric(m) for m in metrics}})
    return json_response({"results": results, "page": page, "limit": limit})


async def realtime_visitors(request: web.Request) -> web.Response:
    """Distinct visitors of the last 5 minutes, from the workers' live tables."""
    project_id = await stats_project_id(request)
    _check_known(request, frozenset())
    figures = await live_figures(request, project_id)
    return json_response({"results": figures["visitors_5_minutes"]})


def add_routes(app: web.Application) -> None:
    """Register the four stats endpoints."""
    app.router.add_get("/api/stats/aggregate/", aggregate)
    app.router.add_get("/api/stats/timeseries/", timeseries)
    app.router.add_get("/api/stats/breakdown/", breakdown)
    app.router.add_get("/api/stats/realtime/visitors/", realtime_visitors)
