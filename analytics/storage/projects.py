"""Queries on projects, their keys and their event sources."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

if TYPE_CHECKING:
    from analytics.storage import Connection

from analytics.projects.api_keys import KeyKind, hash_key, new_key
from analytics.projects.policy import parse_value


@dataclass(slots=True, frozen=True)
class NewProject:
    """What ``create-project`` hands the operator; the keys are shown only once."""

    project_id: str
    name: str
    public_key: str
    private_key: str


@dataclass(slots=True, frozen=True)
class KeyRecord:
    """A stored key as the edge needs it, with its project's stored settings."""

    project_id: str
    kind: KeyKind
    salt: str
    settings: dict[str, Any] = field(default_factory=dict)


async def create_project(conn: Connection, name: str) -> NewProject:
    """Insert a project with one public and one private key."""
    project_id = uuid.uuid4().hex
    public_key = new_key(KeyKind.PUBLIC)
    private_key = new_key(KeyKind.PRIVATE)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO projects (id, name, salt) VALUES ($1, $2, $3)",
            project_id,
            name,
            secrets.token_hex(16),
        )
        await _insert_key(conn, project_id, KeyKind.PUBLIC, public_key)
        await _insert_key(conn, project_id, KeyKind.PRIVATE, private_key)
        await audit(conn, project_id, "project_created", {"name": name})
    return NewProject(project_id, name, public_key, private_key)


async def _insert_key(conn: Connection, project_id: str, kind: KeyKind, key: str) -> None:
    await conn.execute(
        "INSERT INTO api_keys (project_id, kind, key_hash, key_hint) VALUES ($1, $2, $3, $4)",
        project_id,
        kind.value,
        hash_key(key),
        key[: len(key) - 36] + "…" + key[-4:],
    )


async def list_projects(conn: Connection) -> list[asyncpg.Record]:
    """Every project with its creation time."""
    return list(
        await conn.fetch("SELECT id, name, created_at FROM projects ORDER BY created_at, id")
    )


async def find_key(conn: Connection, key: str) -> KeyRecord | None:
    """The live (not revoked, not expired) key with this value, if any."""
    row = await conn.fetchrow(
        "SELECT k.project_id, k.kind, p.salt, p.settings"
        " FROM api_keys k JOIN projects p ON p.id = k.project_id"
        " WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > now())",
        hash_key(key),
    )
    if row is None:
        return None
    return KeyRecord(
        row["project_id"], KeyKind(row["kind"]), row["salt"], orjson.loads(row["settings"])
    )


async def resolve_source(conn: Connection, project_id: str, name: str) -> int:
    """The id of the project's source ``name``, created on first use."""
    source_id: int | None = await conn.fetchval(
        "INSERT INTO event_sources (project_id, name) VALUES ($1, $2)"
        " ON CONFLICT (project_id, name) DO NOTHING RETURNING id",
        project_id,
        name,
    )
    if source_id is None:
        source_id = await conn.fetchval(
            "SELECT id FROM event_sources WHERE project_id = $1 AND name = $2", project_id, name
        )
    assert source_id is not None
    return source_id


async def audit(
    conn: Connection, project_id: str | None, action: str, detail: dict[str, Any]
) -> None:
    """Append to the audit log."""
    await conn.execute(
        "INSERT INTO audit_log (project_id, action, detail) VALUES ($1, $2, $3::jsonb)",
        project_id,
        action,
        orjson.dumps(detail).decode(),
    )


async def project_exists(conn: Connection, project_id: str) -> bool:
    """Whether the project id is known."""
    return bool(await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", project_id))


async def rotate_key(
    conn: Connection, project_id: str, kind: KeyKind, grace: timedelta
) -> tuple[str, int]:
    """A new key of ``kind``; the live old ones keep working for ``grace``. Returns (key, old)."""
    key = new_key(kind)
    async with conn.transaction():
        old = await conn.fetchval(
            "WITH changed AS (UPDATE api_keys SET expires_at = now() + $3::interval"
            " WHERE project_id = $1 AND kind = $2 AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > now() + $3::interval) RETURNING 1)"
            " SELECT count(*) FROM changed",
            project_id,
            kind.value,
            grace,
        )
        await _insert_key(conn, project_id, kind, key)
        await audit(
            conn,
            project_id,
            "key_rotated",
            {"kind": kind.value, "grace_seconds": grace.total_seconds(), "old_keys": old},
        )
    return key, int(old or 0)


async def revoke_keys(conn: Connection, project_id: str, kind: KeyKind) -> int:
    """Revoke every live key of ``kind`` now; returns how many."""
    async with conn.transaction():
        count = await conn.fetchval(
            "WITH changed AS (UPDATE api_keys SET revoked_at = now()"
            " WHERE project_id = $1 AND kind = $2 AND revoked_at IS NULL RETURNING 1)"
            " SELECT count(*) FROM changed",
            project_id,
            kind.value,
        )
        await audit(conn, project_id, "key_revoked", {"kind": kind.value, "keys": count})
    return int(count or 0)


async def stored_settings(conn: Connection, project_id: str, source: str | None) -> dict[str, Any]:
    """The settings an operator set (project, or one source's overrides)."""
    if source is None:
        raw = await conn.fetchval("SELECT settings FROM projects WHERE id = $1", project_id)
    else:
        raw = await conn.fetchval(
            "SELECT settings FROM event_sources WHERE project_id = $1 AND name = $2",
            project_id,
            source,
        )
    result: dict[str, Any] = orjson.loads(raw) if raw else {}
    return result


@dataclass(slots=True, frozen=True)
class SettingChange:
    """One setting changed: what it was and what it is now (``None``: unset, default)."""

    project_id: str
    source: str | None
    name: str
    old: Any
    new: Any


async def change_setting(
    conn: Connection,
    project_id: str,
    name: str,
    raw: str,
    source: str | None,
    *,
    actor: str = "cli",
) -> SettingChange:
    """Validate an operator's text value (as ``set-setting`` takes it) and store it.

    The one path for ``set-setting`` and the admin view, so both accept the same values
    and answer with the same messages: raises ``ConfigError`` naming the setting.
    """
    value = parse_value(name, raw, source=source is not None)
    old = await set_setting(conn, project_id, name, value, source, actor=actor)
    return SettingChange(project_id, source, name, old, value)


async def set_setting(
    conn: Connection,
    project_id: str,
    name: str,
    value: Any,
    source: str | None,
    *,
    actor: str = "cli",
) -> Any:
    """Set (or, with ``None``, unset) one setting, and audit the change; returns the old value."""
    async with conn.transaction():
        if source is None:
            current = await stored_settings(conn, project_id, None)
        else:
            await resolve_source(conn, project_id, source)
            current = await stored_settings(conn, project_id, source)
        old = current.get(name)
        if value is None:
            current.pop(name, None)
        else:
            current[name] = value
        payload = orjson.dumps(current).decode()
        if source is None:
            await conn.execute(
                "UPDATE projects SET settings = $2::jsonb WHERE id = $1", project_id, payload
            )
        else:
            await conn.execute(
                "UPDATE event_sources SET settings = $3::jsonb WHERE project_id = $1 AND name = $2",
                project_id,
                source,
                payload,
            )
        await audit(
            conn,
            project_id,
            "settings_changed",
            {"setting": name, "source": source, "old": old, "new": value, "actor": actor},
        )
    return old
