"""Reading request bodies: content type, gzip, size limits, a deadline, JSON.

Limits apply to the decompressed size; gzip is inflated in bounded steps so
a decompression bomb is refused with 413 without ever being held in memory.
The whole body must arrive within ``HTTP_BODY_TIMEOUT_SECONDS`` of the
handler starting to read it (right after the headers), else 408: a client
trickling one byte a second cannot hold a connection for ever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from analytics.errors import (
    BadRequest,
    ClientDisconnected,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from analytics.events.long_integers import may_hold_long_integer
from web.app_keys import SETTINGS

log = logging.getLogger(__name__)

JSON_TYPES = frozenset({"application/json", "text/plain", ""})

# Only when the body may hold an integer of 19 or more digits (``may_hold_long_integer``)
# does this look for one written as a JSON number, right after `:`, `[` or `,` (a match
# inside a string only costs a second, exact read).
_LONG_NUMBER = re.compile(rb"[\[:,]\s*-?[0-9]{19}")


async def read_json(request: web.Request, limit: int) -> Any:
    """The parsed JSON body, at most ``limit`` bytes once decompressed."""
    return parse_json(await read_body(request, limit))


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body's bytes, not empty, at most ``limit`` once decompressed; not yet parsed."""
    if request.content_type not in JSON_TYPES and not request.content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"content type {request.content_type!r} is not accepted; send application/json",
            field="Content-Type",
        )
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "deflate", ""):
        raise UnsupportedMediaType(
            f"content encoding {encoding!r} is not accepted; send gzip or none",
            code="unsupported_content_encoding",
            field="Content-Encoding",
        )
    # aiohttp inflates gzip/deflate bodies itself, in bounded chunks, so the
    # limit below counts decompressed bytes and a bomb stops at `limit`.
    content = request.content
    if not compressed_encoding(encoding) and content.is_eof():
        # The whole body has arrived (a small request usually comes in the same packet as
        # its headers): read it without a timer.
        raw = await _read_limited(request, limit, compressed=False)
    else:
        raw = await _read_in_time(request, limit, encoding)
    if not raw:
        raise BadRequest("the request body is empty", code="invalid_json", field="body")
    return raw


def compressed_encoding(encoding: str) -> bool:
    return encoding in ("gzip", "deflate")


async def _read_in_time(request: web.Request, limit: int, encoding: str) -> bytes:
    seconds = request.app[SETTINGS].http_body_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            return await _read_limited(request, limit, compressed=compressed_encoding(encoding))
    except TimeoutError as exc:
        raise RequestTimeout(
            f"the body did not arrive within {seconds:g} seconds", field="body"
        ) from exc


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON, with every integer exact; a 400 ``invalid_json`` otherwise.

    orjson reads integers outside [-2^63, 2^64) as floats, silently dropping digits
    (2^64 would be stored as 18446744073709552000). When the text may hold such an
    integer it is read again by the standard library, which keeps integers exact, so
    validation can refuse them by name.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"the body is not valid JSON: {exc}", code="invalid_json", field="body"
        ) from exc
    if not may_hold_long_integer(raw) or _LONG_NUMBER.search(raw) is None:
        return value
    try:
        return json.loads(raw, parse_int=_exact_int)
    except RecursionError as exc:
        # The standard library stops near 1,000 levels, orjson at 1,024.
        raise BadRequest(
            "the body nests too deep to read its long integers exactly",
            code="invalid_json",
            field="body",
        ) from exc


def _exact_int(text: str) -> int:
    # Past 40 digits a value only needs to be known as beyond 64 bits, and int() costs
    # quadratic time in the digits (orjson let through up to ~309, as many as fit a body).
    if len(text) > 40:
        return -(2**128) if text.startswith("-") else 2**128
    return int(text)


async def _read_limited(request: web.Request, limit: int, *, compressed: bool) -> bytes:
    length = request.content_length
    if not compressed and length is not None and length > limit:
        raise _too_large(length, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
    except (ContentEncodingError, RequestPayloadError) as exc:
        # aiohttp raises RequestPayloadError (caused by ContentEncodingError) for a
        # corrupt gzip/deflate body; older versions raised ContentEncodingError itself.
        if isinstance(exc, ContentEncodingError) or isinstance(exc.__cause__, ContentEncodingError):
            raise BadRequest(
                "the body could not be decompressed",
                code="invalid_encoding",
                field="Content-Encoding",
            ) from exc
        raise BadRequest(
            f"the body could not be read: {exc}", code="invalid_body", field="body"
        ) from exc
    except ConnectionError as exc:
        # A client that gives up mid-body is not a server fault: one line, no traceback.
        log.info(
            "client %s disconnected after %d body bytes of %s %s",
            request.remote,
            size,
            request.method,
            request.path,
        )
        raise ClientDisconnected(
            f"the client disconnected after {size} body bytes", field="body"
        ) from exc
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the body is {size} bytes; the limit is {limit}", code="payload_too_large", field="body"
    )
