"""One error tree; every class carries its HTTP status and a stable ``code``.

    AnalyticsError                    500 internal_error
     ├── BadRequest                   400 (field-specific codes, e.g. event_name_too_long)
     ├── Unauthorized                 401 missing_api_key / invalid_api_key
     ├── Forbidden                    403 private_key_not_allowed / public_key_not_allowed
     ├── RequestTimeout               408 body_timeout (the body did not arrive in time)
     ├── PayloadTooLarge              413 payload_too_large / batch_too_large
     ├── UnsupportedMediaType         415 unsupported_media_type
     ├── RateLimited                  429 rate_limited (with Retry-After)
     ├── ClientDisconnected           499 client_disconnected (nobody is left to read it)
     ├── BufferUnavailable            503 buffer_unavailable (the event was not made durable)
     ├── ConfigError                  invalid_setting (a setting or command-line value)
     └── ImportFileError              import_file_invalid (a file is not what --format says)

Handlers raise these; ``web.middleware.error_middleware`` turns them into the
JSON of SPEC §4: ``{"code", "detail", "field"?}``.
"""

from __future__ import annotations

from typing import ClassVar


class AnalyticsError(Exception):
    """Base of every error the stack raises on purpose."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.field = field
        self.retry_after = retry_after

    def to_json(self) -> dict[str, str]:
        """The SPEC §4 error body."""
        body = {"code": self.code, "detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        return body


class BadRequest(AnalyticsError):
    """Malformed or invalid input; ``field`` names the culprit."""

    status = 400
    default_code = "invalid"


class Unauthorized(AnalyticsError):
    """No key, or a key that is unknown or revoked."""

    status = 401
    default_code = "invalid_api_key"


class Forbidden(AnalyticsError):
    """A valid key used where its scope does not allow it."""

    status = 403
    default_code = "forbidden"


class RequestTimeout(AnalyticsError):
    """The client sent its headers but not its whole body within the body timeout."""

    status = 408
    default_code = "body_timeout"


class PayloadTooLarge(AnalyticsError):
    """Body (after decompression) or batch over its limit."""

    status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(AnalyticsError):
    """Content type or encoding the edge does not read."""

    status = 415
    default_code = "unsupported_media_type"


class RateLimited(AnalyticsError):
    """Rate limit or quota exceeded; carries ``retry_after`` seconds."""

    status = 429
    default_code = "rate_limited"


class ClientDisconnected(AnalyticsError):
    """The client closed the connection before its body was read; nothing was accepted.

    499 is nginx's "client closed request": it only shows in metrics and logs, since
    nobody is left to read the answer.
    """

    status = 499
    default_code = "client_disconnected"


class BufferUnavailable(AnalyticsError):
    """The buffer could not make the event durable: the client must retry."""

    status = 503
    default_code = "buffer_unavailable"


class ConfigError(AnalyticsError):
    """A setting or command-line value is invalid (operator error)."""

    default_code = "invalid_setting"


class ImportFileError(AnalyticsError):
    """``import-events`` was given a file that is not of the format it was told (fails fast)."""

    default_code = "import_file_invalid"
