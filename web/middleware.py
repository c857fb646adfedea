"""The one place errors become HTTP answers (SPEC §4 JSON shape), and ingest request metrics."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from analytics import metrics
from analytics.errors import AnalyticsError

log = logging.getLogger(__name__)

# Segment's SDKs read ``message`` from an error body: RudderStack's Python SDK raises
# KeyError without it (and then retries a bad key eleven times), Segment's prints
# "unknown". Every error on the Segment endpoints carries it beside ``detail``.
SEGMENT_PREFIX = "/v1/"

R = TypeVar("R", bound=web.StreamResponse)


def json_response(body: object, status: int = 200, reason: str | None = None) -> web.Response:
    """An orjson-encoded JSON answer (``reason`` replaces the standard reason phrase)."""
    return web.Response(
        body=orjson.dumps(body), status=status, reason=reason, content_type="application/json"
    )


def error_response(error: AnalyticsError, *, with_message: bool = False) -> web.Response:
    """The JSON answer for one of our errors, with Retry-After where it applies."""
    body: dict[str, str] = error.to_json()
    if with_message:
        body["message"] = error.detail
    response = json_response(body, status=error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map raised errors to JSON; anything unexpected is logged and answered as a bare 500."""
    segment = request.path.startswith(SEGMENT_PREFIX)
    try:
        return await handler(request)
    except AnalyticsError as error:
        metrics.child(metrics.INGEST_REJECTIONS, error.code).inc()
        response = error_response(error, with_message=segment)
        if not request.content.is_eof():
            # Refused before the whole body was read (too large, too slow, corrupt): the
            # connection cannot carry another request, so the client is told it ends here.
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status, "http_error"
        )
        body = {"code": code, "detail": exc.reason}
        if segment:
            body["message"] = exc.reason
        return json_response(body, status=exc.status)
    except Exception:
        metrics.ERRORS.labels("edge", "unhandled").inc()
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = {"code": "internal_error", "detail": "an internal error occurred"}
        if segment:
            body["message"] = body["detail"]
        return json_response(body, status=500)


def measured(
    endpoint: str,
) -> Callable[[Callable[[web.Request], Awaitable[R]]], Callable[[web.Request], Awaitable[R]]]:
    """Count and time an ingest handler: ``sa_ingest_requests_total{endpoint, status}`` and
    ``sa_ingest_request_duration_seconds{endpoint}``, errors included (with their status)."""

    def wrap(
        handler: Callable[[web.Request], Awaitable[R]],
    ) -> Callable[[web.Request], Awaitable[R]]:
        @functools.wraps(handler)
        async def measured_handler(request: web.Request) -> R:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except AnalyticsError as error:
                status = error.status
                raise
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                metrics.child(metrics.INGEST_REQUESTS, endpoint, str(status)).inc()
                metrics.child(metrics.INGEST_LATENCY, endpoint).observe(
                    time.perf_counter() - started
                )

        return measured_handler

    return wrap
