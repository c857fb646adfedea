"""Share links (``share_links``): made, listed, revoked, and looked up by token."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from analytics.projects.share_tokens import new_token, token_hash, token_hint
from analytics.storage.projects import audit

if TYPE_CHECKING:
    from analytics.storage import Connection


async def create_link(conn: Connection, project_id: str) -> str:
    """A new link's token (shown once), audited."""
    token = new_token()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO share_links (token_hash, project_id, token_hint) VALUES ($1, $2, $3)",
            token_hash(token),
            project_id,
            token_hint(token),
        )
        await audit(conn, project_id, "share_link_created", {"hint": token_hint(token)})
    return token


async def list_links(conn: Connection, project_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT token_hint, created_at, revoked_at FROM share_links WHERE project_id = $1"
        " ORDER BY created_at",
        project_id,
    )


async def revoke_links(conn: Connection, project_id: str, token_or_hint: str) -> int:
    """Revoke the project's live links matching a whole token or its hint; how many."""
    async with conn.transaction():
        rows = await conn.fetch(
            "UPDATE share_links SET revoked_at = now() WHERE project_id = $1"
            " AND revoked_at IS NULL AND (token_hash = $2 OR token_hint = $3)"
            " RETURNING token_hint",
            project_id,
            token_hash(token_or_hint),
            token_or_hint,
        )
        for row in rows:
            await audit(conn, project_id, "share_link_revoked", {"hint": row[0]})
    return len(rows)


async def project_of_token(conn: Connection, token: str) -> str | None:
    """The project a live (unrevoked) share token reads, or None."""
    found = await conn.fetchval(
        "SELECT project_id FROM share_links WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash(token),
    )
    return str(found) if found is not None else None
