"""Dead letters: events the database refused, kept for an operator to inspect, replay or
discard (``list-dead-letters``, ``replay-dead-letters``, ``discard-dead-letter`` and the
admin view call these same functions).

A replay appends the stored record to the Redis stream the edge writes to, so it goes
through the normal pipeline (bridge, Kafka, raw sink, ledger): an event already stored is
dropped by the ledger, and one the database refuses again becomes a new dead letter. The
old row is marked ``replayed_at`` / ``discarded_at``, never deleted, and every action is
written to the audit log with who did it (``actor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import redis.asyncio as aioredis

from analytics.pipeline.buffer import FIELD
from analytics.storage.projects import audit

if TYPE_CHECKING:
    from analytics.storage import Connection

State = Literal["open", "replayed", "discarded"]


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """One refused event: the error and the record as the sink had it."""

    id: int
    at: datetime
    project_id: str | None
    event_id: str | None
    error: str
    payload: str
    state: State

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "project_id": self.project_id,
            "event_id": self.event_id,
            "error": self.error,
            "record": self.payload,
            "state": self.state,
        }


_COLUMNS = (
    "SELECT id, at, project_id, event_id, error, payload,"
    " CASE WHEN replayed_at IS NOT NULL THEN 'replayed'"
    " WHEN discarded_at IS NOT NULL THEN 'discarded' ELSE 'open' END AS state"
    " FROM dead_letters"
)
_OPEN = "replayed_at IS NULL AND discarded_at IS NULL"


async def list_dead_letters(
    conn: Connection, *, include_closed: bool = False, limit: int = 100
) -> list[DeadLetter]:
    """The newest dead letters (open ones only unless ``include_closed``)."""
    where = "" if include_closed else f" WHERE {_OPEN}"
    rows = await conn.fetch(f"{_COLUMNS}{where} ORDER BY id DESC LIMIT $1", limit)
    return [DeadLetter(*row) for row in rows]


async def count_open(conn: Connection) -> int:
    """How many dead letters wait for an operator."""
    return int(await conn.fetchval(f"SELECT count(*) FROM dead_letters WHERE {_OPEN}") or 0)


async def replay(
    conn: Connection,
    redis: aioredis.Redis,
    stream: str,
    ids: list[int] | None,
    *,
    actor: str,
) -> list[int]:
    """Send open dead letters (``ids``, or all when ``None``) through the pipeline again.

    Returns the ids replayed. The entry is appended before the row is marked and both
    happen inside one transaction: if Redis refuses, nothing is marked; if the mark fails
    after the append, the next replay sends the event again and the ledger drops it.
    """
    async with conn.transaction():
        if ids is None:
            rows = await conn.fetch(
                f"SELECT id, project_id, event_id, payload FROM dead_letters WHERE {_OPEN}"
                " ORDER BY id FOR UPDATE"
            )
        else:
            rows = await conn.fetch(
                "SELECT id, project_id, event_id, payload FROM dead_letters"
                f" WHERE id = ANY($1::bigint[]) AND {_OPEN} ORDER BY id FOR UPDATE",
                ids,
            )
        if not rows:
            return []
        pipe = redis.pipeline(transaction=False)
        for row in rows:
            # The payload is one EventRow as a JSON array; an entry holds a list of them.
            pipe.xadd(stream, {FIELD: b"[" + row["payload"].encode() + b"]"})
        await pipe.execute()
        done = [int(row["id"]) for row in rows]
        await conn.execute(
            "UPDATE dead_letters SET replayed_at = now() WHERE id = ANY($1::bigint[])", done
        )
        for row in rows:
            await audit(
                conn,
                row["project_id"],
                "dead_letter_replayed",
                {"dead_letter": row["id"], "event_id": row["event_id"], "actor": actor},
            )
    return done


async def discard(conn: Connection, dead_letter_id: int, *, actor: str) -> bool:
    """Mark one open dead letter discarded (kept, no longer offered); False if not open."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE dead_letters SET discarded_at = now() WHERE id = $1 AND {_OPEN}"
            " RETURNING project_id, event_id",
            dead_letter_id,
        )
        if row is None:
            return False
        await audit(
            conn,
            row["project_id"],
            "dead_letter_discarded",
            {"dead_letter": dead_letter_id, "event_id": row["event_id"], "actor": actor},
        )
    return True
