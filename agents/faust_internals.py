"""Every use of faust's private API, in one place, each with the reason.

faust-streaming 0.15 offers no public way to do any of these. When faust
changes, this module is the one to read and mend; nothing else touches ``_`` names
of faust.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event


@contextmanager
def current_event(event: Any) -> Iterator[None]:
    """Make ``event`` the stream's current event for the writes inside the block.

    Why: a table write goes to the changelog partition of the *current event*, and a
    ``noack_take`` batch has none. The raw sink writes each project's live minutes
    with one of that project's own events set as current (the bridge keys messages by
    project, so they all share its partition).
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def committed_offset(app: Any, tp: Any) -> int | None:
    """The offset this worker last committed for ``tp``, or None before its first commit.

    Why: the consumer keeps it (``_committed_offset``) but exposes no getter, and asking
    the broker (``committed()``) is a round trip per partition on every scrape.
    """
    offset: int | None = app.consumer._committed_offset.get(tp)
    return offset


def table_items(table: Any) -> list[tuple[Any, Any]]:
    """Every (key, value) this worker holds in a table's local store, windowed keys raw.

    Why: a windowed table answers per key and window; reading all of a project's
    windows means walking the store (``.data``), which faust documents only as an
    attribute of the table, not as API.
    """
    data = table.data
    return [(key, data[key]) for key in list(data.keys())]


def stalled_recovery(app: Any) -> dict[Any, tuple[int, int]]:
    """Active changelog partitions still short of their highwater: tp -> (offset, highwater).

    Why: faust keeps recovery's progress on its ``Recovery`` service and offers no getter.
    Empty when no recovery is running.
    """
    recovery = app.tables.recovery
    if not recovery.in_recovery:
        return {}
    offsets, highwaters = recovery.active_offsets, recovery.active_highwaters
    return {
        tp: (offsets[tp], hw)
        for tp, hw in list(highwaters.items())
        if hw is not None and offsets.get(tp) is not None and hw > offsets[tp]
    }


def skip_recovery(app: Any, tps: list[Any]) -> None:
    """Mark ``tps`` as recovered up to their highwater; faust ends recovery on its next tick.

    Why: faust waits for every changelog record up to the highwater it read at the start,
    forever. A broker that lost its log and was written to again can report a highwater
    whose records it never serves (the memory-only development broker does).
    """
    recovery = app.tables.recovery
    for tp in tps:
        recovery.active_offsets[tp] = recovery.active_highwaters[tp]


def read_offset(app: Any, tp: Any) -> int | None:
    """The offset of the last message this worker's stream read from ``tp`` (None before one).

    Why: faust drops every fetched message below it (``_read_offset``), with no getter.
    """
    offset: int | None = app.consumer._read_offset.get(tp)
    return offset
