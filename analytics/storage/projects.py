"""Queries on projects, their keys and their event sources."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from analytics.storage import Connection

from analytics.keys import KeyKind, hash_key, new_key


@dataclass(slots=True, frozen=True)
class NewProject:
    """What ``create-project`` hands the operator; the keys are shown only once."""

    project_id: str
    name: str
    public_key: str
    private_key: str


@dataclass(slots=True, frozen=True)
class KeyRecord:
    """A stored key as the edge needs it."""

    project_id: str
    kind: KeyKind
    salt: str


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
        "SELECT k.project_id, k.kind, p.salt FROM api_keys k JOIN projects p ON p.id = k.project_id"
        " WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > now())",
        hash_key(key),
    )
    if row is None:
        return None
    return KeyRecord(row["project_id"], KeyKind(row["kind"]), row["salt"])


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
