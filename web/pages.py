"""The human-facing page: ``/dashboard/`` (static HTML; the key stays in the browser),
``/share/<token>`` (the same page for a share link),
and its icon at ``/favicon.ico`` (a 16x16 PNG inside an ICO, 127 bytes)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from analytics.errors import Unauthorized
from analytics.projects.share_tokens import is_share_token
from web.app_keys import SHARE_CACHE

_PAGE = resources.files("web") / "static" / "dashboard.html"
_ICON = resources.files("web") / "static" / "favicon.ico"


async def dashboard_page(request: web.Request) -> web.Response:
    """The web-analytics dashboard: static HTML whose inline script reads the stats API.

    The private key stays in the browser; the view (period, date, filters, tabs) lives
    in the query string, which only the page reads.
    """
    response = web.Response(body=_PAGE.read_bytes(), content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
    )
    return response


async def favicon(request: web.Request) -> web.Response:
    """The icon browsers ask for (the page links it too, so none is left asking)."""
    response = web.Response(body=_ICON.read_bytes(), content_type="image/x-icon")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


async def share_page(request: web.Request) -> web.Response:
    """The dashboard of a share link: the same page, reading with the token in its path.

    An unknown or revoked token is a 404 (within the share cache's 2 s); the stats API
    checks the token again on every request the page makes.
    """
    token = request.match_info["token"]
    try:
        if not is_share_token(token):
            raise Unauthorized("not a share link")
        await request.app[SHARE_CACHE].project_of(token)
    except Unauthorized:
        raise web.HTTPNotFound(text="no such share link", content_type="text/plain") from None
    response = await dashboard_page(request)
    response.headers["Referrer-Policy"] = "no-referrer"  # the path is the credential
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def add_routes(app: web.Application) -> None:
    """Register ``/dashboard/`` (and ``/dashboard`` redirecting to it) and ``/favicon.ico``."""
    app.router.add_get("/dashboard/", dashboard_page)
    app.router.add_get("/dashboard", _to_slash)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/share/{token}", share_page)


async def _to_slash(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard/")
