"""The one place errors become HTTP answers (SPEC §4 JSON shape)."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from analytics import metrics
from analytics.errors import AnalyticsError

log = logging.getLogger(__name__)


def json_response(body: object, status: int = 200) -> web.Response:
    """An orjson-encoded JSON answer."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(error: AnalyticsError) -> web.Response:
    """The JSON answer for one of our errors, with Retry-After where it applies."""
    response = json_response(error.to_json(), status=error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map raised errors to JSON; anything unexpected is logged and answered as a bare 500."""
    try:
        return await handler(request)
    except AnalyticsError as error:
        metrics.INGEST_REJECTIONS.labels(error.code).inc()
        response = error_response(error)
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
        return json_response({"code": code, "detail": exc.reason}, status=exc.status)
    except Exception:
        metrics.ERRORS.labels("edge", "unhandled").inc()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(
            {"code": "internal_error", "detail": "an internal error occurred"}, status=500
        )
