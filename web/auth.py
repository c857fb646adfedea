"""Key, settings and source look-ups for the edge, cached for a few seconds.

A key or settings change (rotation, revocation, ``set-setting``) reaches a
running edge within ``key_cache_seconds`` (5 s): positive answers are cached
that long, unknown keys are not cached at all, so a new key works at once.

Look-ups are single-flight: however many requests miss on one key at once, one query
goes to PostgreSQL and the others wait for its answer. A key in use is refreshed in the
background during the last fifth of its time to live, so requests keep hitting the cache
instead of all waiting on PostgreSQL every ``key_cache_seconds``.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import orjson

from analytics.errors import Forbidden, Unauthorized
from analytics.projects.api_keys import KeyKind, kind_of
from analytics.projects.policy import (
    ProjectSettings,
    SourceSettings,
    project_settings,
    source_settings,
)
from analytics.storage.projects import KeyRecord, find_key, resolve_source
from analytics.storage.share_links import project_of_token


class KeyCache:
    """Key value -> project (and its parsed settings), with a short time to live."""

    __slots__ = ("_entries", "_inflight", "_pool", "_settings", "_ttl", "used")

    def __init__(self, pool: asyncpg.Pool, ttl: float) -> None:
        self._pool = pool
        self._ttl = ttl
        self._entries: dict[str, tuple[float, KeyRecord]] = {}
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._settings: dict[str, ProjectSettings] = {}
        # Keys looked up in the database since the audit writer last drained this.
        self.used: set[tuple[str, str]] = set()

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
            if hit[0] - now < self._ttl / 5 and key not in self._inflight:
                self._lookup(key)  # refresh ahead, in the background
        else:
            found = await asyncio.shield(self._inflight.get(key) or self._lookup(key))
            if found is None:
                raise Unauthorized("the API key is unknown or revoked", code="invalid_api_key")
            record = found
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

    def _lookup(self, key: str) -> asyncio.Future[KeyRecord | None]:
        """Start the one database look-up of ``key``; its answer fills the cache."""
        future = asyncio.ensure_future(self._fetch(key))
        self._inflight[key] = future
        future.add_done_callback(lambda done: self._done(key, done))
        return future

    def _done(self, key: str, future: asyncio.Future[KeyRecord | None]) -> None:
        self._inflight.pop(key, None)
        if not future.cancelled():
            future.exception()  # a background refresh's failure is for the next request

    async def _fetch(self, key: str) -> KeyRecord | None:
        async with self._pool.acquire() as conn:
            found = await find_key(conn, key)
        if found is None:
            self._entries.pop(key, None)
            return None
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self._ttl, found)
        self._settings[found.project_id] = project_settings(found.settings)
        self.used.add((found.project_id, found.kind.value))
        return found

    def settings_of(self, record: KeyRecord) -> ProjectSettings:
        """The project's settings as of the key's last look-up."""
        found = self._settings.get(record.project_id)
        if found is None:
            found = self._settings[record.project_id] = project_settings(record.settings)
        return found


class SourceCache:
    """(project, source name) -> (id, overrides); created on first use, refreshed every few s."""

    __slots__ = ("_entries", "_pool", "_ttl")

    def __init__(self, pool: asyncpg.Pool, ttl: float = 5.0) -> None:
        self._pool = pool
        self._ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, int, SourceSettings]] = {}

    async def resolve(
        self, project_id: str, names: set[str]
    ) -> dict[str, tuple[int, SourceSettings]]:
        """Id and overrides for every name, creating the missing sources."""
        now = time.monotonic()
        out: dict[str, tuple[int, SourceSettings]] = {}
        missing: list[str] = []
        for name in names:
            hit = self._entries.get((project_id, name))
            if hit is None or hit[0] <= now:
                missing.append(name)
            else:
                out[name] = (hit[1], hit[2])
        if missing:
            async with self._pool.acquire() as conn:
                for name in sorted(missing):
                    source_id = await resolve_source(conn, project_id, name)
                    raw = await conn.fetchval(
                        "SELECT settings FROM event_sources WHERE id = $1", source_id
                    )
                    overrides = source_settings(orjson.loads(raw) if raw else {})
                    self._entries[(project_id, name)] = (now + self._ttl, source_id, overrides)
                    out[name] = (source_id, overrides)
        return out


class ShareCache:
    """Share token -> project (or None when unknown or revoked), for ``SHARE_LINK_TTL`` s.

    Short on purpose: a revoked link stops answering within seconds.
    """

    __slots__ = ("_entries", "_pool", "_ttl")

    def __init__(self, pool: asyncpg.Pool, ttl: float = 2.0) -> None:
        self._pool = pool
        self._ttl = ttl
        self._entries: dict[str, tuple[float, str | None]] = {}

    async def project_of(self, token: str) -> str:
        """The project the token reads (401 when it is unknown or revoked)."""
        now = time.monotonic()
        hit = self._entries.get(token)
        if hit is not None and hit[0] > now:
            project_id = hit[1]
        else:
            async with self._pool.acquire() as conn:
                project_id = await project_of_token(conn, token)
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token] = (now + self._ttl, project_id)
        if project_id is None:
            raise Unauthorized("the share link is unknown or revoked", code="invalid_share_link")
        return project_id
