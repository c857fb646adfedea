"""Export columns and rows, import mapping and format checks, stats periods (pure)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import orjson
import pytest

from analytics.errors import BadRequest, ImportFileError
from analytics.events.segment import to_event
from analytics.events.validation import validate_event
from analytics.transfer.events_file import LEADING_COLUMNS, Format, RowWriter, export_columns
from analytics.transfer.importer import ImportFormat, check_first, ndjson_row, segment_row
from analytics.transfer.stats_zip import Period, resolve_period
from tests.support.events import SERVER_NOW_US, request_context

TABLE_TODAY = [
    "event_id", "project_id", "event_source_id", "user_id", "session_id", "event_name",
    "properties", "timestamp", "sample_rate", "received_at", "ip_address", "user_agent",
]  # fmt: skip


def test_the_columns_are_the_known_ones_in_order_then_the_rest_sorted() -> None:
    assert export_columns(TABLE_TODAY) == LEADING_COLUMNS[:13]
    # The enrichment columns of SPEC §10 take their documented places as soon as they
    # exist, in whatever order the migration added them; unknown ones follow, sorted.
    later = ["zeta", *TABLE_TODAY, "is_bot", "country_code", "hostname", "alpha", "browser"]
    assert export_columns(later) == (
        *LEADING_COLUMNS[:13],
        "hostname",
        "browser",
        "is_bot",
        "country_code",
        "alpha",
        "zeta",
    )


def test_csv_and_ndjson_write_the_same_values() -> None:
    columns = ("event_id", "properties", "timestamp", "is_bot", "ip_address", "sample_rate")
    row = {
        "event_id": 'a,"b"\nc',
        "properties": orjson.dumps({"t": 'x,"y"\r\nzoë'}).decode(),
        "timestamp": datetime(2024, 1, 31, 12, 0, tzinfo=UTC),
        "is_bot": False,
        "ip_address": None,
        "sample_rate": 0.1,
    }
    text = RowWriter(Format.CSV, columns).header() + RowWriter(Format.CSV, columns).encode([row])
    parsed = list(csv.reader(io.StringIO(text.decode(), newline="")))
    assert parsed == [
        list(columns),
        [row["event_id"], row["properties"], "2024-01-31T12:00:00.000000Z", "false", "", "0.1"],
    ]
    line = RowWriter(Format.NDJSON, columns).encode([row])
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == {
        "event_id": row["event_id"],
        "properties": {"t": 'x,"y"\r\nzoë'},
        "timestamp": "2024-01-31T12:00:00.000000Z",
        "is_bot": False,
        "ip_address": None,
        "sample_rate": 0.1,
    }
    assert RowWriter(Format.NDJSON, columns).header() == b""


def test_an_exported_line_imports_as_the_event_it_was() -> None:
    line = {
        "event_id": "e1", "project_id": "old", "event_source_id": 9, "event_source": "web",
        "user_id": "u", "session_id": "s", "event_name": "page_view",
        "properties": {"a": [1, 2]}, "timestamp": "2020-05-01T10:00:00.000001Z",
        "sample_rate": 0.25, "received_at": "2020-05-01T10:00:02Z",
        "ip_address": "203.0.113.5", "user_agent": "UA",
    }  # fmt: skip
    row = ndjson_row(line, request_context(project_id="new"))
    assert row.project_id == "new" and row.event_id == "e1" and row.event_source == "web"
    assert (row.user_id, row.session_id, row.sample_rate) == ("u", "s", 0.25)
    assert orjson.loads(row.properties) == {"a": [1, 2]}
    assert row.timestamp_us == 1_588_327_200_000_001
    assert row.received_at_us == 1_588_327_202_000_000
    assert (row.ip_address, row.user_agent) == ("203.0.113.5", "UA")


def test_import_lines_get_the_edge_validation() -> None:
    ctx = request_context()
    with pytest.raises(BadRequest) as caught:
        ndjson_row({"event_name": "x" * 300, "event_source": "web"}, ctx)
    assert caught.value.code == "event_name_too_long"
    with pytest.raises(BadRequest) as caught:
        ndjson_row({"event_name": "e", "event_source": "web", "sample_rate": 2}, ctx)
    assert caught.value.field == "sample_rate"
    with pytest.raises(BadRequest) as caught:
        segment_row({"type": "refund", "messageId": "m"}, ctx)
    assert caught.value.code == "type_invalid"


def test_a_segment_line_maps_as_the_endpoint_maps_it() -> None:
    message = {
        "type": "page",
        "name": "Home",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": "2025-01-01T00:00:00Z",
        "context": {"userAgent": "UA/1", "library": {"name": "analytics.js", "version": "1"}},
    }
    ctx = request_context(user_agent="UA/1", ip_address=None, skew_threshold_us=0)
    imported = segment_row(message, request_context())
    endpoint = validate_event(to_event(message, "page"), ctx)
    assert imported._replace(received_at_us=0) == endpoint._replace(received_at_us=0)
    assert imported.received_at_us == SERVER_NOW_US  # no receivedAt: the import's clock


@pytest.mark.parametrize(
    ("first", "fmt", "message"),
    [
        (b'{"type": "track", "event": "e"}', ImportFormat.NDJSON, "use --format segment"),
        (b'{"event_name": "e", "event_source": "w"}', ImportFormat.SEGMENT, "--format ndjson"),
        (b"event_id,project_id", ImportFormat.NDJSON, "CSV"),
        (b"PK\x03\x04\x00", ImportFormat.SEGMENT, "not JSON"),
        (b"[1, 2]", ImportFormat.NDJSON, "not a JSON object"),
    ],
)
def test_a_file_not_of_its_format_is_refused_on_its_first_line(
    first: bytes, fmt: ImportFormat, message: str
) -> None:
    with pytest.raises(ImportFileError) as caught:
        check_first(first, fmt)
    assert message in caught.value.detail


def test_periods_name_utc_days() -> None:
    today = date(2024, 3, 15)
    assert resolve_period(None, None, today) == Period(date(2024, 2, 15), today)
    assert resolve_period("day", "2024-01-02", today) == Period(date(2024, 1, 2), date(2024, 1, 2))
    assert resolve_period("7d", None, today) == Period(date(2024, 3, 9), today)
    assert resolve_period("month", None, today) == Period(date(2024, 3, 1), date(2024, 3, 31))
    assert resolve_period("6mo", None, today) == Period(date(2023, 10, 1), today)
    assert resolve_period("12mo", None, today) == Period(date(2023, 4, 1), today)
    assert resolve_period("custom", "2024-01-01,2024-01-31", today) == Period(
        date(2024, 1, 1), date(2024, 1, 31)
    )
    for period, day, field in [
        ("year", None, "period"),
        ("custom", "2024-01-01", "date"),
        ("custom", "2024-02-01,2024-01-01", "date"),
        ("7d", "0001-01-02", "date"),
    ]:
        with pytest.raises(BadRequest) as caught:
            resolve_period(period, day, today)
        assert caught.value.field == field
