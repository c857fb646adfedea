"""The event as it travels after validation: a plain slotted record.

Between edge, buffer, Kafka and sink an event is the tuple ``EventRow``
encoded with orjson; timestamps are integer microseconds since the epoch
(UTC) and ``properties`` is the already-serialized JSON text, so nothing in
the hot path re-parses or re-validates it.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson


class EventRow(NamedTuple):
    """One accepted event, field for field the ``events`` table (SPEC §3)."""

    project_id: str
    event_id: str
    event_source_id: int
    event_source: str
    user_id: str | None
    session_id: str | None
    event_name: str
    properties: str
    timestamp_us: int
    sample_rate: float
    received_at_us: int
    ip_address: str | None
    user_agent: str | None


def encode_rows(rows: list[EventRow]) -> bytes:
    """Wire form of a group of events (Redis entry or Kafka message value)."""
    return orjson.dumps([tuple(row) for row in rows])


def decode_rows(raw: bytes | str) -> list[EventRow]:
    """Inverse of :func:`encode_rows`.

    Built with ``tuple.__new__`` rather than ``EventRow(*item)``: the generated
    ``__new__`` of a NamedTuple parses keyword arguments and costs several
    times more per row in this, the worker's hottest loop.
    """
    make = tuple.__new__
    return [make(EventRow, item) for item in orjson.loads(raw)]
