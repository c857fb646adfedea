"""The OpenAPI 3.1 document of the edge's public HTTP API, served at ``GET /api/openapi.json``.

Written by hand from what the handlers answer (``web.ingest``, ``web.dashboard``,
``web.export``, ``web.realtime``, ``web.health`` and the error middleware): every
status a documented operation can answer is listed, and only those; a 500 is a
bug, never part of the contract, so it is not documented.
``tests/web/test_openapi.py`` fuzzes a running edge against this document and
checks that every ``/api/`` route is in it, so the two cannot drift apart
silently: when a handler changes what it answers, change this module too.

Size limits are those of the serving edge's settings; page sizes and date
ranges are read from ``web.dashboard``.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from functools import lru_cache
from importlib import metadata
from typing import Any

import orjson
from aiohttp import web

from web.app_keys import SETTINGS
from web.dashboard import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_RANGES,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    MAX_RANGES,
    SUMMARY_RANGE,
)
from web.openapi_schemas import (
    DATE_TIME,
    INT,
    NO_NUL,
    OBJ,
    STR,
    Limits,
    Schema,
    _answer_schemas,
    _described,
    _event_schemas,
    _ref,
)

PATH = "/api/openapi.json"

# --- operations ----------------------------------------------------------------------------

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait.",
        "required": True,
        "schema": {**INT, "minimum": 1},
    }
}

PRIVATE_ERRORS = {
    401: "missing_api_key (no 'Authorization: Bearer …') or invalid_api_key"
    " (unknown, revoked, or not a sa_ key).",
    403: "public_key_not_allowed: the dashboard takes the private key sa_priv_….",
}


def _json(schema: Schema, description: str, headers: Schema | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _errors(descriptions: dict[int, str], schema: str = "Error") -> dict[str, Schema]:
    """Error responses by status, each a ``schema`` body (429 and 503 with Retry-After)."""
    return {
        str(status): _json(_ref(schema), text, RETRY_AFTER if status in (429, 503) else None)
        for status, text in descriptions.items()
    }


def _ingest(batch: bool, limits: Limits) -> Schema:
    body = _ref("BatchEnvelope" if batch else "Event")
    limit = limits.max_batch_bytes if batch else limits.max_event_bytes
    if batch:
        accepted = _json(_ref("BatchResult"), "Accepted: every kept event is durable.")
        invalid = " invalid_batch, events_invalid, sent_at_invalid."
    else:
        accepted = _json(_ref("Accepted"), "Accepted: durable, or dropped by sampling.")
        invalid = (
            " event_invalid, event_name_required, event_name_too_long, event_source_required,"
            " properties_invalid, properties_too_large, properties_too_deep, timestamp_invalid,"
            " timestamp_in_future, …"
        )
    accepted["headers"] = {
        "Set-Cookie": _described(
            {"schema": STR}, "sa_uid, a browser's user id (sent an Origin, had no cookie)."
        ),
        "Access-Control-Allow-Origin": _described({"schema": STR}, "The request's Origin."),
    }
    errors = {
        400: "Malformed or invalid, naming the field: invalid_json, invalid_encoding," + invalid,
        401: "missing_api_key or invalid_api_key (unknown, revoked, not a sa_ key).",
        403: "private_key_not_allowed, or origin_not_allowed (Origin not in the project's"
        " CORS allowlist).",
        408: "body_timeout: the body did not arrive within HTTP_BODY_TIMEOUT_SECONDS;"
        " nothing was accepted.",
        413: "payload_too_large" + (" or batch_too_large." if batch else "."),
        415: "unsupported_media_type or unsupported_content_encoding.",
        429: "rate_limited or quota_exceeded; nothing was accepted.",
        503: "buffer_unavailable (nothing was accepted, retry), or too_many_connections"
        " (HTTP_MAX_CONNECTIONS reached).",
    }
    return {
        "operationId": "ingestBatch" if batch else "ingestEvent",
        "tags": ["ingest"],
        "summary": f"Ingest up to {limits.max_batch_events} events" if batch else "Ingest one",
        "description": f"The body is at most {limit} bytes after decompression"
        " (Content-Encoding: gzip or deflate; a decompression bomb is 413). text/plain is for"
        " navigator.sendBeacon: the same JSON, with the public key as api_key when there is"
        " no Authorization header."
        + (" Only a malformed envelope or a bad key fails the whole batch." if batch else ""),
        # The key may come in the body instead of the header: no header is required.
        "security": [{"publicKey": []}, {}],
        "parameters": [{"$ref": "#/components/parameters/Origin"}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": body},
                "text/plain": {
                    "schema": {**STR, "contentMediaType": "application/json", "contentSchema": body}
                },
            },
        },
        "responses": {"202": accepted, **_errors(errors)},
    }


def _segment(kind: str) -> Schema:
    """A Segment HTTP Tracking API call (``web.segment``)."""
    body = _ref("SegmentBatch" if kind in ("batch", "import") else "SegmentMessage")
    errors = {
        400: "invalid_json, batch_invalid or sent_at_invalid: the whole request is refused;"
        " or messages_rejected (a message's own code on a single call): the messages listed"
        " in errors were rejected, the others accepted.",
        401: "missing_api_key or invalid_api_key.",
        403: "private_key_not_allowed, or origin_not_allowed.",
        413: "payload_too_large: 32 KB per message, 500 KB per batch.",
        415: "unsupported_media_type or unsupported_content_encoding.",
        429: "rate_limited or quota_exceeded; nothing was accepted.",
        503: "buffer_unavailable (nothing was accepted, retry), or too_many_connections"
        " (HTTP_MAX_CONNECTIONS reached).",
    }
    return {
        "operationId": f"segment{kind.capitalize()}",
        "tags": ["segment"],
        "summary": f"Segment-compatible {kind}",
        "description": "For Segment SDKs: the write key is the project's public key, as the"
        " Basic-auth user name, a Bearer token or writeKey in the body. When a message fails"
        " validation the others are still accepted and the answer is a 400 whose message"
        " names each rejected index and why (the SDKs report a 400 and do not retry it).",
        "security": [{"segmentWriteKey": []}, {"publicKey": []}, {}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": _json(_ref("SegmentResult"), "Accepted: every kept message is durable."),
            **_errors(errors, "SegmentError"),
        },
    }


def _preflight(operation_id: str) -> Schema:
    headers = ("Access-Control-Allow-Methods", "Access-Control-Allow-Headers")
    return {
        "operationId": operation_id,
        "tags": ["ingest"],
        "summary": "CORS preflight",
        "description": "Takes no key; the project's allowlist is enforced on the POST.",
        "security": [],
        "parameters": [{"$ref": "#/components/parameters/Origin"}],
        "responses": {
            "204": {
                "description": "Allowed methods and headers; the Origin is echoed back.",
                "headers": {
                    name: {"schema": STR, "required": True}
                    for name in (*headers, "Access-Control-Max-Age")
                },
            }
        },
    }


def _dashboard(
    operation_id: str, summary: str, schema: str, parameters: list[str], description: str = ""
) -> Schema:
    responses = {"200": _json(_ref(schema), "The key's project only.")}
    if parameters:
        responses |= _errors(
            {
                400: "A parameter is invalid, naming it: <parameter>_invalid, date_range_invalid"
                " (start after end), date_range_too_large."
            }
        )
    operation: Schema = {
        "operationId": operation_id,
        "tags": ["dashboard"],
        "summary": summary,
        "security": [{"privateKey": []}],
        "responses": responses | _errors(PRIVATE_ERRORS),
    }
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in parameters]
    return operation


def _unauthenticated(operation_id: str, tag: str, summary: str, responses: Schema) -> Schema:
    return {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "security": [],
        "responses": responses,
    }


def _span(span: timedelta) -> str:
    if span < timedelta(days=2):
        return f"{span.total_seconds() / 3600:g} hours"
    return f"{span.days} days"


def _paths(limits: Limits) -> dict[str, Schema]:
    filters = ["StartDate", "EndDate", "EventName", "EventSourceId"]
    paths: dict[str, Schema] = {
        "/api/events/ingest/": {
            "post": _ingest(False, limits),
            "options": _preflight("preflightIngest"),
        },
        "/api/events/batch/": {
            "post": _ingest(True, limits),
            "options": _preflight("preflightBatch"),
        },
        "/api/events/query/": {
            "get": _dashboard(
                "queryEvents",
                "Raw events, newest first",
                "Page",
                [*filters, "UserId", "Page", "PageSize", "Cursor"],
                "Default range: the last 24 hours. Follow next/previous (cursor links) to walk"
                f" a fixed set of events; page numbers reach the first {MAX_OFFSET} only.",
            )
        },
    }
    for granularity in ("daily", "hourly", "5min"):
        table = f"agg_{granularity}"
        paths[f"/api/events/aggregations/{granularity}/"] = {
            "get": _dashboard(
                f"aggregations{granularity.capitalize()}",
                f"{granularity} aggregates per source and event name",
                "AggregateList",
                filters,
                "Ranges are half-open [start_date, end_date); the buckets overlapping it are"
                f" returned. Default range: the last {_span(DEFAULT_RANGES[table])};"
                f" at most {_span(MAX_RANGES[table])}.",
            )
        }
    paths["/api/events/summaries/daily/"] = {
        "get": _dashboard(
            "summariesDaily",
            "One summary per UTC day",
            "SummaryList",
            ["StartDate", "EndDate"],
            f"Default range: the last {_span(SUMMARY_RANGE)}.",
        )
    }
    paths["/api/events/names/"] = {
        "get": _dashboard("eventNames", "Every event name, with totals", "EventNameList", [])
    }
    paths["/api/events/sources/"] = {
        "get": _dashboard("eventSources", "The project's event sources", "EventSourceList", [])
    }
    paths["/api/events/metrics/realtime/"] = {
        "get": _dashboard(
            "metricsRealtime",
            "Current figures for widgets",
            "RealtimeMetrics",
            [],
            "Gathered from every worker's live table; an unreachable worker is listed with"
            " ok: false and the figures come from the others.",
        )
    }
    paths |= _stats_paths()
    paths["/api/export/events/"] = {"get": _export_events()}
    paths["/api/export/stats/"] = {"get": _export_stats()}
    for kind in ("batch", "import", "track", "page", "screen", "identify", "group", "alias"):
        paths[f"/v1/{kind}"] = {"post": _segment(kind)}
    paths["/healthz"] = {
        "get": _unauthenticated(
            "healthz", "health", "The process serves", {"200": _json(_ref("Health"), "Alive.")}
        )
    }
    paths["/readyz"] = {
        "get": _unauthenticated(
            "readyz",
            "health",
            "Redis, PostgreSQL and Kafka answer",
            {
                "200": _json(_ref("Readiness"), "Ready."),
                "503": _json(_ref("Readiness"), "Not ready; checks names what failed."),
            },
        )
    }
    paths["/metrics"] = {
        "get": _unauthenticated(
            "metrics",
            "health",
            "Prometheus metrics of this edge process",
            {
                "200": {
                    "description": "Prometheus text exposition format 0.0.4.",
                    "content": {"text/plain": {"schema": STR}},
                }
            },
        )
    }
    paths["/sa.js"] = {
        "get": _unauthenticated(
            "trackerScript",
            "tracker",
            "The tracker script a site's pages load (one script tag; see the README)",
            {
                "200": {
                    "description": "The script, gzip-encoded when the client accepts gzip;"
                    " Cache-Control and ETag set.",
                    "content": {"application/javascript": {"schema": STR}},
                },
                "304": {"description": "If-None-Match named the current ETag."},
            },
        )
    }
    paths[PATH] = {
        "get": _unauthenticated(
            "openapi", "meta", "This document", {"200": _json(OBJ, "OpenAPI 3.1.")}
        )
    }
    return paths


def _export_events() -> Schema:
    """``web.export.export_events``: a streamed file, not JSON."""
    text = {"schema": STR}
    return {
        "operationId": "exportEvents",
        "tags": ["export"],
        "summary": "Every stored field of the range's raw events, streamed",
        "description": "NDJSON (one event a line) or CSV (a header line, RFC 4180), oldest"
        " first; the columns and their order are listed in the README. gzip when"
        " Accept-Encoding allows it. Default range: everything.",
        "security": [{"privateKey": []}],
        "parameters": [
            {"$ref": "#/components/parameters/ExportStartDate"},
            {"$ref": "#/components/parameters/ExportEndDate"},
            {"$ref": "#/components/parameters/ExportFormat"},
        ],
        "responses": {
            "200": {
                "description": "The key's project only.",
                "content": {"application/x-ndjson": text, "text/csv": text},
            },
            **_errors(
                {
                    400: "A parameter is invalid, naming it: start_date_invalid,"
                    " end_date_invalid, format_invalid, date_range_invalid (start after end)."
                }
            ),
            **_errors(PRIVATE_ERRORS),
        },
    }


def _export_stats() -> Schema:
    """``web.export.export_stats``: a ZIP of CSV files."""
    return {
        "operationId": "exportStats",
        "tags": ["export"],
        "summary": "A period's figures as a ZIP of CSV files",
        "description": "visitors_per_day.csv, custom_events.csv, event_sources.csv (columns in"
        " the README), from the daily aggregates, UTC days.",
        "security": [{"privateKey": []}],
        "parameters": [
            {"$ref": "#/components/parameters/Period"},
            {"$ref": "#/components/parameters/PeriodDate"},
        ],
        "responses": {
            "200": {
                "description": "The key's project only.",
                "content": {
                    "application/zip": {"schema": {"type": "string", "contentEncoding": "binary"}}
                },
            },
            **_errors(
                {
                    400: "A parameter is invalid, naming it: period_invalid, date_invalid,"
                    " date_range_invalid, date_range_too_large."
                }
            ),
            **_errors(PRIVATE_ERRORS),
        },
    }


STATS_ERRORS = {
    400: "A parameter is invalid, naming it in field: period_invalid, date_invalid,"
    " date_missing, filters_invalid, metrics_invalid, property_invalid, property_missing,"
    " interval_invalid, compare_invalid, limit_invalid, page_invalid, parameter_unknown.",
}
STATS_PARAMS = {
    "aggregate": ["StatsPeriod", "StatsDate", "StatsFilters", "StatsCompare", "StatsMetrics"],
    "timeseries": [
        "StatsPeriod",
        "StatsDate",
        "StatsFilters",
        "StatsCompare",
        "StatsMetrics",
        "StatsInterval",
    ],
    "breakdown": [
        "StatsPeriod",
        "StatsDate",
        "StatsFilters",
        "StatsMetrics",
        "StatsProperty",
        "StatsLimit",
        "StatsPage",
    ],
}


def _stats_paths() -> dict[str, Schema]:
    """``web.stats``: the four stats endpoints (SPEC §10)."""
    summaries = {
        "aggregate": ("statsAggregate", "Totals of a period, with their change", "StatsAggregate"),
        "timeseries": ("statsTimeseries", "One row per interval of a period", "StatsTimeseries"),
        "breakdown": ("statsBreakdown", "The top values of one property", "StatsBreakdown"),
    }
    paths: dict[str, Schema] = {}
    for name, (operation_id, summary, schema) in summaries.items():
        paths[f"/api/stats/{name}/"] = {
            "get": {
                "operationId": operation_id,
                "tags": ["stats"],
                "summary": summary,
                "description": "Answered in the project's timezone setting; bots are left out.",
                "security": [{"privateKey": []}],
                "parameters": [
                    {"$ref": f"#/components/parameters/{p}"} for p in STATS_PARAMS[name]
                ],
                "responses": {"200": _json(_ref(schema), "The key's project only.")}
                | _errors(STATS_ERRORS)
                | _errors(PRIVATE_ERRORS),
            }
        }
    paths["/api/stats/realtime/visitors/"] = {
        "get": {
            "operationId": "statsRealtimeVisitors",
            "tags": ["stats"],
            "summary": "Distinct visitors of the last 5 minutes",
            "description": "From every worker's live table; bots are left out.",
            "security": [{"privateKey": []}],
            "responses": {"200": _json(_ref("StatsRealtime"), "The key's project only.")}
            | _errors(PRIVATE_ERRORS),
        }
    }
    return paths


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


MOMENT: Schema = {"anyOf": [DATE_TIME, {"type": "string", "format": "date"}]}

PARAMETERS: dict[str, Schema] = {
    "StartDate": _query("start_date", MOMENT, "Inclusive; no zone means UTC, a date midnight."),
    "EndDate": _query("end_date", MOMENT, "Exclusive; default now."),
    "EventName": _query("event_name", {**STR, "pattern": NO_NUL}, "Only this event name."),
    "EventSourceId": _query("event_source_id", INT, "Only this source (one of the project's)."),
    "UserId": _query("user_id", {**STR, "pattern": NO_NUL}, "Only this user."),
    "Page": _query("page", {**INT, "minimum": 1}, "Page number (offset paging)."),
    "PageSize": _query(
        "page_size",
        {**INT, "minimum": 1, "maximum": MAX_PAGE_SIZE},
        f"Default {DEFAULT_PAGE_SIZE}.",
    ),
    "Cursor": _query("cursor", STR, "Opaque, from a next/previous link; not with page."),
    "ExportStartDate": _query(
        "start_date", MOMENT, "Inclusive; no zone means UTC, a date midnight; default: all."
    ),
    "ExportEndDate": _query("end_date", MOMENT, "Exclusive; default: no end."),
    "ExportFormat": _query("format", {"enum": ["ndjson", "csv"]}, "Default ndjson."),
    "Period": _query(
        "period",
        {"enum": ["day", "7d", "30d", "month", "6mo", "12mo", "custom"]},
        "Default 30d: the 30 days ending with date.",
    ),
    "PeriodDate": _query(
        "date",
        {**STR, "pattern": NO_NUL},
        "The period's last day YYYY-MM-DD (default today, UTC); custom: YYYY-MM-DD,YYYY-MM-DD.",
    ),
    "StatsPeriod": _query(
        "period",
        {"enum": ["day", "7d", "30d", "month", "6mo", "12mo", "custom"]},
        "Default 30d: the 30 days ending with date, in the project's time zone.",
    ),
    "StatsDate": _query(
        "date",
        {**STR, "pattern": NO_NUL},
        "YYYY-MM-DD: the day the period ends on (default today); custom: first,last.",
    ),
    "StatsFilters": _query(
        "filters",
        {**STR, "pattern": NO_NUL},
        "visit:country==DE;event:page==/pricing|/about; operators ==, != and ~ (contains).",
    ),
    "StatsCompare": _query("compare", {"enum": ["previous_period"]}, "Adds each change."),
    "StatsMetrics": _query(
        "metrics",
        {**STR, "pattern": NO_NUL},
        "Comma-separated: visitors, visits, pageviews, events, bounce_rate, visit_duration,"
        " views_per_visit.",
    ),
    "StatsInterval": _query(
        "interval",
        {"enum": ["5min", "hour", "day", "month"]},
        "Default hour for period=day, month for 6mo and 12mo, else day.",
    ),
    "StatsProperty": _query(
        "property",
        {**STR, "pattern": NO_NUL},
        "event:name, event:page, event:hostname, event:props:KEY, visit:entry_page,"
        " visit:exit_page, visit:source, visit:referrer, visit:utm_*, visit:country,"
        " visit:device, visit:browser, visit:os. Required.",
    ),
    "StatsLimit": _query("limit", {**INT, "minimum": 1, "maximum": 1000}, "Default 100."),
    "StatsPage": _query("page", {**INT, "minimum": 1, "maximum": 100000}, "Default 1."),
    "Origin": {
        "name": "Origin",
        "in": "header",
        "schema": STR,
        "description": "Sent by browsers; checked against the project's CORS allowlist.",
    },
}


def _bearer(key_format: str, description: str) -> Schema:
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": key_format,
        "description": description,
    }


SECURITY_SCHEMES = {
    "publicKey": _bearer("sa_<token>", "The project's public key: ingest only."),
    "privateKey": _bearer("sa_priv_<token>", "The project's private key: dashboard only."),
    "segmentWriteKey": {
        "type": "http",
        "scheme": "basic",
        "description": "Segment SDKs: the public key as the user name, empty password.",
    },
}


def _version() -> str:
    try:
        return metadata.version("simple-analytics-stack")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build_document(limits: Limits | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document, as plain JSON-ready data (a new dict every call)."""
    limits = limits or Limits.defaults()
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Simple Analytics Stack",
            "version": _version(),
            "description": "Event ingestion (public keys) and the dashboard read API (private"
            ' keys). Every error is JSON {"code", "detail", "field"?}.',
        },
        "servers": [{"url": "/", "description": "The edge serving this document."}],
        "tags": [
            {"name": "ingest", "description": "SPEC §4"},
            {"name": "dashboard", "description": "SPEC §7"},
            {"name": "export", "description": "SPEC §11"},
            {"name": "tracker", "description": "The browser script (SPEC §10)."},
            {"name": "health"},
            {"name": "meta"},
        ],
        "paths": _paths(limits),
        "components": {
            "securitySchemes": SECURITY_SCHEMES,
            "parameters": PARAMETERS,
            "schemas": _event_schemas(limits) | _answer_schemas(),
        },
    }
    # The constant parts are shared between calls: a caller may change its copy freely.
    return copy.deepcopy(document)


@lru_cache(maxsize=8)
def _encoded(limits: Limits) -> bytes:
    return orjson.dumps(build_document(limits))


async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/openapi.json — this edge's OpenAPI document."""
    body = _encoded(Limits.of(request.app[SETTINGS]))
    return web.Response(body=body, content_type="application/json")


def add_routes(app: web.Application) -> None:
    """Register ``GET /api/openapi.json``."""
    app.router.add_get(PATH, openapi_json)
