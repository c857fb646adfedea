"""What every private-key endpoint (dashboard API, exports) reads first: its project, its query."""

from __future__ import annotations

from aiohttp import web

from analytics.errors import BadRequest, Forbidden
from analytics.projects.api_keys import KeyKind, bearer
from analytics.projects.share_tokens import is_share_token
from web.app_keys import KEY_CACHE, SHARE_CACHE


async def private_project_id(request: web.Request) -> str:
    """The project of the request's private key (401/403 otherwise)."""
    key = bearer(request.headers.get("Authorization"))
    if is_share_token(key):
        raise Forbidden(
            "a share link reads only the stats API (/api/stats/…); use the private key",
            code="share_link_not_allowed",
        )
    record = await request.app[KEY_CACHE].authenticate(key, KeyKind.PRIVATE)
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
    """The project a stats request may read: its private key's, or its share link's."""
    key = bearer(request.headers.get("Authorization"))
    if key is not None and is_share_token(key):
        return await request.app[SHARE_CACHE].project_of(key)
    return await private_project_id(request)
