"""Building blocks and component schemas of the OpenAPI document (``web.openapi``).

Kept apart from the operations so each module stays readable; the two are one
document and change together when a handler's answers change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics.settings import Settings
from web.dashboard import MAX_PAGE_SIZE

Schema = dict[str, Any]


@dataclass(slots=True, frozen=True)
class Limits:
    """The request limits the document states (bytes are counted after decompression)."""

    max_batch_events: int
    max_batch_bytes: int
    max_event_bytes: int
    max_properties_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits an edge with these settings enforces."""
        return cls(**{name: getattr(settings, name) for name in _LIMIT_NAMES})

    @classmethod
    def defaults(cls) -> Limits:
        """The limits of an edge with default settings (their one home is ``Settings``)."""
        fields = Settings.model_fields
        return cls(**{name: fields[name].default for name in _LIMIT_NAMES})


_LIMIT_NAMES = ("max_batch_events", "max_batch_bytes", "max_event_bytes", "max_properties_bytes")


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
    segment_error = _object(
        code=_described(STR, "Stable: messages_rejected, or the error's own code."),
        detail=_described(STR, "For humans."),
        field=_described(STR, "The field at fault, if one is."),
        message=_described(STR, "The same text as detail, where Segment's SDKs look."),
        success={"const": False},
        accepted=COUNT,
        sampled=COUNT,
        rejected=COUNT,
        errors=_described(_list(_ref("BatchItemResult")), "The messages rejected, by index."),
    )
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
        "SegmentMessage": _described(
            {
                "type": "object",
                "properties": {
                    "type": {"enum": ["track", "page", "screen", "identify", "group", "alias"]},
                    "event": STR,
                    "name": STR,
                    "category": STR,
                    "userId": STR,
                    "anonymousId": STR,
                    "messageId": STR,
                    "properties": OBJ,
                    "traits": OBJ,
                    "groupId": STR,
                    "previousId": STR,
                    "context": OBJ,
                    "timestamp": DATE_TIME,
                    "sentAt": DATE_TIME,
                    "writeKey": STR,
                },
            },
            "A Segment message (32 KB at most); other fields are ignored.",
        ),
        "SegmentBatch": _object(
            batch=_list(_ref("SegmentMessage")), sentAt=DATE_TIME, writeKey=STR
        ),
        "SegmentError": _described(
            {
                **segment_error,
                "required": ["code", "detail", "message"],
            },
            "An error on a Segment endpoint: the Error fields, message (what Segment's SDKs"
            " read) and, when messages were rejected, what became of each.",
        ),
        "SegmentResult": _object(
            success={"const": True},
            accepted=COUNT,
            sampled=COUNT,
            rejected=COUNT,
            errors=_described(
                _list(_ref("BatchItemResult")),
                "Empty: a rejected message makes the answer a 400 (SegmentError).",
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
        "StatsAggregate": _object(
            results=_described(
                {
                    **OBJ,
                    "additionalProperties": _object(
                        value=NUM,
                        change=_null(_described(NUM, "Percent; points for bounce_rate.")),
                    )
                    | {"required": ["value"]},
                },
                "One entry per metric asked for.",
            )
        ),
        "StatsTimeseries": {
            **_object(
                results=_list({**OBJ, "properties": {"date": STR}, "required": ["date"]}),
                comparison=_list({**OBJ, "properties": {"date": STR}, "required": ["date"]}),
            ),
            "required": ["results"],
        },
        "StatsBreakdown": _object(
            results=_described(
                _list(OBJ), "Rows keyed by the property's last segment, with each metric."
            ),
            page=INT,
            limit=INT,
        ),
        "StatsRealtime": _object(results=COUNT),
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
