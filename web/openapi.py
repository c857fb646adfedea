"""The OpenAPI 3.1 document of the edge's public HTTP API, served at ``GET /api/openapi.json``.

Written by hand from what the handlers answer (``web.ingest``,
``web.dashboard``, ``web.realtime``, ``web.health`` and the error middleware):
every status a documented operation can answer is listed, and only those; a
500 is a bug, never part of the contract, so it is not documented.
``tests/web/test_openapi.py`` fuzzes a running edge against this document and
checks that every ``/api/`` route is in it, so the two cannot drift apart
silently: when a handler changes what it answers, change this module too.

Size limits in the document are those of the serving edge's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Any

import orjson
from aiohttp import web

from analytics.settings import Settings
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


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], *, required: list[str] | None = None) -> Schema:
    """A closed object: the handlers build these bodies field by field."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _list_of(item: str, **extra: Schema) -> Schema:
    return _object({**extra, "results": {"type": "array", "items": _ref(item)}})


COUNT: Schema = {"type": "integer", "minimum": 0}
# PostgreSQL text cannot hold U+0000: a client must never send it in a stored or
# filtered string (the edge does not refuse it yet; see tests/web/test_openapi.py).
NO_NUL = "^[^\\u0000]*$"
DATE_TIME: Schema = {"type": "string", "format": "date-time"}
# What the edge reads as a time: ISO 8601 text (naive means UTC) or epoch seconds.
CLIENT_TIME: Schema = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}],
    "description": "ISO 8601 (a time without zone is UTC) or epoch seconds.",
}


def _schemas(limits: Limits) -> dict[str, Schema]:
    name = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL}
    optional_text = _nullable({"type": "string", "maxLength": 255, "pattern": NO_NUL})
    event: Schema = {
        "type": "object",
        "description": "One event (SPEC §3). Only event_name and event_source are required;"
        " an empty or null optional field counts as absent. Unknown fields are ignored.",
        "properties": {
            "event_name": name,
            "event_source": {**name, "description": "Created for the project on first use."},
            "event_id": _nullable(
                {
                    "type": "string",
                    "maxLength": 128,
                    "pattern": NO_NUL,
                    "description": "Client id; the same (project, event_id) is stored once."
                    " Default: a UUID.",
                }
            ),
            "user_id": optional_text,
            "session_id": optional_text,
            "properties": _nullable(
                {
                    "type": "object",
                    "description": f"At most {limits.max_properties_bytes} bytes serialized.",
                }
            ),
            "timestamp": {
                **CLIENT_TIME,
                "description": "When it happened; default server time. More than 24 h ahead of"
                " the server is 400 timestamp_in_future.",
            },
            "sent_at": {**CLIENT_TIME, "description": "The client's clock when sending."},
            "api_key": {
                "type": "string",
                "description": "The public key, read only when there is no Authorization header"
                " (navigator.sendBeacon cannot set headers).",
            },
        },
        "required": ["event_name", "event_source"],
    }
    return {
        "Error": {
            **_object(
                {
                    "code": {"type": "string", "description": "Stable, e.g. event_name_too_long."},
                    "detail": {"type": "string", "description": "For humans."},
                    "field": {"type": "string", "description": "The field at fault, if one is."},
                },
                required=["code", "detail"],
            ),
            "description": "Every error answer (SPEC §4).",
        },
        "Event": event,
        "BatchEnvelope": {
            "type": "object",
            "properties": {
                "events": {
                    "type": "array",
                    "maxItems": limits.max_batch_events,
                    "items": _ref("Event"),
                    "description": "Each item is validated on its own: an invalid one is listed"
                    " in the 202's results, the others are accepted.",
                },
                "sent_at": {**CLIENT_TIME, "description": "The client's clock when sending."},
                "api_key": event["properties"]["api_key"],
            },
            "required": ["events"],
        },
        "Accepted": _object(
            {"status": {"const": "accepted"}, "sampled": {"type": "boolean"}},
        ),
        "BatchItemResult": _object(
            {
                "index": COUNT,
                "status": {"enum": ["rejected", "sampled"]},
                "code": {"type": "string"},
                "detail": {"type": "string"},
                "field": _nullable({"type": "string"}),
            }
        ),
        "BatchResult": _object(
            {
                "status": {"const": "accepted"},
                "accepted": COUNT,
                "sampled": COUNT,
                "rejected": COUNT,
                "results": {
                    "type": "array",
                    "items": _ref("BatchItemResult"),
                    "description": "The sampled and rejected events, by index.",
                },
            }
        ),
        "StoredEvent": _object(
            {
                "event_id": {"type": "string"},
                "project_id": {"type": "string"},
                "event_source_id": {"type": "integer"},
                "event_source": {"type": "string"},
                "user_id": _nullable({"type": "string"}),
                "session_id": _nullable({"type": "string"}),
                "event_name": {"type": "string"},
                "properties": {"type": "object"},
                "timestamp": DATE_TIME,
                "sample_rate": {"type": "number"},
                "received_at": DATE_TIME,
                "ip_address": _nullable({"type": "string"}),
                "user_agent": _nullable({"type": "string"}),
            }
        ),
        "Page": _object(
            {
                "count": {**COUNT, "description": "Events in the whole filtered range."},
                "count_is_estimate": {"type": "boolean"},
                "next": _nullable({"type": "string", "format": "uri"}),
                "previous": _nullable({"type": "string", "format": "uri"}),
                "start_date": DATE_TIME,
                "end_date": DATE_TIME,
                "page_size": {"type": "integer", "minimum": 1, "maximum": 1000},
                "results": {"type": "array", "items": _ref("StoredEvent")},
            }
        ),
        "AggregateRow": _object(
            {
                "bucket_start": DATE_TIME,
                "event_source": {"type": "string"},
                "event_source_id": _nullable({"type": "integer"}),
                "event_name": {"type": "string"},
                "event_count": COUNT,
                "estimated_count": {"type": "number", "description": "Scaled by sample rate."},
                "unique_users": COUNT,
                "unique_sessions": COUNT,
            }
        ),
        "AggregateList": _list_of(
            "AggregateRow",
            granularity={"enum": ["daily", "hourly", "5min"]},
            start_date=DATE_TIME,
            end_date=DATE_TIME,
        ),
        "NameCount": _object({"event_name": {"type": "string"}, "count": COUNT}),
        "SummaryRow": _object(
            {
                "day": {"type": "string", "format": "date"},
                "total_events": COUNT,
                "estimated_events": {"type": "number"},
                "unique_users": COUNT,
                "unique_sessions": COUNT,
                "top_events": {"type": "array", "items": _ref("NameCount")},
                "sources": {
                    "type": "object",
                    "additionalProperties": COUNT,
                    "description": "Events per source name.",
                },
            }
        ),
        "SummaryList": _list_of("SummaryRow", start_date=DATE_TIME, end_date=DATE_TIME),
        "EventNameRow": _object(
            {
                "event_name": {"type": "string"},
                "total_count": COUNT,
                "estimated_count": {"type": "number"},
                "last_seen": {
                    **DATE_TIME,
                    "description": "Start of the latest 5-minute bucket holding the name"
                    " (of its day once 5-minute rows are gone).",
                },
            }
        ),
        "EventNameList": _list_of("EventNameRow"),
        "EventSource": _object(
            {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "created_at": DATE_TIME,
                "settings": {"type": "object", "description": "The source's overrides."},
            }
        ),
        "EventSourceList": _list_of("EventSource"),
        "RealtimeMetrics": {
            "type": "object",
            "description": "Figures from the workers' live tables, seconds old.",
            "properties": {
                "events_last_5_minutes": COUNT,
                "events_last_hour": COUNT,
                "estimated_last_hour": {"type": "number"},
                "events_per_minute": {
                    "type": "array",
                    "description": "The last 30 minutes, oldest first.",
                    "items": _object(
                        {
                            "minute": {"type": "integer", "description": "Epoch seconds."},
                            "events": COUNT,
                        }
                    ),
                },
                "top_events_5_minutes": {"type": "array", "items": _ref("NameCount")},
                "active_users_5_minutes": COUNT,
                "freshness_seconds": _nullable(
                    {
                        "type": "number",
                        "description": "Age of the newest processed event; null when none.",
                    }
                ),
                "workers": {
                    "type": "array",
                    "items": _object({"url": {"type": "string"}, "ok": {"type": "boolean"}}),
                },
            },
            "required": [
                "events_last_5_minutes",
                "events_last_hour",
                "estimated_last_hour",
                "events_per_minute",
                "top_events_5_minutes",
                "active_users_5_minutes",
                "freshness_seconds",
                "workers",
            ],
        },
        "Health": _object({"status": {"const": "ok"}}),
        "Readiness": _object(
            {
                "status": {"enum": ["ok", "fail"]},
                "checks": _object(
                    {
                        "redis": {"type": "string", "description": '"ok" or "fail: <why>".'},
                        "postgres": {"type": "string", "description": '"ok" or "fail: <why>".'},
                    }
                ),
            }
        ),
    }


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _errors(**descriptions: str) -> dict[str, Schema]:
    """Error responses by status (keys like ``s400``), each an ``Error`` body."""
    out: dict[str, Schema] = {}
    for key, description in descriptions.items():
        status = key.removeprefix("s")
        headers = RETRY_AFTER if status in ("429", "503") else None
        out[status] = _json(_ref("Error"), description, headers)
    return out


PRIVATE_ERRORS = {
    "s401": "missing_api_key (no 'Authorization: Bearer …') or invalid_api_key"
    " (unknown, revoked, or not a sa_ key).",
    "s403": "public_key_not_allowed: the dashboard takes the private key sa_priv_….",
}


def _ingest_operation(batch: bool, limits: Limits) -> Schema:
    body = _ref("BatchEnvelope") if batch else _ref("Event")
    limit = limits.max_batch_bytes if batch else limits.max_event_bytes
    accepted = (
        _json(_ref("BatchResult"), "Accepted: every kept event is durable in the buffer.")
        if batch
        else _json(
            _ref("Accepted"),
            "Accepted: durable in the buffer, or dropped by sampling (sampled: true).",
        )
    )
    accepted["headers"] = {
        "Set-Cookie": {
            "description": "sa_uid, a browser's persistent user id (only when it sent an Origin"
            " and had none).",
            "schema": {"type": "string"},
        },
        "Access-Control-Allow-Origin": {
            "description": "The request's Origin, when it sent one.",
            "schema": {"type": "string"},
        },
    }
    what = f"up to {limits.max_batch_events} events" if batch else "one event"
    return {
        "operationId": "ingestBatch" if batch else "ingestEvent",
        "tags": ["ingest"],
        "summary": f"Ingest {what}",
        "description": f"The body is at most {limit} bytes after decompression"
        " (Content-Encoding: gzip or deflate is accepted; a decompression bomb is 413)."
        " text/plain is for navigator.sendBeacon: the same JSON, with the public key as"
        " api_key when there is no Authorization header."
        + (" Only a malformed envelope or a bad key fails the whole batch." if batch else ""),
        "security": [{"publicKey": []}, {}],
        "parameters": [{"$ref": "#/components/parameters/Origin"}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": body},
                "text/plain": {
                    "schema": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": body,
                    }
                },
            },
        },
        "responses": {
            "202": accepted,
            **_errors(
                s400="Malformed or invalid, naming the field: invalid_json, invalid_encoding,"
                + (
                    " invalid_batch, events_invalid, sent_at_invalid."
                    if batch
                    else " event_invalid, event_name_required, event_name_too_long,"
                    " event_source_required, properties_invalid, properties_too_large,"
                    " timestamp_invalid, timestamp_in_future, …"
                ),
                s401="missing_api_key or invalid_api_key (unknown, revoked, not a sa_ key).",
                s403="private_key_not_allowed, or origin_not_allowed (Origin not in the"
                " project's CORS allowlist).",
                s413="payload_too_large" + (" or batch_too_large." if batch else "."),
                s415="unsupported_media_type or unsupported_content_encoding.",
                s429="rate_limited or quota_exceeded; nothing was accepted.",
                s503="buffer_unavailable: nothing was accepted, retry.",
            ),
        },
    }


def _preflight(path: str) -> Schema:
    return {
        "operationId": "preflightBatch" if "batch" in path else "preflightIngest",
        "tags": ["ingest"],
        "summary": "CORS preflight",
        "description": "Takes no key; the project's allowlist is enforced on the POST.",
        "security": [],
        "parameters": [{"$ref": "#/components/parameters/Origin"}],
        "responses": {
            "204": {
                "description": "Allowed methods and headers (the Origin is echoed back).",
                "headers": {
                    name: {"schema": {"type": "string"}, "required": True}
                    for name in (
                        "Access-Control-Allow-Methods",
                        "Access-Control-Allow-Headers",
                        "Access-Control-Max-Age",
                    )
                },
            }
        },
    }


def _dashboard(
    operation_id: str, summary: str, schema: str, parameters: list[str], description: str = ""
) -> Schema:
    responses: dict[str, Schema] = {"200": _json(_ref(schema), "The project's data.")}
    if parameters:
        responses |= _errors(
            s400="A parameter is invalid, naming it: <parameter>_invalid, date_range_invalid"
            " (start after end), date_range_too_large."
        )
    responses |= _errors(**PRIVATE_ERRORS)
    operation: Schema = {
        "operationId": operation_id,
        "tags": ["dashboard"],
        "summary": summary,
        "security": [{"privateKey": []}],
        "responses": responses,
    }
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in parameters]
    return operation


RANGE_NOTE = (
    "Ranges are half-open [start_date, end_date); buckets overlapping the range are returned."
)


def _paths(limits: Limits) -> dict[str, Schema]:
    filters = ["StartDate", "EndDate", "EventName", "EventSourceId"]
    aggregations = {
        granularity: {
            "get": _dashboard(
                f"aggregations{granularity.capitalize()}",
                f"{granularity} aggregates per source and event name",
                "AggregateList",
                filters,
                RANGE_NOTE + f" Default range {default}, at most {most}.",
            )
        }
        for granularity, default, most in (
            ("daily", "30 days", "3660 days"),
            ("hourly", "24 hours", "366 days"),
            ("5min", "24 hours", "31 days"),
        )
    }
    return {
        "/api/events/ingest/": {
            "post": _ingest_operation(False, limits),
            "options": _preflight("/api/events/ingest/"),
        },
        "/api/events/batch/": {
            "post": _ingest_operation(True, limits),
            "options": _preflight("/api/events/batch/"),
        },
        "/api/events/query/": {
            "get": _dashboard(
                "queryEvents",
                "Raw events, newest first",
                "Page",
                [*filters, "UserId", "Page", "PageSize", "Cursor"],
                "Default range: the last 24 hours. Follow next/previous (cursor links) to walk a"
                " fixed set of events; page numbers reach the first 10,000 events only.",
            )
        },
        **{f"/api/events/aggregations/{g}/": item for g, item in aggregations.items()},
        "/api/events/summaries/daily/": {
            "get": _dashboard(
                "summariesDaily",
                "One summary per UTC day",
                "SummaryList",
                ["StartDate", "EndDate"],
                "Default range: the last 30 days.",
            )
        },
        "/api/events/names/": {
            "get": _dashboard("eventNames", "Every event name, with totals", "EventNameList", [])
        },
        "/api/events/sources/": {
            "get": _dashboard("eventSources", "The project's event sources", "EventSourceList", [])
        },
        "/api/events/metrics/realtime/": {
            "get": _dashboard(
                "metricsRealtime",
                "Current figures for widgets",
                "RealtimeMetrics",
                [],
                "Gathered from every worker's live table; an unreachable worker is listed with"
                " ok: false and the figures are from the others.",
            )
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["health"],
                "summary": "The process serves",
                "security": [],
                "responses": {"200": _json(_ref("Health"), "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["health"],
                "summary": "Redis and PostgreSQL answer",
                "security": [],
                "responses": {
                    "200": _json(_ref("Readiness"), "Ready."),
                    "503": _json(_ref("Readiness"), "Not ready; checks names what failed."),
                },
            }
        },
        PATH: {
            "get": {
                "operationId": "openapi",
                "tags": ["meta"],
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


MOMENT: Schema = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]
}

PARAMETERS: dict[str, Schema] = {
    "StartDate": _query(
        "start_date", MOMENT, "ISO 8601, inclusive (no zone means UTC, a date its midnight)."
    ),
    "EndDate": _query("end_date", MOMENT, "ISO 8601, exclusive; default now."),
    "EventName": _query(
        "event_name", {"type": "string", "pattern": NO_NUL}, "Only this event name."
    ),
    "EventSourceId": _query(
        "event_source_id", {"type": "integer"}, "Only this source (an id of the project's)."
    ),
    "UserId": _query("user_id", {"type": "string", "pattern": NO_NUL}, "Only this user."),
    "Page": _query("page", {"type": "integer", "minimum": 1}, "Page number (offset paging)."),
    "PageSize": _query(
        "page_size", {"type": "integer", "minimum": 1, "maximum": 1000}, "Default 100."
    ),
    "Cursor": _query(
        "cursor", {"type": "string"}, "Opaque, from a next/previous link; not with page."
    ),
    "Origin": {
        "name": "Origin",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Sent by browsers; checked against the project's CORS allowlist.",
    },
}

SECURITY_SCHEMES = {
    "publicKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "sa_<token>",
        "description": "The project's public key: ingest only.",
    },
    "privateKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "sa_priv_<token>",
        "description": "The project's private key: dashboard only.",
    },
}


def _version() -> str:
    try:
        return metadata.version("simple-analytics-stack")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build_document(limits: Limits | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document, as plain JSON-ready data (a new dict every call)."""
    limits = limits or Limits()
    return {
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
            "schemas": _schemas(limits),
        },
    }


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
