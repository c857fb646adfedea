"""The OpenAPI 3.1 document of the edge's public HTTP API, served at ``GET /api/openapi.json``.

Written by hand from what the handlers answer (``web.ingest``,
``web.dashboard``, ``web.realtime``, ``web.health`` and the error middleware):
every status a documented operation can answer is listed, and only those; a
500 is a bug, never part of the contract, so it is not documented.
``tests/web/test_openapi.py`` fuzzes a running edge against this document and
checks that every ``/api/`` route is in it, so the two cannot drift apart
silently: when a handler changes what it answers, change this module too.

Size limits are those of the serving edge's settings; page sizes and date
ranges are read from ``web.dashboard``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from importlib import metadata
from typing import Any

import orjson
from aiohttp import web

from analytics.settings import Settings
from web.dashboard import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_RANGES,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    MAX_RANGES,
    SUMMARY_RANGE,
)
from web.keys import SETTINGS

PATH = "/api/openapi.json"

Schema = dict[str, Any]


@dataclass(slots=True, frozen=True)
class Limits:
    """The request limits the document states (bytes are counted after decompression)."""

    max_batch_events: int = 1000
    max_batch_bytes: int = 5 * 1024 * 1024
    max_event_bytes: int = 1024 * 1024
    max_properties_bytes: int = 64 * 1024

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits an edge with these settings enforces."""
        return cls(
            max_batch_events=settings.max_batch_events,
            max_batch_bytes=settings.max_batch_bytes,
            max_event_bytes=settings.max_event_bytes,
            max_properties_bytes=settings.max_properties_bytes,
        )


# --- schema building blocks ----------------------------------------------------------------

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}
COUNT: Schema = {"type": "integer", "minimum": 0}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}
# PostgreSQL text cannot hold U+0000: a client must never send it in a stored or
# filtered string (the edge does not refuse it yet; see tests/web/test_openapi.py).
NO_NUL = "^[^\\u0000]*$"
# What the edge reads as a time: ISO 8601 text (naive means UTC) or epoch seconds.
CLIENT_TIME: Schema = {
    "anyOf": [DATE_TIME, NUM, {"type": "null"}],
    "description": "ISO 8601 (a time without zone is UTC) or epoch seconds.",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _null(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _list(item: Schema) -> Schema:
    return {"type": "array", "items": item}


def _object(**properties: Schema) -> Schema:
    """A closed object with every property present: the handlers build these field by field."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


def _event_schemas(limits: Limits) -> dict[str, Schema]:
    """What clients send to the ingest endpoints."""
    name: Schema = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL}
    text: Schema = _null({"type": "string", "maxLength": 255, "pattern": NO_NUL})
    api_key = _described(
        STR,
        "The public key, read only when there is no Authorization header"
        " (navigator.sendBeacon cannot set headers).",
    )
    sent_at = _described(CLIENT_TIME, "The client's clock when sending.")
    event = {
        "type": "object",
        "description": "One event (SPEC §3). Only event_name and event_source are required;"
        " an empty or null optional field counts as absent. Unknown fields are ignored."
        " Text must not contain U+0000.",
        "properties": {
            "event_name": name,
            "event_source": _described(name, "Created for the project on first use."),
            "event_id": _null(
                {
                    "type": "string",
                    "maxLength": 128,
                    "pattern": NO_NUL,
                    "description": "Stored once per (project, event_id); default a UUID.",
                }
            ),
            "user_id": text,
            "session_id": text,
            "properties": _null(
                _described(OBJ, f"At most {limits.max_properties_bytes} bytes serialized.")
            ),
            "timestamp": _described(
                CLIENT_TIME,
                "When it happened; default server time. More than 24 h ahead of the server"
                " is 400 timestamp_in_future.",
            ),
            "sent_at": sent_at,
            "api_key": api_key,
        },
        "required": ["event_name", "event_source"],
    }
    envelope = {
        "type": "object",
        "properties": {
            "events": {
                **_list(_ref("Event")),
                "maxItems": limits.max_batch_events,
                "description": "Each item is validated on its own: an invalid one is listed"
                " in the 202's results, the others are accepted.",
            },
            "sent_at": sent_at,
            "api_key": api_key,
        },
        "required": ["events"],
    }
    return {"Event": event, "BatchEnvelope": envelope}


def _answer_schemas() -> dict[str, Schema]:
    """What the edge answers (closed objects: the test catches any field added unnoticed)."""
    error = _object(
        code=_described(STR, "Stable, e.g. event_name_too_long."),
        detail=_described(STR, "For humans."),
        field=_described(STR, "The field at fault, if one is."),
    )
    error["required"] = ["code", "detail"]
    return {
        "Error": _described(error, 'Every error answer: {"code", "detail", "field"?}.'),
        "Accepted": _object(status={"const": "accepted"}, sampled=BOOL),
        "BatchItemResult": _object(
            index=COUNT,
            status={"enum": ["rejected", "sampled"]},
            code=STR,
            detail=STR,
            field=_null(STR),
        ),
        "BatchResult": _object(
            status={"const": "accepted"},
            accepted=COUNT,
            sampled=COUNT,
            rejected=COUNT,
            results=_described(
                _list(_ref("BatchItemResult")), "The sampled and rejected events, by index."
            ),
        ),
        "StoredEvent": _object(
            event_id=STR,
            project_id=STR,
            event_source_id=INT,
            event_source=STR,
            user_id=_null(STR),
            session_id=_null(STR),
            event_name=STR,
            properties=OBJ,
            timestamp=DATE_TIME,
            sample_rate=NUM,
            received_at=DATE_TIME,
            ip_address=_null(STR),
            user_agent=_null(STR),
        ),
        "Page": _object(
            count=_described(COUNT, "Events in the whole filtered range."),
            count_is_estimate=BOOL,
            next=_null({"type": "string", "format": "uri"}),
            previous=_null({"type": "string", "format": "uri"}),
            start_date=DATE_TIME,
            end_date=DATE_TIME,
            page_size={"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            results=_list(_ref("StoredEvent")),
        ),
        "AggregateRow": _object(
            bucket_start=DATE_TIME,
            event_source=STR,
            event_source_id=_null(INT),
            event_name=STR,
            event_count=COUNT,
            estimated_count=_described(NUM, "Scaled back by each event's sample rate."),
            unique_users=COUNT,
            unique_sessions=COUNT,
        ),
        "AggregateList": _object(
            granularity={"enum": ["daily", "hourly", "5min"]},
            start_date=DATE_TIME,
            end_date=DATE_TIME,
            results=_list(_ref("AggregateRow")),
        ),
        "NameCount": _object(event_name=STR, count=COUNT),
        "SummaryRow": _object(
            day={"type": "string", "format": "date"},
            total_events=COUNT,
            estimated_events=NUM,
            unique_users=COUNT,
            unique_sessions=COUNT,
            top_events=_list(_ref("NameCount")),
            sources={**OBJ, "additionalProperties": COUNT, "description": "Events per source."},
        ),
        "SummaryList": _object(
            start_date=DATE_TIME, end_date=DATE_TIME, results=_list(_ref("SummaryRow"))
        ),
        "EventNameRow": _object(
            event_name=STR,
            total_count=COUNT,
            estimated_count=NUM,
            last_seen=_described(
                DATE_TIME,
                "Start of the latest 5-minute bucket holding the name (of its day once the"
                " 5-minute rows are gone).",
            ),
        ),
        "EventNameList": _object(results=_list(_ref("EventNameRow"))),
        "EventSource": _object(
            id=INT, name=STR, created_at=DATE_TIME, settings=_described(OBJ, "Its overrides.")
        ),
        "EventSourceList": _object(results=_list(_ref("EventSource"))),
        "RealtimeMetrics": _object(
            events_last_5_minutes=COUNT,
            events_last_hour=COUNT,
            estimated_last_hour=NUM,
            events_per_minute=_described(
                _list(_object(minute=_described(INT, "Epoch seconds."), events=COUNT)),
                "The last 30 minutes, oldest first.",
            ),
            top_events_5_minutes=_list(_ref("NameCount")),
            active_users_5_minutes=COUNT,
            freshness_seconds=_null(
                _described(NUM, "Age of the newest processed event; null when none.")
            ),
            workers=_list(_object(url=STR, ok=BOOL)),
        ),
        "Health": _object(status={"const": "ok"}),
        "Readiness": _object(
            status={"enum": ["ok", "fail"]},
            checks=_object(
                redis=_described(STR, '"ok" or "fail: <why>".'),
                postgres=_described(STR, '"ok" or "fail: <why>".'),
                kafka=_described(STR, '"ok" or "fail: <why>".'),
            ),
        ),
    }


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


def _errors(descriptions: dict[int, str]) -> dict[str, Schema]:
    """Error responses by status, each an ``Error`` body (429 and 503 with Retry-After)."""
    return {
        str(status): _json(_ref("Error"), text, RETRY_AFTER if status in (429, 503) else None)
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
            " properties_invalid, properties_too_large, timestamp_invalid,"
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
        413: "payload_too_large" + (" or batch_too_large." if batch else "."),
        415: "unsupported_media_type or unsupported_content_encoding.",
        429: "rate_limited or quota_exceeded; nothing was accepted.",
        503: "buffer_unavailable: nothing was accepted, retry.",
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
    paths[PATH] = {
        "get": _unauthenticated(
            "openapi", "meta", "This document", {"200": _json(OBJ, "OpenAPI 3.1.")}
        )
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
}


def _version() -> str:
    try:
        return metadata.version("simple-analytics-stack")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build_document(limits: Limits | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document, as plain JSON-ready data (a new dict every call)."""
    limits = limits or Limits()
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
