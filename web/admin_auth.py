"""Who may use ``/admin/``: the admin token, the session cookie, CSRF and failed-login lockout.

The view exists only when ``ADMIN_TOKEN`` is set to at least ``MIN_TOKEN_LENGTH``
characters; otherwise every admin URL is 404. A request is an admin's when it carries

* ``Authorization: Bearer <ADMIN_TOKEN>`` (scripts; not ambient, so no CSRF token needed), or
* the session cookie ``sa_admin`` the login form sets: ``<expires>.<nonce>.<signature>``,
  HMAC-SHA256 under a key derived from the token (changing the token ends every session),
  ``HttpOnly``, ``SameSite=Strict``, ``Path=/admin/``. Signing out records the nonce in
  Redis until the cookie would have expired, so a copied cookie dies with the sign-out.

A cookie session changes state only with the CSRF token (``X-CSRF-Token`` header or
``csrf`` form field; an HMAC of the session's nonce, so it is tied to that session) and an
``Origin`` (or ``Referer``) that is this host's. Every comparison of secrets is constant time.

Failed logins are counted per client address in Redis; ``ADMIN_MAX_FAILURES`` within
``ADMIN_LOCKOUT_SECONDS`` lock that address out (429) for the rest of the window, the
right token included. If Redis is down the count is skipped (with a warning): the token's
length already makes guessing hopeless, and the admin view must still open to show that
Redis is down.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from redis.exceptions import RedisError

from analytics.settings import Settings
from analytics.storage.projects import audit
from web.app_keys import PG_POOL, REDIS, SETTINGS, TRUSTED_PROXIES
from web.client import client_ip
from web.middleware import json_response

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
COOKIE = "sa_admin"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def admin_token(settings: Settings) -> str | None:
    """The token that opens the admin view, or None when the view is off."""
    token = settings.admin_token
    if token is None or len(token) < MIN_TOKEN_LENGTH:
        return None
    return token


def _key(token: str) -> bytes:
    return hashlib.sha256(b"sa-admin-session\0" + token.encode()).digest()


def _sign(token: str, message: str) -> str:
    return hmac.new(_key(token), message.encode(), hashlib.sha256).hexdigest()


def token_matches(token: str, offered: str) -> bool:
    """Constant-time comparison of an offered token with the admin token."""
    return hmac.compare_digest(token.encode(), offered.encode())


@dataclass(slots=True, frozen=True)
class Session:
    """A verified admin session (``nonce`` is None for a Bearer request)."""

    nonce: str | None
    expires: int

    @property
    def via_cookie(self) -> bool:
        return self.nonce is not None


def new_cookie(token: str, now: float, hours: float) -> tuple[str, Session]:
    """A fresh signed session cookie value and the session it stands for."""
    expires = int(now + hours * 3600)
    nonce = secrets.token_hex(16)
    body = f"{expires}.{nonce}"
    return f"{body}.{_sign(token, 'session:' + body)}", Session(nonce, expires)


def read_cookie(token: str, value: str | None, now: float) -> Session | None:
    """The session a cookie value stands for, if its signature holds and it has not expired."""
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    expires, nonce, signature = parts
    if not hmac.compare_digest(_sign(token, f"session:{expires}.{nonce}"), signature):
        return None
    if int(expires) <= now:
        return None
    return Session(nonce, int(expires))


def csrf_token(token: str, nonce: str) -> str:
    """The CSRF token of one cookie session."""
    return _sign(token, "csrf:" + nonce)


def csrf_ok(token: str, session: Session, offered: str | None) -> bool:
    """Whether ``offered`` is this session's CSRF token (Bearer requests need none)."""
    if session.nonce is None:
        return True
    return offered is not None and hmac.compare_digest(csrf_token(token, session.nonce), offered)


def same_origin(host: str | None, origin: str | None, referer: str | None) -> bool:
    """Whether a state-changing request came from a page of this host.

    ``Origin`` decides when present (``null`` is never ours); else ``Referer``; a request
    with neither is refused, since every browser sends one of them on a form post.
    """
    if not host:
        return False
    source = origin if origin is not None else referer
    if not source or source == "null":
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def _signed_out_key(settings: Settings, nonce: str) -> str:
    return f"{settings.stream_key}:admin:signed-out:{nonce}"


def _failures_key(settings: Settings, address: str) -> str:
    return f"{settings.stream_key}:admin:failures:{address}"


def not_found() -> web.Response:
    return json_response({"code": "not_found", "detail": "Not Found"}, 404)


def too_many(wait: int) -> web.Response:
    response = denied(f"too many failed sign-ins; try again in {wait} s", 429, "admin_locked_out")
    response.headers["Retry-After"] = str(wait)
    return response


def denied(detail: str, status: int = 401, code: str = "admin_login_required") -> web.Response:
    return json_response({"code": code, "detail": detail}, status)


async def current_session(request: web.Request) -> Session | web.Response:
    """The admin session of this request, or the answer to give instead (404/401/403)."""
    settings = request.app[SETTINGS]
    token = admin_token(settings)
    if token is None:
        return not_found()
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        # A Bearer request is a sign-in attempt of its own: locked out and counted alike.
        wait = await locked_out(request)
        if wait:
            return too_many(wait)
        if token_matches(token, header[7:].strip()):
            return Session(None, 0)
        await record_failure(request, "wrong bearer token")
        return denied("the admin token is wrong")
    session = read_cookie(token, request.cookies.get(COOKIE), time.time())
    if session is None:
        return denied("sign in at /admin/ with the admin token")
    assert session.nonce is not None
    try:
        if await request.app[REDIS].exists(_signed_out_key(settings, session.nonce)):
            return denied("this session was signed out")
    except (RedisError, OSError):
        log.warning("admin: Redis unreachable; signed-out sessions cannot be checked")
    if request.method not in SAFE_METHODS:
        if not same_origin(
            request.host, request.headers.get("Origin"), request.headers.get("Referer")
        ):
            return denied("cross-site request refused", 403, "csrf_origin")
        offered = request.headers.get(CSRF_HEADER)
        if offered is None and request.content_type == "application/x-www-form-urlencoded":
            offered = str((await request.post()).get("csrf", "")) or None
        if not csrf_ok(token, session, offered):
            return denied("missing or wrong CSRF token", 403, "csrf_token")
    return session


async def locked_out(request: web.Request) -> int:
    """Seconds this client must wait before trying again (0: it may try)."""
    settings = request.app[SETTINGS]
    key = _failures_key(settings, _address(request))
    try:
        count = await request.app[REDIS].get(key)
        if count is not None and int(count) >= settings.admin_max_failures:
            ttl = int(await request.app[REDIS].ttl(key))
            return max(1, ttl)
    except (RedisError, OSError):
        log.warning("admin: Redis unreachable; failed logins are not counted")
    return 0


async def record_failure(request: web.Request, reason: str) -> None:
    """Count a failed login for this client and write it to the audit log."""
    settings = request.app[SETTINGS]
    address = _address(request)
    key = _failures_key(settings, address)
    failures: int | None = None
    try:
        failures = int(await request.app[REDIS].incr(key))
        if failures == 1:
            # The window starts at the first failure; later ones do not extend it.
            await request.app[REDIS].expire(key, settings.admin_lockout_seconds)
    except (RedisError, OSError):
        log.warning("admin: Redis unreachable; failed login from %s not counted", address)
    await _audit(
        request, "admin_login_failed", {"ip": address, "reason": reason, "failures": failures}
    )


async def record_success(request: web.Request, via: str) -> None:
    """Clear the client's failure count and audit the sign-in."""
    settings = request.app[SETTINGS]
    address = _address(request)
    with contextlib.suppress(RedisError, OSError):  # else the count expires by itself
        await request.app[REDIS].delete(_failures_key(settings, address))
    await _audit(request, "admin_login", {"ip": address, "via": via})


async def sign_out(request: web.Request, session: Session) -> None:
    """Refuse this session's cookie from now until it would have expired."""
    if session.nonce is None:
        return
    settings = request.app[SETTINGS]
    remaining = max(1, session.expires - int(time.time()))
    await request.app[REDIS].set(_signed_out_key(settings, session.nonce), b"1", ex=remaining)
    await _audit(request, "admin_logout", {"ip": _address(request)})


async def _audit(request: web.Request, action: str, detail: dict[str, object]) -> None:
    """Write a sign-in record; a database outage is logged, never a reason to refuse the page
    (the health panel is how an operator learns that PostgreSQL is down)."""
    try:
        async with request.app[PG_POOL].acquire() as conn:
            await audit(conn, None, action, dict(detail))
    except Exception:
        log.exception("admin: could not write %s to the audit log: %s", action, detail)


def _address(request: web.Request) -> str:
    return client_ip(request, request.app[TRUSTED_PROXIES]) or "unknown"
