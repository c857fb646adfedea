"""The admin view: ``/admin/`` (one static page) and its JSON API under ``/admin/api/``.

Enabled only with ``ADMIN_TOKEN`` (``web.admin_auth``: sign-in, session cookie, CSRF,
lockout). What it offers is the operator commands' own code, not a second copy:

* health: ``analytics.ops.status.collect`` and its ``evaluate`` (what ``event-status``
  prints), plus this edge's ingest and rejection counters and the workers' processing lag;
* dead letters: ``analytics.ops.dead_letters`` (as ``list-/replay-dead-letters``,
  ``discard-dead-letter``);
* projects: ``analytics.storage.projects`` (``create-project``, ``rotate-key``,
  ``revoke-key``, ``set-setting`` through ``change_setting``) and the audit log.

Every change is audited with ``actor: "admin"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from importlib import resources
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from analytics import metrics
from analytics.errors import ConfigError
from analytics.ops import dead_letters, status
from analytics.projects.api_keys import KeyKind
from analytics.projects.policy import project_settings
from analytics.storage import overview, projects
from web import admin_auth
from web.app_keys import PG_POOL, REDIS, SETTINGS
from web.middleware import json_response

_PAGE = resources.files("web") / "static" / "admin.html"
HTTP = web.AppKey("admin_http", aiohttp.ClientSession)
SESSION = web.RequestKey("admin_session", admin_auth.Session)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def admin_only(handler: Handler) -> Handler:
    """Answer 404/401/403/429 unless the request is an admin's (CSRF-checked for changes)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        session = await admin_auth.current_session(request)
        if isinstance(session, web.Response):
            return session
        request[SESSION] = session
        try:
            return await handler(request)
        except ConfigError as error:
            # An operator's bad value: 400 with set-setting's message. Answered here, not
            # by the error middleware, so it is not counted as an ingest rejection.
            return json_response(error.to_json(), 400)

    return guarded


def _page(status_code: int) -> web.Response:
    response = web.Response(
        body=_PAGE.read_bytes(), status=status_code, content_type="text/html", charset="utf-8"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline';"
        " frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def admin_page(request: web.Request) -> web.Response:
    """The page: 200 for an admin, 401 (the same page, showing its sign-in form) otherwise."""
    session = await admin_auth.current_session(request)
    if isinstance(session, web.Response):
        if session.status == 404:
            return session
        return _page(401)
    return _page(200)


async def login(request: web.Request) -> web.StreamResponse:
    """Sign in with the token (form field ``token``); sets the session cookie."""
    settings = request.app[SETTINGS]
    token = admin_auth.admin_token(settings)
    if token is None:
        return admin_auth.not_found()
    if not admin_auth.same_origin(
        request.host, request.headers.get("Origin"), request.headers.get("Referer")
    ):
        return admin_auth.denied("cross-site request refused", 403, "csrf_origin")
    wait = await admin_auth.locked_out(request)
    if wait:
        return admin_auth.too_many(wait)
    offered = str((await request.post()).get("token", ""))
    if not admin_auth.token_matches(token, offered):
        await admin_auth.record_failure(request, "wrong token")
        return admin_auth.denied("the admin token is wrong")
    await admin_auth.record_success(request, "form")
    value, session = admin_auth.new_cookie(token, time.time(), settings.admin_session_hours)
    assert session.nonce is not None
    body = {"signed_in": True, "csrf": admin_auth.csrf_token(token, session.nonce)}
    response: web.StreamResponse
    if "application/json" in request.headers.get("Accept", ""):
        response = json_response(body)
    else:
        response = web.Response(status=303, headers={"Location": "/admin/"})
    response.set_cookie(
        admin_auth.COOKIE,
        value,
        max_age=int(settings.admin_session_hours * 3600),
        path="/admin/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


@admin_only
async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out: the cookie is cleared here and refused from now on."""
    await admin_auth.sign_out(request, request[SESSION])
    response = json_response({"signed_in": False})
    response.del_cookie(admin_auth.COOKIE, path="/admin/")
    return response


@admin_only
async def session_info(request: web.Request) -> web.Response:
    """Who is signed in and the CSRF token the page sends with every change."""
    session = request[SESSION]
    token = admin_auth.admin_token(request.app[SETTINGS])
    assert token is not None
    return json_response(
        {
            "via": "cookie" if session.via_cookie else "bearer",
            "expires": session.expires or None,
            "csrf": admin_auth.csrf_token(token, session.nonce) if session.nonce else None,
        }
    )


def _edge_counters() -> dict[str, Any]:
    """This edge's (all edges' in multiprocess mode) ingest counters, from ``/metrics``."""
    text = metrics.exposition()[0].decode()
    rejections: dict[str, float] = {}
    events: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sa_ingest_rejections_total":
                reason = sample.labels.get("reason", "")
                rejections[reason] = rejections.get(reason, 0.0) + sample.value
            elif sample.name == "sa_ingest_events_total":
                outcome = sample.labels.get("outcome", "")
                events[outcome] = events.get(outcome, 0.0) + sample.value
    return {"at": time.time(), "rejections": rejections, "events": events}


async def _worker_figures(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Processing lag and errors a worker reports on its ``/metrics`` (``ok`` False: no answer)."""
    try:
        async with asyncio.timeout(2), session.get(f"{url}/metrics") as resp:
            if resp.status != 200:
                return {"url": url, "ok": False}
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return {"url": url, "ok": False}
    figures: dict[str, Any] = {"url": url, "ok": True, "errors": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sa_processing_lag_seconds":
                figures["processing_lag_seconds"] = sample.value
            elif sample.name == "sa_errors_total":
                figures["errors"] += sample.value
            elif sample.name == "sa_last_flush_timestamp_seconds" and sample.value:
                figures["last_flush_age_seconds"] = max(0.0, time.time() - sample.value)
    return figures


class HealthCache:
    """One health report in flight at a time, reused for ``HEALTH_REUSE_SECONDS``.

    ``collect`` opens its own Redis, Kafka and PostgreSQL connections (as ``event-status``
    does); several open admin pages refreshing every 3 s share one report instead.
    """

    __slots__ = ("at", "task")

    def __init__(self) -> None:
        self.at = 0.0
        self.task: asyncio.Task[dict[str, Any]] | None = None


HEALTH_REUSE_SECONDS = 2.0
HEALTH = web.AppKey("admin_health", HealthCache)


async def _health_report(app: web.Application) -> dict[str, Any]:
    settings = app[SETTINGS]
    urls = settings.worker_urls or (f"http://127.0.0.1:{settings.worker_web_port}",)
    report, workers = await asyncio.gather(
        status.collect(settings, limit=4.0),
        asyncio.gather(*(_worker_figures(app[HTTP], url) for url in urls)),
    )
    body: dict[str, Any] = report.as_dict()
    body["workers"] = list(workers)
    try:
        async with app[PG_POOL].acquire() as conn:
            body["dead_letters_open"] = await dead_letters.count_open(conn)
    except Exception:  # the postgresql check already says why
        body["dead_letters_open"] = None
    return body


@admin_only
async def health(request: web.Request) -> web.Response:
    """``event-status``'s report (same checks, same code) and the live figures beside it."""
    cache = request.app[HEALTH]
    now = time.monotonic()
    if cache.task is None or (cache.task.done() and now - cache.at > HEALTH_REUSE_SECONDS):
        cache.at = now
        cache.task = asyncio.create_task(_health_report(request.app))
    body = dict(await asyncio.shield(cache.task))
    body["edge"] = _edge_counters()
    return web.Response(body=orjson.dumps(body, default=str), content_type="application/json")


@admin_only
async def list_dead_letters(request: web.Request) -> web.Response:
    """Open dead letters (``?all=1``: replayed and discarded too), newest first."""
    include = request.query.get("all") in ("1", "true")
    async with request.app[PG_POOL].acquire() as conn:
        letters = await dead_letters.list_dead_letters(conn, include_closed=include, limit=200)
    return json_response({"results": [d.as_dict() for d in letters]})


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise ConfigError("the body is not JSON", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise ConfigError("the body must be a JSON object", code="invalid_json")
    return body


@admin_only
async def replay_dead_letters(request: web.Request) -> web.Response:
    """Replay ``{"ids": [..]}`` or ``{"all": true}`` through the pipeline."""
    body = await _json_body(request)
    ids = body.get("ids")
    if body.get("all") is True:
        chosen: list[int] | None = None
    elif isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids):
        chosen = ids
    else:
        raise ConfigError('give {"ids": [id, …]} or {"all": true}', field="ids")
    settings = request.app[SETTINGS]
    async with request.app[PG_POOL].acquire() as conn:
        done = await dead_letters.replay(
            conn, request.app[REDIS], settings.stream_key, chosen, actor="admin"
        )
    return json_response({"replayed": done})


@admin_only
async def discard_dead_letter(request: web.Request) -> web.Response:
    """Discard one dead letter (kept, marked, audited)."""
    letter = _int(request.match_info["id"])
    async with request.app[PG_POOL].acquire() as conn:
        done = await dead_letters.discard(conn, letter, actor="admin")
    if not done:
        return json_response(
            {"code": "not_open", "detail": f"dead letter {letter} is not open"}, 404
        )
    return json_response({"discarded": letter})


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an id", code="invalid_id") from exc


@admin_only
async def list_projects(request: web.Request) -> web.Response:
    """Every project with its figures, sources, keys (hints only) and effective settings."""
    async with request.app[PG_POOL].acquire() as conn:
        found = await overview.project_overviews(conn)
        keys = {p.project_id: await overview.project_keys(conn, p.project_id) for p in found}
    results = []
    for p in found:
        item = p.as_dict()
        item["effective_settings"] = project_settings(p.settings).model_dump(mode="json")
        item["keys"] = [k.as_dict() for k in keys[p.project_id]]
        results.append(item)
    return json_response({"results": results})


@admin_only
async def create_project(request: web.Request) -> web.Response:
    """Create a project; its keys are in this answer and never again."""
    name = (await _json_body(request)).get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ConfigError("name must be 1-200 characters", field="name")
    async with request.app[PG_POOL].acquire() as conn:
        created = await projects.create_project(conn, name.strip())
    return json_response(
        {
            "project_id": created.project_id,
            "name": created.name,
            "public_key": created.public_key,
            "private_key": created.private_key,
        },
        201,
    )


def _kind(text: str) -> KeyKind:
    try:
        return KeyKind(text)
    except ValueError as exc:
        raise ConfigError("kind must be public or private", field="kind") from exc


async def _known(request: web.Request, conn: Any) -> str:
    project_id = request.match_info["project_id"]
    if not await projects.project_exists(conn, project_id):
        raise web.HTTPNotFound(reason=f"unknown project {project_id!r}")
    return project_id


@admin_only
async def rotate_key(request: web.Request) -> web.Response:
    """A new key of the kind; the old ones work for ``grace_hours`` more (default 24)."""
    kind = _kind(request.match_info["kind"])
    grace = (await _json_body(request)).get("grace_hours", 24)
    if not isinstance(grace, int | float) or isinstance(grace, bool) or not 0 <= grace <= 720:
        raise ConfigError("grace_hours must be a number from 0 to 720", field="grace_hours")
    async with request.app[PG_POOL].acquire() as conn:
        project_id = await _known(request, conn)
        key, old = await projects.rotate_key(conn, project_id, kind, timedelta(hours=grace))
    return json_response({"kind": kind.value, "key": key, "old_keys": old, "grace_hours": grace})


@admin_only
async def revoke_key(request: web.Request) -> web.Response:
    """Revoke every live key of the kind now."""
    kind = _kind(request.match_info["kind"])
    async with request.app[PG_POOL].acquire() as conn:
        project_id = await _known(request, conn)
        count = await projects.revoke_keys(conn, project_id, kind)
    return json_response({"kind": kind.value, "revoked": count})


@admin_only
async def change_setting(request: web.Request) -> web.Response:
    """``{"name", "value", "source"?}``: ``value`` is text exactly as ``set-setting`` takes it."""
    body = await _json_body(request)
    name, value, source = body.get("name"), body.get("value"), body.get("source") or None
    if not isinstance(name, str) or not isinstance(value, str):
        raise ConfigError("name and value must be strings (value as set-setting takes it)")
    if source is not None and not isinstance(source, str):
        raise ConfigError("source must be a string", field="source")
    async with request.app[PG_POOL].acquire() as conn:
        project_id = await _known(request, conn)
        change = await projects.change_setting(conn, project_id, name, value, source, actor="admin")
    return json_response(
        {"setting": change.name, "source": change.source, "old": change.old, "new": change.new}
    )


@admin_only
async def audit_log(request: web.Request) -> web.Response:
    """The newest audit rows (``?project=ID`` for one project's)."""
    project_id = request.query.get("project") or None
    async with request.app[PG_POOL].acquire() as conn:
        entries = await overview.audit_entries(conn, project_id, limit=200)
    return json_response({"results": [e.as_dict() for e in entries]})


async def _client(app: web.Application) -> Any:
    session = aiohttp.ClientSession()
    app[HTTP] = session
    app[HEALTH] = HealthCache()
    try:
        yield
    finally:
        task = app[HEALTH].task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await session.close()


def add_routes(app: web.Application) -> None:
    """Register ``/admin/`` and its API (each answers 404 while ``ADMIN_TOKEN`` is unset)."""
    app.cleanup_ctx.append(_client)
    r = app.router
    r.add_get("/admin/", admin_page)
    r.add_get("/admin", _to_slash)
    r.add_post("/admin/login", login)
    r.add_post("/admin/logout", logout)
    r.add_get("/admin/api/session", session_info)
    r.add_get("/admin/api/health", health)
    r.add_get("/admin/api/dead-letters", list_dead_letters)
    r.add_post("/admin/api/dead-letters/replay", replay_dead_letters)
    r.add_post("/admin/api/dead-letters/{id}/discard", discard_dead_letter)
    r.add_get("/admin/api/projects", list_projects)
    r.add_post("/admin/api/projects", create_project)
    r.add_post("/admin/api/projects/{project_id}/keys/{kind}/rotate", rotate_key)
    r.add_post("/admin/api/projects/{project_id}/keys/{kind}/revoke", revoke_key)
    r.add_post("/admin/api/projects/{project_id}/settings", change_setting)
    r.add_get("/admin/api/audit", audit_log)


async def _to_slash(request: web.Request) -> web.Response:
    if admin_auth.admin_token(request.app[SETTINGS]) is None:
        return admin_auth.not_found()
    raise web.HTTPFound("/admin/")
