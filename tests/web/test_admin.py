"""The admin view over a real socket: off without ADMIN_TOKEN, sign-in, CSRF, lockout, actions.

The admin edge shares the session's stream, database and worker, so a replayed dead letter
goes through the real pipeline. It trusts 127.0.0.1 as a proxy: each test signs in from its
own ``X-Forwarded-For`` address, so one test's lockout never touches another's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from analytics.dev.broker import free_port
from analytics.dev.processes import WorkerProcess, analytics_command
from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.projects.policy import parse_value
from analytics.settings import Settings
from analytics.storage import projects
from tests.support.stack import auth, post, start_edge, wait_for

TOKEN = "admin-" + uuid.uuid4().hex  # 38 characters
URLS = [
    ("GET", "/admin/"),
    ("GET", "/admin/api/session"),
    ("GET", "/admin/api/health"),
    ("GET", "/admin/api/dead-letters"),
    ("POST", "/admin/api/dead-letters/replay"),
    ("POST", "/admin/api/dead-letters/1/discard"),
    ("GET", "/admin/api/projects"),
    ("POST", "/admin/api/projects"),
    ("POST", "/admin/api/projects/p/keys/public/rotate"),
    ("POST", "/admin/api/projects/p/keys/public/revoke"),
    ("POST", "/admin/api/projects/p/settings"),
    ("GET", "/admin/api/audit"),
    ("POST", "/admin/logout"),
]


@pytest.fixture(scope="module")
async def admin_edge(settings: Settings, db: asyncpg.Pool) -> AsyncIterator[str]:
    """An edge with the admin view on, on the session's stream and database."""
    admin_settings = settings.model_copy(
        update={
            "admin_token": TOKEN,
            "http_port": free_port(),
            "trusted_proxies": ("127.0.0.1/32",),
            "admin_max_failures": 3,
            # Short sessions: a sign-out's Redis record lives as long as the session would.
            "admin_session_hours": 0.1,
            "key_cache_seconds": 0.5,
        }
    )
    runner = await start_edge(admin_settings)
    yield f"http://127.0.0.1:{admin_settings.http_port}"
    await runner.cleanup()


def client_address() -> str:
    """A made-up client address of one test (through the trusted proxy)."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{n // 250 % 250}.{n // 62500 % 250 + 1}"


class Admin:
    """A browser-like admin client: its own cookie jar, address and CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.ip = client_address()
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    def headers(self, **extra: str) -> dict[str, str]:
        return {"X-Forwarded-For": self.ip, "Origin": self.base, **extra}

    async def login(self, token: str = TOKEN) -> aiohttp.ClientResponse:
        async with self.http.post(
            f"{self.base}/admin/login",
            data={"token": token},
            headers=self.headers(),
            allow_redirects=False,
        ) as resp:
            await resp.read()
        if resp.status == 303:
            info = await self.get("/admin/api/session")
            self.csrf = info[1]["csrf"]
        return resp

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}{path}", headers=self.headers()) as resp:
            return resp.status, await resp.json(content_type=None)

    async def post(self, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        hdrs = self.headers(**{"X-CSRF-Token": self.csrf, **headers})
        async with self.http.post(
            f"{self.base}{path}", data=orjson.dumps(body or {}), headers=hdrs
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def admin(admin_edge: str) -> AsyncIterator[Admin]:
    client = Admin(admin_edge)
    resp = await client.login()
    assert resp.status == 303
    yield client
    await client.close()


async def test_every_admin_url_is_404_without_the_token(
    http: aiohttp.ClientSession, edge: str
) -> None:
    for method, path in [*URLS, ("POST", "/admin/login")]:
        async with http.request(
            method, f"{edge}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as resp:
            assert resp.status == 404, (method, path)


async def test_a_short_token_leaves_the_view_off(
    settings: Settings, db: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    short = settings.model_copy(update={"admin_token": "too-short-15chr", "http_port": free_port()})
    runner = await start_edge(short)
    try:
        base = f"http://127.0.0.1:{short.http_port}"
        async with http.get(f"{base}/admin/", headers=auth("too-short-15chr")) as resp:
            assert resp.status == 404
    finally:
        await runner.cleanup()


async def test_every_admin_url_is_401_when_not_signed_in(
    http: aiohttp.ClientSession, admin_edge: str, project: projects.NewProject
) -> None:
    for method, path in URLS:
        async with http.request(method, f"{admin_edge}{path}") as resp:
            assert resp.status == 401, (method, path)
    # A project's private key is not the admin token.
    async with http.get(
        f"{admin_edge}/admin/api/projects",
        headers={**auth(project.private_key), "X-Forwarded-For": client_address()},
    ) as resp:
        assert resp.status == 401
    # The sign-in page itself is served (401, with its form).
    async with http.get(f"{admin_edge}/admin/") as resp:
        assert resp.status == 401
        assert 'action="/admin/login"' in await resp.text()


async def test_bearer_token_opens_the_api(http: aiohttp.ClientSession, admin_edge: str) -> None:
    headers = {**auth(TOKEN), "X-Forwarded-For": client_address()}
    async with http.get(f"{admin_edge}/admin/api/session", headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["via"] == "bearer"
    # Not ambient like a cookie, so it needs no CSRF token.
    async with http.post(
        f"{admin_edge}/admin/api/projects", json={"name": "via-bearer"}, headers=headers
    ) as resp:
        assert resp.status == 201
        assert (await resp.json())["public_key"].startswith("sa_")


async def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(admin_edge: str) -> None:
    client = Admin(admin_edge)
    try:
        resp = await client.login()
        assert resp.status == 303 and resp.headers["Location"] == "/admin/"
        cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin/" in cookie
        value = resp.cookies["sa_admin"].value
        status, info = await client.get("/admin/api/session")
        assert status == 200 and info["via"] == "cookie" and info["csrf"]
        async with client.http.get(f"{admin_edge}/admin/") as page:
            assert page.status == 200
            assert page.headers["X-Frame-Options"] == "DENY"
        status, _ = await client.post("/admin/logout")
        assert status == 200
    finally:
        await client.close()
    # The old cookie, replayed after the sign-out, opens nothing.
    # A forged cookie neither.
    forged = value.rsplit(".", 1)[0] + "." + "0" * 64
    for cookie in (value, forged):
        async with (
            aiohttp.ClientSession(cookies={"sa_admin": cookie}) as other,
            other.get(f"{admin_edge}/admin/api/session") as resp,
        ):
            assert resp.status == 401


async def test_failed_logins_lock_out_and_are_audited(admin_edge: str, db: asyncpg.Pool) -> None:
    client = Admin(admin_edge)
    try:
        for _ in range(3):  # admin_max_failures
            resp = await client.login("wrong-token-wrong-token")
            assert resp.status == 401
        resp = await client.login("wrong-token-wrong-token")
        assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
        # Locked out: the right token too, as form or Bearer, from that address.
        assert (await client.login()).status == 429
        async with client.http.get(
            f"{admin_edge}/admin/api/session", headers={**auth(TOKEN), **client.headers()}
        ) as bearer:
            assert bearer.status == 429
        # Another address is not locked out.
        other = Admin(admin_edge)
        try:
            assert (await other.login()).status == 303
        finally:
            await other.close()
    finally:
        await client.close()
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT detail FROM audit_log WHERE action = 'admin_login_failed'"
            " AND detail->>'ip' = $1 ORDER BY id",
            client.ip,
        )
    assert [orjson.loads(r["detail"])["failures"] for r in rows] == [1, 2, 3]


async def test_changes_need_the_csrf_token_and_our_origin(admin: Admin, db: asyncpg.Pool) -> None:
    name = f"csrf-{uuid.uuid4().hex[:6]}"
    status, body = await admin.post("/admin/api/projects", {"name": name}, **{"X-CSRF-Token": ""})
    assert status == 403 and body["code"] == "csrf_token"
    status, body = await admin.post(
        "/admin/api/projects", {"name": name}, **{"X-CSRF-Token": "0" * 64}
    )
    assert status == 403
    # A cross-site form post: right cookie (if the browser sent it), foreign Origin.
    async with admin.http.post(
        f"{admin.base}/admin/api/projects",
        data={"name": name, "csrf": admin.csrf},
        headers={"X-Forwarded-For": admin.ip, "Origin": "https://evil.example"},
    ) as resp:
        assert resp.status == 403
        assert (await resp.json())["code"] == "csrf_origin"
    async with admin.http.post(
        f"{admin.base}/admin/login",
        data={"token": TOKEN},
        headers={"X-Forwarded-For": admin.ip, "Origin": "https://evil.example"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 403
    async with db.acquire() as conn:
        assert not await conn.fetchval("SELECT count(*) FROM projects WHERE name = $1", name)
    status, _ = await admin.post("/admin/api/projects", {"name": name})
    assert status == 201


async def test_create_rotate_revoke_and_settings(
    admin: Admin, admin_edge: str, http: aiohttp.ClientSession, db: asyncpg.Pool
) -> None:
    status, created = await admin.post("/admin/api/projects", {"name": "admin-made"})
    assert status == 201
    pid = created["project_id"]
    event = {"event_name": "signup", "event_source": "web"}
    assert (await post(http, f"{admin_edge}/api/events/ingest/", event, created["public_key"]))[
        0
    ] == 202
    status, listed = await admin.get("/admin/api/projects")
    mine = next(p for p in listed["results"] if p["project_id"] == pid)
    assert mine["name"] == "admin-made" and len([k for k in mine["keys"] if k["live"]]) == 2
    assert all(created["public_key"] not in orjson.dumps(k).decode() for k in mine["keys"])

    # Rotate with no grace: the old public key stops at once (within the key cache).
    status, rotated = await admin.post(
        f"/admin/api/projects/{pid}/keys/public/rotate", {"grace_hours": 0}
    )
    assert status == 200 and rotated["old_keys"] == 1

    async def old_refused() -> bool:
        code, _ = await post(http, f"{admin_edge}/api/events/ingest/", event, created["public_key"])
        return code == 401

    await wait_for(old_refused, timeout=10)
    code, _ = await post(http, f"{admin_edge}/api/events/ingest/", event, rotated["key"])
    assert code == 202

    status, revoked = await admin.post(f"/admin/api/projects/{pid}/keys/private/revoke")
    assert status == 200 and revoked["revoked"] == 1

    # Settings: the same validation and message as set-setting.
    status, bad = await admin.post(
        f"/admin/api/projects/{pid}/settings", {"name": "retention_days", "value": "0"}
    )
    with pytest.raises(Exception) as cli_error:
        parse_value("retention_days", "0", source=False)
    assert status == 400 and bad["detail"] == cli_error.value.detail  # type: ignore[attr-defined]
    assert bad["field"] == "retention_days"
    status, bad = await admin.post(
        f"/admin/api/projects/{pid}/settings", {"name": "no_such", "value": "1"}
    )
    assert status == 400 and "unknown setting 'no_such'" in bad["detail"]
    status, changed = await admin.post(
        f"/admin/api/projects/{pid}/settings", {"name": "retention_days", "value": "30"}
    )
    assert status == 200 and changed == {
        "setting": "retention_days", "source": None, "old": None, "new": 30,
    }  # fmt: skip
    status, changed = await admin.post(
        f"/admin/api/projects/{pid}/settings", {"name": "retention_days", "value": "45"}
    )
    assert changed["old"] == 30 and changed["new"] == 45
    async with db.acquire() as conn:
        stored = await projects.stored_settings(conn, pid, None)
    assert stored["retention_days"] == 45

    status, audit = await admin.get(f"/admin/api/audit?project={pid}")
    assert status == 200
    actions = [e["action"] for e in audit["results"]]
    assert {e["project_id"] for e in audit["results"]} == {pid}
    assert actions[:4] == ["settings_changed", "settings_changed", "key_revoked", "key_rotated"]
    last = audit["results"][0]["detail"]
    assert last["old"] == 30 and last["new"] == 45 and last["actor"] == "admin"


async def dead_letter(conn: asyncpg.Connection, project: projects.NewProject, event_id: str) -> int:
    """A dead letter as the raw sink writes one, holding an event the database would take."""
    source_id = await projects.resolve_source(conn, project.project_id, "web")
    now = to_us(datetime.now(UTC))
    row = EventRow(
        project.project_id, event_id, source_id, "web", "u1", "s1", "page_view", "{}", now,
        1.0, now, None, None,
    )  # fmt: skip
    letter: int = await conn.fetchval(
        "INSERT INTO dead_letters (project_id, event_id, error, payload)"
        " VALUES ($1, $2, $3, $4) RETURNING id",
        project.project_id,
        event_id,
        "DataError: a test's refusal",
        orjson.dumps(tuple(row)).decode(),
    )
    return letter


async def test_dead_letters_replay_into_events_and_discard(
    admin: Admin,
    db: asyncpg.Pool,
    worker: WorkerProcess,
    project: projects.NewProject,
) -> None:
    async with db.acquire() as conn:
        replayed = await dead_letter(conn, project, "dl-replay")
        dropped = await dead_letter(conn, project, "dl-discard")
    status, listed = await admin.get("/admin/api/dead-letters")
    assert status == 200
    mine = {d["id"]: d for d in listed["results"] if d["project_id"] == project.project_id}
    assert set(mine) == {replayed, dropped}
    assert mine[replayed]["error"] == "DataError: a test's refusal"
    assert "dl-replay" in mine[replayed]["record"]

    status, body = await admin.post("/admin/api/dead-letters/replay", {"ids": [replayed]})
    assert status == 200 and body["replayed"] == [replayed]
    status, body = await admin.post(f"/admin/api/dead-letters/{dropped}/discard")
    assert status == 200
    status, body = await admin.post(f"/admin/api/dead-letters/{dropped}/discard")
    assert status == 404  # only an open one can be discarded

    async def stored() -> int | None:
        async with db.acquire() as conn:
            n: int = await conn.fetchval(
                "SELECT count(*) FROM events WHERE project_id = $1 AND event_id = 'dl-replay'",
                project.project_id,
            )
        return n or None

    assert await wait_for(stored, timeout=60) == 1
    async with db.acquire() as conn:
        states = dict(
            await conn.fetch(
                "SELECT event_id, CASE WHEN replayed_at IS NOT NULL THEN 'replayed'"
                " WHEN discarded_at IS NOT NULL THEN 'discarded' END"
                " FROM dead_letters WHERE project_id = $1",
                project.project_id,
            )
        )
        assert not await conn.fetchval(
            "SELECT count(*) FROM events WHERE project_id = $1 AND event_id = 'dl-discard'",
            project.project_id,
        )
    assert states == {"dl-replay": "replayed", "dl-discard": "discarded"}
    status, listed = await admin.get("/admin/api/dead-letters")
    assert not {d["id"] for d in listed["results"]} & {replayed, dropped}
    status, audit = await admin.get(f"/admin/api/audit?project={project.project_id}")
    actions = {e["action"]: e["detail"] for e in audit["results"]}
    assert actions["dead_letter_replayed"]["dead_letter"] == replayed
    assert actions["dead_letter_discarded"]["actor"] == "admin"


async def test_dead_letter_commands(
    settings: Settings, db: asyncpg.Pool, worker: WorkerProcess, project: projects.NewProject
) -> None:
    async with db.acquire() as conn:
        letter = await dead_letter(conn, project, "dl-cli")
        other = await dead_letter(conn, project, "dl-cli-discard")

    def run(*args: str) -> Any:
        result = subprocess.run(
            analytics_command("--json", *args),
            env={**os.environ, **settings.as_environ()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return orjson.loads(result.stdout.strip().splitlines()[-1])

    listed = await asyncio.to_thread(run, "list-dead-letters")
    assert {letter, other} <= {d["id"] for d in listed}
    assert (await asyncio.to_thread(run, "replay-dead-letters", str(letter)))["replayed"] == [
        letter
    ]
    assert (await asyncio.to_thread(run, "discard-dead-letter", str(other)))["discarded"] == other
    listed = await asyncio.to_thread(run, "list-dead-letters")
    assert not {letter, other} & {d["id"] for d in listed}

    async def stored() -> bool:
        async with db.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM events WHERE project_id = $1 AND event_id = 'dl-cli'",
                    project.project_id,
                )
            )

    assert await wait_for(stored, timeout=60)


async def test_health_is_event_status(admin: Admin, worker: WorkerProcess) -> None:
    status, health = await admin.get("/admin/api/health")
    assert status == 200
    names = {c["name"] for c in health["checks"]}
    assert names >= {"postgresql", "redis", "kafka", "buffer", "kafka_lag", "flush", "freshness"}
    assert health["status"] in {"OK", "WARN", "FAIL"}
    assert health["kafka"]["partitions"] and "depth" in health["buffer"]
    assert any(w["ok"] for w in health["workers"])
    assert isinstance(health["edge"]["rejections"], dict)
