"""The edge's HTTP server: aiohttp's, plus the connection guards it lacks.

- Header deadline: aiohttp's keep-alive timer closes a connection whose next
  request has not finished its headers within ``keepalive_timeout`` of the
  connection opening (or of the previous answer), so
  ``HTTP_HEADER_TIMEOUT_SECONDS`` is that timer. Such a client is not answered:
  it has not yet made a request to answer (Go's ``ReadHeaderTimeout`` does the
  same). Idle kept-alive connections close after the same time.
- Body deadline: in ``web.body`` (408 ``body_timeout``); after a 408, or a
  body that cannot be read (corrupt gzip, a client gone), the connection is
  closed at once rather than lingering to drain the rest.
- Connection cap: beyond ``HTTP_MAX_CONNECTIONS`` open connections a new one
  is answered 503 ``too_many_connections`` and closed before any of its bytes
  are read.
- Requests aiohttp's parser refuses (oversized headers, an encoding it cannot
  decode, garbage) are answered in the JSON error shape of SPEC §4, logged at
  info without a traceback and counted by code.

aiohttp has no public hook for any of these, so this module subclasses its
``Server``, ``RequestHandler`` and ``AppRunner`` and leans on a few of their
private names (``AppRunner._make_server``, ``Server._kwargs``,
``RequestHandler._manager``), as of aiohttp 3.14; ``tests/web/test_hostile.py``
exercises each guard over a real socket, so an upgrade that moves them fails there.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    InvalidHeader,
    LineTooLong,
)
from aiohttp.web_request import BaseRequest

from analytics import metrics
from web.middleware import json_response

log = logging.getLogger(__name__)


def _refusal() -> bytes:
    body = orjson.dumps(
        {
            "code": "too_many_connections",
            "detail": "the server has too many open connections; retry shortly",
        }
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


_REFUSAL = _refusal()


def protocol_error(exc: BaseException | None, message: str | None) -> tuple[int, dict[str, str]]:
    """Status and JSON body for a request aiohttp's parser refused."""
    detail = message or str(exc) or "the request is malformed"
    if isinstance(exc, LineTooLong):
        return 400, {
            "code": "header_too_large",
            "detail": "the request line or a header field is longer than the server accepts",
        }
    if isinstance(exc, ContentEncodingError):
        # Same answer as web.body gives an encoding the parser lets through.
        return 415, {
            "code": "unsupported_content_encoding",
            "detail": "this content encoding is not accepted; send gzip or none",
            "field": "Content-Encoding",
        }
    if isinstance(exc, InvalidHeader):
        return 400, {"code": "invalid_header", "detail": detail}
    if isinstance(exc, BadHttpMethod | BadStatusLine):
        return 400, {"code": "invalid_request_line", "detail": detail}
    return 400, {"code": "bad_request", "detail": detail}


class EdgeProtocol(web.RequestHandler):
    """aiohttp's per-connection protocol: capped, closing early, answering its errors in JSON."""

    def __init__(self, manager: web.Server, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._max_connections = max_connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Serve the connection, or refuse it with a 503 when the cap is reached."""
        manager = self._manager
        if manager is not None and len(manager.connections) >= self._max_connections:
            # Refused before anything is set up or read; it never counts against the cap.
            metrics.INGEST_REJECTIONS.labels("too_many_connections").inc()
            log.debug("refused a connection: %d are open", len(manager.connections))
            self._manager = None  # so connection_lost has nothing to undo
            cast(asyncio.Transport, transport).write(_REFUSAL)
            transport.close()
            return
        super().connection_made(transport)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON answer to a request that never reached a handler, or broke one."""
        if request.writer.output_size > 0:
            # Part of an answer is out already: only closing the connection tells the client.
            raise ConnectionError("an answer was already started; the connection is closed")
        if status >= 500:
            self.log_exception("error handling request from %s", request.remote, exc_info=exc)
            metrics.ERRORS.labels("edge", "unhandled").inc()
            answer = {"code": "internal_error", "detail": "an internal error occurred"}
        else:
            status, answer = protocol_error(exc, message)
            log.info("refused a malformed request from %s: %s", request.remote, answer["code"])
            metrics.INGEST_REJECTIONS.labels(answer["code"]).inc()
        response = json_response(answer, status=status)
        response.force_close()
        return response

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Send the answer, then close at once where draining the body cannot work.

        aiohttp lingers after an answer to read the rest of an unread body; after a 408
        the client is still trickling it, and a broken body (corrupt gzip, a client gone)
        raises on every read, which aiohttp would log as an unhandled exception.
        """
        result = await super().finish_response(request, resp, start_time)
        if resp.status == 408 or request.content.exception() is not None:
            self.force_close()
        return result


class EdgeServer(web.Server):
    """aiohttp's server, making :class:`EdgeProtocol` for each connection."""

    def __init__(self, plain: web.Server, *, max_connections: int) -> None:
        # The server aiohttp assembled for the application, rebuilt with the same parts.
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
        self._max_connections = max_connections

    def __call__(self) -> web.RequestHandler:
        return EdgeProtocol(
            self, loop=self._loop, max_connections=self._max_connections, **self._kwargs
        )


class EdgeRunner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`EdgeServer`, with the header deadline."""

    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout: float,
        max_connections: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, keepalive_timeout=header_timeout, **kwargs)
        self._max_connections = max_connections

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the application
        return EdgeServer(plain, max_connections=self._max_connections)
