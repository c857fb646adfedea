"""Key and source look-ups for the edge, cached for a few seconds.

A key change (rotation, revocation) reaches a running edge within
``key_cache_seconds``: positive answers are cached that long, unknown keys are
not cached at all, so a new key works at once.
"""

from __future__ import annotations

import time

import asyncpg

from analytics.errors import Forbidden, Unauthorized
from analytics.keys import KeyKind, kind_of
from analytics.storage.projects import KeyRecord, find_key, resolve_source


class KeyCache:
    """Key value -> project, with a short time to live."""

    __slots__ = ("_entries", "_pool", "_ttl")

    def __init__(self, pool: asyncpg.Pool, ttl: float) -> None:
        self._pool = pool
        self._ttl = ttl
        self._entries: dict[str, tuple[float, KeyRecord]] = {}

    async def authenticate(self, key: str | None, needed: KeyKind) -> KeyRecord:
        """The key's project, or the 401/403 the key deserves for this use."""
        if not key:
            raise Unauthorized(
                "send the project key as 'Authorization: Bearer sa_…'", code="missing_api_key"
            )
        claimed = kind_of(key)
        if claimed is None:
            raise Unauthorized("the API key is not a Simple Analytics key", code="invalid_api_key")
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            record = hit[1]
        else:
            async with self._pool.acquire() as conn:
                found = await find_key(conn, key)
            if found is None:
                self._entries.pop(key, None)
                raise Unauthorized("the API key is unknown or revoked", code="invalid_api_key")
            record = found
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[key] = (now + self._ttl, record)
        if record.kind is not needed:
            if needed is KeyKind.PUBLIC:
                raise Forbidden(
                    "a private key (sa_priv_…) cannot ingest events; use the public key",
                    code="private_key_not_allowed",
                )
            raise Forbidden(
                "a public key cannot read data; use the private key (sa_priv_…)",
                code="public_key_not_allowed",
            )
        return record


class SourceCache:
    """(project, source name) -> source id; sources are created on first use and never renamed."""

    __slots__ = ("_ids", "_pool")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._ids: dict[tuple[str, str], int] = {}

    async def resolve(self, project_id: str, names: set[str]) -> dict[str, int]:
        """Ids for every name, creating the missing sources."""
        out: dict[str, int] = {}
        missing: list[str] = []
        for name in names:
            source_id = self._ids.get((project_id, name))
            if source_id is None:
                missing.append(name)
            else:
                out[name] = source_id
        if missing:
            async with self._pool.acquire() as conn:
                for name in sorted(missing):
                    source_id = await resolve_source(conn, project_id, name)
                    self._ids[(project_id, name)] = source_id
                    out[name] = source_id
        return out
