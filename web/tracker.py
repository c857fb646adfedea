"""``GET /sa.js``: the tracker script (``web/static/sa.js``), as a site's pages load it.

The file is read and gzipped once, when the edge is built, and answered
from memory: gzip to clients that accept it, with an ``ETag`` (a hash of the
script) and ``Cache-Control``, and ``304`` to a matching ``If-None-Match``.
The script is plain readable JavaScript with no build step; its gzipped size
is held under 1,536 bytes by a test.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

# Browsers revalidate after an hour (a 304 costs one small round trip), so a new
# script reaches every page within the hour after a deploy.
CACHE_CONTROL = "public, max-age=3600"


@dataclass(frozen=True, slots=True)
class TrackerScript:
    """The script's bytes, plain and gzipped, and their entity tag."""

    plain: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def load(cls) -> TrackerScript:
        """Read ``web/static/sa.js`` and prepare what is served."""
        plain = (resources.files("web") / "static" / "sa.js").read_bytes()
        digest = hashlib.sha256(plain).hexdigest()[:20]
        return cls(plain, gzip.compress(plain, compresslevel=9, mtime=0), f'"{digest}"')


TRACKER = web.AppKey("tracker", TrackerScript)


def _accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*") and params.replace(" ", "") != "q=0":
            return True
    return False


def _matches(if_none_match: str, etag: str) -> bool:
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


async def tracker_script(request: web.Request) -> web.Response:
    """The tracker; 304 when the client's copy is current."""
    script = request.app[TRACKER]
    gzipped = _accepts_gzip(request)
    # Each encoding is its own representation, so each has its own strong tag.
    etag = script.etag[:-1] + '-gz"' if gzipped else script.etag
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
    if _matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=headers)
    response = web.Response(
        body=script.gzipped if gzipped else script.plain,
        content_type="application/javascript",
        charset="utf-8",
        headers=headers,
    )
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def add_routes(app: web.Application) -> None:
    """Register ``GET /sa.js`` (and HEAD)."""
    app[TRACKER] = TrackerScript.load()
    app.router.add_get("/sa.js", tracker_script)
