"""``GET /sa.js`` as the edge serves it: size, caching headers, ETag, and the body it posts."""

from __future__ import annotations

import gzip
from pathlib import Path

import aiohttp
import orjson

from analytics.storage.projects import NewProject

SOURCE = Path(__file__).resolve().parents[2] / "web" / "static" / "sa.js"
LIMIT = 1536


async def test_served_gzipped_within_the_size_limit(edge: str) -> None:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as raw,
        raw.get(f"{edge}/sa.js", headers={"Accept-Encoding": "gzip, deflate, br"}) as resp,
    ):
        assert resp.status == 200
        body = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"].startswith("application/javascript")
        assert resp.headers["Vary"] == "Accept-Encoding"
    assert len(body) <= LIMIT, f"sa.js is {len(body)} bytes gzipped; the limit is {LIMIT}"
    assert gzip.decompress(body) == SOURCE.read_bytes()


async def test_plain_without_accept_encoding(edge: str) -> None:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as raw,
        raw.get(f"{edge}/sa.js", headers={"Accept-Encoding": "identity"}) as resp,
    ):
        assert resp.status == 200
        assert "Content-Encoding" not in resp.headers
        body = await resp.read()
    assert body == SOURCE.read_bytes()
    text = body.decode()
    # SPEC §10: no eval, no globals but window.sa, no cookies.
    assert "eval(" not in text and "new Function" not in text
    assert "document.cookie" not in text


async def test_etag_and_cache_control(edge: str, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{edge}/sa.js") as resp:
        assert resp.status == 200
        etag = resp.headers["ETag"]
        assert etag.startswith('"') and etag.endswith('"')
        assert "max-age=" in resp.headers["Cache-Control"]
        assert "public" in resp.headers["Cache-Control"]
    async with http.get(f"{edge}/sa.js", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304
        assert resp.headers["ETag"] == etag
        assert await resp.read() == b""
    async with http.get(f"{edge}/sa.js", headers={"If-None-Match": '"stale"'}) as resp:
        assert resp.status == 200
    # The plain representation has its own tag; a gzip tag does not validate it.
    async with http.get(
        f"{edge}/sa.js", headers={"If-None-Match": etag, "Accept-Encoding": "identity"}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["ETag"] != etag


async def test_head_answers_headers_only(edge: str, http: aiohttp.ClientSession) -> None:
    async with http.head(f"{edge}/sa.js") as resp:
        assert resp.status == 200
        assert resp.headers["ETag"]


async def test_the_scripts_request_is_accepted_without_preflight(
    edge: str, http: aiohttp.ClientSession, project: NewProject
) -> None:
    """What the script sends: text/plain, the key in the body, an Origin, no Authorization."""
    body = {
        "api_key": project.public_key,
        "event_name": "page_view",
        "event_source": "web",
        "properties": {"url": "https://site.example/a", "title": "A"},
    }
    async with http.post(
        f"{edge}/api/events/ingest/",
        data=orjson.dumps(body),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://site.example"},
    ) as resp:
        assert resp.status == 202, await resp.text()
        assert resp.headers["Access-Control-Allow-Origin"] == "https://site.example"
