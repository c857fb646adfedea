"""What every private-key endpoint (dashboard API, exports) reads first: its project, its query."""

from __future__ import annotations

from aiohttp import web

from analytics.errors import BadRequest
from analytics.projects.api_keys import KeyKind, bearer
from web.app_keys import KEY_CACHE


async def private_project_id(request: web.Request) -> str:
    """The project of the request's private key (401/403 otherwise)."""
    record = await request.app[KEY_CACHE].authenticate(
        bearer(request.headers.get("Authorization")), KeyKind.PRIVATE
    )
    return record.project_id


def query_text(request: web.Request, name: str) -> str | None:
    """A query parameter, None when absent or empty; a 400 naming it when it holds NUL."""
    value = request.query.get(name)
    if value and "\x00" in value:
        raise BadRequest(
            f"{name} must not contain NUL (U+0000) characters", code=f"{name}_invalid", field=name
        )
    return value or None


async def stats_project_id(request: web.Request) -> str:
    """The project a stats request may read: its private key's (share links extend this)."""
    return await private_project_id(request)
