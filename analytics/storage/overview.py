"""Read-only queries for the admin view: each project at a glance, its keys, the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from analytics.storage import Connection

_PROJECTS = """
SELECT p.id, p.name, p.created_at, p.settings,
       coalesce((SELECT total_events FROM project_daily_summary s
                  WHERE s.project_id = p.id AND s.day = (now() AT TIME ZONE 'UTC')::date), 0),
       coalesce((SELECT sum(total_events) FROM project_daily_summary s
                  WHERE s.project_id = p.id
                    AND s.day > (now() AT TIME ZONE 'UTC')::date - 7), 0)::bigint,
       coalesce((SELECT array_agg(name ORDER BY name) FROM event_sources e
                  WHERE e.project_id = p.id), '{}'),
       (SELECT max(last) FROM event_sources e CROSS JOIN LATERAL (
            SELECT max(v."timestamp") AS last FROM events v
             WHERE v.project_id = e.project_id AND v.event_source_id = e.id) m
         WHERE e.project_id = p.id)
FROM projects p ORDER BY p.created_at, p.id
"""


@dataclass(slots=True, frozen=True)
class ProjectOverview:
    """A project's figures for the admin list (days are UTC; counts from the daily summary)."""

    project_id: str
    name: str
    created_at: datetime
    settings: dict[str, Any]
    events_today: int
    events_7d: int
    sources: tuple[str, ...]
    last_event_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "settings": self.settings,
            "events_today": self.events_today,
            "events_7d": self.events_7d,
            "sources": list(self.sources),
            "last_event_at": None if self.last_event_at is None else self.last_event_at.isoformat(),
        }


async def project_overviews(conn: Connection) -> list[ProjectOverview]:
    """Every project with events today and over the last 7 days, sources and last event."""
    return [
        ProjectOverview(
            r[0], r[1], r[2], orjson.loads(r[3]), int(r[4]), int(r[5]), tuple(r[6]), r[7]
        )
        for r in await conn.fetch(_PROJECTS)
    ]


@dataclass(slots=True, frozen=True)
class KeyInfo:
    """One stored key as an operator may see it: never the key, only its hint."""

    id: int
    kind: str
    hint: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    live: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "hint": self.hint,
            "created_at": self.created_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "live": self.live,
        }


async def project_keys(conn: Connection, project_id: str) -> list[KeyInfo]:
    """A project's keys, newest first, live or not."""
    rows = await conn.fetch(
        "SELECT id, kind, key_hint, created_at, expires_at, revoked_at,"
        " revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
        " FROM api_keys WHERE project_id = $1 ORDER BY id DESC",
        project_id,
    )
    return [KeyInfo(*row) for row in rows]


@dataclass(slots=True, frozen=True)
class AuditEntry:
    """One audit log row."""

    id: int
    at: datetime
    project_id: str | None
    action: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "project_id": self.project_id,
            "action": self.action,
            "detail": self.detail,
        }


async def audit_entries(
    conn: Connection, project_id: str | None = None, *, limit: int = 100
) -> list[AuditEntry]:
    """The newest audit rows, of one project when ``project_id`` is given."""
    if project_id is None:
        rows = await conn.fetch(
            "SELECT id, at, project_id, action, detail FROM audit_log ORDER BY id DESC LIMIT $1",
            limit,
        )
    else:
        rows = await conn.fetch(
            "SELECT id, at, project_id, action, detail FROM audit_log WHERE project_id = $1"
            " ORDER BY id DESC LIMIT $2",
            project_id,
            limit,
        )
    return [AuditEntry(r[0], r[1], r[2], r[3], orjson.loads(r[4])) for r in rows]
