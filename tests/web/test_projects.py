"""Projects, keys and settings on a running edge: scopes, rotation, sampling, limits, CORS."""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Any

import aiohttp
import asyncpg
import orjson
from yarl import URL

from analytics.dev.processes import analytics_command
from analytics.projects.sampling import user_fraction
from analytics.settings import Settings
from analytics.storage.projects import NewProject
from tests.support.stack import post, wait_for


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        analytics_command("--json", *args),
        env={**os.environ, **settings.as_environ()},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def acli(settings: Settings, *args: str) -> Any:
    result = await asyncio.to_thread(cli, settings, *args)
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout.strip().splitlines()[-1])


EVENT = {"event_name": "e", "event_source": "web"}


async def status_of(http: aiohttp.ClientSession, edge: str, key: str) -> int:
    status, _ = await post(http, f"{edge}/api/events/ingest/", EVENT, key)
    return status


async def test_create_project_json_and_keys_work(
    http: aiohttp.ClientSession, edge: str, settings: Settings
) -> None:
    created = await acli(settings, "create-project", "cli-made")
    assert set(created) >= {"project_id", "public_key", "private_key"}
    assert created["public_key"].startswith("sa_") and not created["public_key"].startswith(
        "sa_priv_"
    )
    assert created["private_key"].startswith("sa_priv_")
    assert await status_of(http, edge, created["public_key"]) == 202
    listed = await acli(settings, "list-projects")
    assert created["project_id"] in {p["project_id"] for p in listed}


async def test_keys_are_stored_only_as_hashes(db: asyncpg.Pool, project: NewProject) -> None:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM api_keys WHERE project_id = $1", project.project_id)
    dumped = repr([dict(r) for r in rows])
    assert project.public_key not in dumped and project.private_key not in dumped


async def test_rotation_keeps_old_key_for_grace_and_revocation_is_quick(
    http: aiohttp.ClientSession, edge: str, settings: Settings, project: NewProject
) -> None:
    assert await status_of(http, edge, project.public_key) == 202
    rotated = await acli(settings, "rotate-key", project.project_id, "public", "--grace-hours", "1")
    new_key = rotated["key"]
    assert new_key.startswith("sa_") and new_key != project.public_key
    assert await status_of(http, edge, new_key) == 202
    assert await status_of(http, edge, project.public_key) == 202  # still in its grace period
    # A zero grace period retires the previous keys at once (within the cache time).
    again = await acli(settings, "rotate-key", project.project_id, "public", "--grace-hours", "0")
    await wait_for(lambda: _is(http, edge, new_key, 401), timeout=7)
    assert await status_of(http, edge, again["key"]) == 202
    revoked = await acli(settings, "revoke-key", project.project_id, "public")
    assert revoked["revoked"] >= 1
    await wait_for(lambda: _is(http, edge, again["key"], 401), timeout=7)


async def _is(http: aiohttp.ClientSession, edge: str, key: str, status: int) -> bool:
    return await status_of(http, edge, key) == status


async def test_settings_validation_errors_are_clear(
    settings: Settings, project: NewProject
) -> None:
    bad = await asyncio.to_thread(
        cli, settings, "set-setting", project.project_id, "rate_limit_per_minute", "0"
    )
    assert bad.returncode != 0 and "rate_limit_per_minute" in bad.stderr
    unknown = await asyncio.to_thread(
        cli, settings, "set-setting", project.project_id, "colour", "1"
    )
    assert unknown.returncode != 0 and "unknown setting" in unknown.stderr
    sampling = await asyncio.to_thread(
        cli, settings, "set-setting", project.project_id, "sampling", '{"strategy": "time_window"}'
    )
    assert sampling.returncode != 0 and "window" in sampling.stderr
    ok = await acli(settings, "set-setting", project.project_id, "retention_days", "30")
    assert ok["value"] == 30
    shown = await acli(settings, "show-settings", project.project_id)
    assert shown["settings"]["retention_days"] == 30 and shown["set"] == ["retention_days"]
    assert shown["settings"]["session_window_minutes"] == 60


async def test_deterministic_sampling_keeps_the_same_users(
    http: aiohttp.ClientSession,
    edge: str,
    settings: Settings,
    project: NewProject,
    db: asyncpg.Pool,
) -> None:
    await acli(
        settings,
        "set-setting",
        project.project_id,
        "sampling",
        '{"strategy": "deterministic", "rate": 0.5}',
    )
    await asyncio.sleep(settings.key_cache_seconds + 0.5)
    users = [f"user-{i}" for i in range(200)]
    events = [
        {"event_name": "e", "event_source": "web", "user_id": u, "event_id": f"d-{u}"}
        for u in users
    ]
    status, body = await post(
        http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
    )
    assert status == 202
    kept = {users[i] for i in range(200)} - {users[r["index"]] for r in body["results"]}
    assert kept == {u for u in users if user_fraction(u, project.project_id) < 0.5}
    assert body["accepted"] == len(kept) and body["sampled"] == 200 - len(kept)
    assert all(r["status"] == "sampled" for r in body["results"])
    status, single = await post(
        http,
        f"{edge}/api/events/ingest/",
        {"event_name": "e", "event_source": "web", "user_id": sorted(set(users) - kept)[0]},
        project.public_key,
    )
    assert (status, single) == (202, {"status": "accepted", "sampled": True})


async def test_source_override_and_time_window_sampling(
    http: aiohttp.ClientSession,
    edge: str,
    settings: Settings,
    project: NewProject,
    worker: Any,
    db: asyncpg.Pool,
) -> None:
    # Keep only minutes 0-14 of each hour for the "batch" source: rate 0.25.
    await acli(
        settings,
        "set-setting",
        project.project_id,
        "sampling",
        '{"strategy": "time_window", "windows": [{"start_minute": 0, "end_minute": 15}]}',
        "--source",
        "batch",
    )
    await asyncio.sleep(settings.key_cache_seconds + 0.5)
    events = [
        {
            "event_name": "e",
            "event_source": "batch",
            "event_id": "in",
            "timestamp": "2026-01-01T10:05:00Z",
        },
        {
            "event_name": "e",
            "event_source": "batch",
            "event_id": "out",
            "timestamp": "2026-01-01T10:35:00Z",
        },
        {
            "event_name": "e",
            "event_source": "web",
            "event_id": "web",
            "timestamp": "2026-01-01T10:35:00Z",
        },
    ]
    status, body = await post(
        http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
    )
    assert status == 202 and body["accepted"] == 2 and body["sampled"] == 1
    assert body["results"][0]["index"] == 1

    async def rows() -> list[asyncpg.Record] | None:
        async with db.acquire() as conn:
            found = await conn.fetch(
                "SELECT event_id, sample_rate FROM events WHERE project_id = $1 ORDER BY event_id",
                project.project_id,
            )
        return found if len(found) == 2 else None

    found = await wait_for(rows)
    assert {r["event_id"]: r["sample_rate"] for r in found} == {"in": 0.25, "web": 1.0}

    async def estimated() -> float | None:
        async with db.acquire() as conn:
            value = await conn.fetchval(
                "SELECT estimated_count FROM agg_daily"
                " WHERE project_id = $1 AND event_source = 'batch'",
                project.project_id,
            )
        return value

    assert await wait_for(estimated) == 4.0


async def test_project_rate_limit_answers_429_with_retry_after(
    http: aiohttp.ClientSession,
    edge: str,
    settings: Settings,
    project: NewProject,
    db: asyncpg.Pool,
) -> None:
    await acli(settings, "set-setting", project.project_id, "rate_limit_per_minute", "5")
    await asyncio.sleep(settings.key_cache_seconds + 0.5)
    statuses = []
    for _ in range(8):
        async with http.post(
            f"{edge}/api/events/ingest/",
            json=EVENT,
            headers={"Authorization": f"Bearer {project.public_key}"},
        ) as resp:
            statuses.append(resp.status)
            if resp.status == 429:
                body = await resp.json()
                assert body["code"] == "rate_limited"
                assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert statuses.count(202) == 5 and statuses.count(429) == 3
    # A batch that would cross the limit is refused whole: nothing half-accepted.
    status, body = await post(
        http, f"{edge}/api/events/batch/", {"events": [EVENT] * 3}, project.public_key
    )
    assert status == 429


async def test_daily_quota(
    http: aiohttp.ClientSession, edge: str, settings: Settings, project: NewProject
) -> None:
    await acli(settings, "set-setting", project.project_id, "daily_quota", "10")
    await asyncio.sleep(settings.key_cache_seconds + 0.5)
    status, _ = await post(
        http, f"{edge}/api/events/batch/", {"events": [EVENT] * 10}, project.public_key
    )
    assert status == 202
    status, body = await post(http, f"{edge}/api/events/ingest/", EVENT, project.public_key)
    assert (status, body["code"]) == (429, "quota_exceeded")


async def test_cors_allowlist_preflight_and_cookie(
    http: aiohttp.ClientSession,
    edge: str,
    settings: Settings,
    project: NewProject,
    db: asyncpg.Pool,
    worker: Any,
) -> None:
    await acli(
        settings, "set-setting", project.project_id, "cors_origins", '["https://shop.example"]'
    )
    await asyncio.sleep(settings.key_cache_seconds + 0.5)
    async with http.options(
        f"{edge}/api/events/ingest/",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    ) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    status, body = await post(
        http, f"{edge}/api/events/ingest/", EVENT, project.public_key, Origin="https://evil.example"
    )
    assert (status, body["code"], body["field"]) == (403, "origin_not_allowed", "Origin")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        uids = []
        for i in range(2):
            async with browser.post(
                f"{edge}/api/events/ingest/",
                data=orjson.dumps(
                    {
                        "api_key": project.public_key,
                        "event_name": "b",
                        "event_source": "web",
                        "event_id": f"browser-{i}",
                    }
                ),
                headers={"Content-Type": "text/plain", "Origin": "https://shop.example"},
            ) as resp:
                assert resp.status == 202
                assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
                if i == 0:
                    cookie = resp.cookies["sa_uid"]
                    assert cookie["samesite"] == "Lax" and cookie["httponly"]
                morsel = jar.filter_cookies(URL(edge)).get("sa_uid")
                assert morsel is not None
                uids.append(morsel.value)
    assert uids[0] == uids[1]  # the browser kept its id; no second cookie was issued

    async def users() -> set[str] | None:
        async with db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT user_id FROM events WHERE project_id = $1 AND event_name = 'b'",
                project.project_id,
            )
        return {r["user_id"] for r in rows} if len(rows) == 2 else None

    found = await wait_for(users)
    assert found == {uids[0]}  # the cookie's id is the user_id of both events


async def test_isolation_between_projects(
    http: aiohttp.ClientSession,
    edge: str,
    settings: Settings,
    db: asyncpg.Pool,
    project: NewProject,
    worker: Any,
) -> None:
    other = await acli(settings, "create-project", "other")
    await acli(settings, "set-setting", other["project_id"], "rate_limit_per_minute", "1")
    await asyncio.sleep(settings.key_cache_seconds + 0.5)
    # Project B's settings apply to B only.
    assert [await status_of(http, edge, other["public_key"]) for _ in range(2)] == [202, 429]
    for _ in range(3):
        assert await status_of(http, edge, project.public_key) == 202
    # A private key can never ingest.
    status, body = await post(http, f"{edge}/api/events/ingest/", EVENT, other["private_key"])
    assert (status, body["code"]) == (403, "private_key_not_allowed")
    # Each key's events land in its own project, and B's private key never reads A's data.
    async with db.acquire() as conn:
        await wait_for(lambda: _events_are(conn, project.project_id, 3), timeout=30)
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM events WHERE project_id = $1", other["project_id"]
            )
            <= 1
        )
    async with http.get(
        f"{edge}/api/events/query/", headers={"Authorization": f"Bearer {other['private_key']}"}
    ) as resp:
        page = await resp.json()
    assert resp.status == 200
    assert all(e["project_id"] == other["project_id"] for e in page["results"])


async def _events_are(conn: Any, project_id: str, n: int) -> bool:
    count = await conn.fetchval("SELECT count(*) FROM events WHERE project_id = $1", project_id)
    return bool(count == n)


async def test_audit_log_records_key_and_settings_changes(
    settings: Settings, project: NewProject, db: asyncpg.Pool
) -> None:
    await acli(settings, "set-setting", project.project_id, "session_window_minutes", "30")
    await acli(settings, "rotate-key", project.project_id, "private")
    async with db.acquire() as conn:
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE project_id = $1 ORDER BY id", project.project_id
            )
        ]
    assert actions[0] == "project_created"
    assert "settings_changed" in actions and "key_rotated" in actions


async def test_random_sampling_keeps_the_rate_within_bounds(
    http: aiohttp.ClientSession, edge: str, settings: Settings, project: NewProject
) -> None:
    await acli(
        settings,
        "set-setting",
        project.project_id,
        "sampling",
        '{"strategy": "random", "rate": 0.3}',
    )
    await asyncio.sleep(settings.key_cache_seconds + 0.5)
    kept = 0
    for _ in range(10):
        status, body = await post(
            http, f"{edge}/api/events/batch/", {"events": [EVENT] * 1000}, project.public_key
        )
        assert status == 202
        kept += body["accepted"]
    # Binomial(10,000, 0.3): sigma = 45.8; four sigmas either side.
    assert abs(kept - 3000) <= 184, kept


async def test_deterministic_sampling_is_the_same_on_two_edges(
    http: aiohttp.ClientSession, edge: str, settings: Settings, project: NewProject
) -> None:
    from analytics.dev.broker import free_port
    from tests.support.stack import start_edge

    await acli(
        settings,
        "set-setting",
        project.project_id,
        "sampling",
        '{"strategy": "deterministic", "rate": 0.4}',
    )
    second_settings = settings.model_copy(update={"http_port": free_port()})
    second = await start_edge(second_settings)
    try:
        await asyncio.sleep(settings.key_cache_seconds + 0.5)
        events = [
            {"event_name": "e", "event_source": "web", "user_id": f"p-{i}"} for i in range(500)
        ]
        kept_sets = []
        for url in (edge, f"http://127.0.0.1:{second_settings.http_port}"):
            status, body = await post(
                http, f"{url}/api/events/batch/", {"events": events}, project.public_key
            )
            assert status == 202
            kept_sets.append(set(range(500)) - {r["index"] for r in body["results"]})
        assert kept_sets[0] == kept_sets[1]
        assert 150 <= len(kept_sets[0]) <= 250
    finally:
        await second.cleanup()


async def test_per_ip_and_per_project_limits_are_independent(
    http: aiohttp.ClientSession, edge: str, settings: Settings, project: NewProject
) -> None:
    await acli(settings, "set-setting", project.project_id, "trusted_proxies", '["127.0.0.1/32"]')
    await acli(settings, "set-setting", project.project_id, "rate_limit_per_ip_per_minute", "3")
    await acli(settings, "set-setting", project.project_id, "rate_limit_per_minute", "6")
    await asyncio.sleep(settings.key_cache_seconds + 0.5)

    async def from_ip(ip: str) -> int:
        status, _ = await post(
            http, f"{edge}/api/events/ingest/", EVENT, project.public_key, **{"X-Forwarded-For": ip}
        )
        return status

    assert [await from_ip("203.0.113.1") for _ in range(4)] == [202, 202, 202, 429]
    assert [await from_ip("203.0.113.2") for _ in range(3)] == [202, 202, 202]
    # Six accepted in the project now: its own limit stops a third address.
    assert await from_ip("203.0.113.3") == 429


async def test_limiter_redis_down_fails_open_and_is_counted(
    http: aiohttp.ClientSession,
    settings_factory: Any,
    run_dir: Any,
    db: asyncpg.Pool,
) -> None:
    from analytics.dev.processes import RedisServer
    from tests.support.stack import start_edge

    limiter = RedisServer(run_dir / "limiter-redis").start()
    settings = settings_factory(rate_limit_redis_url=limiter.url)
    created = await acli(settings, "create-project", "limited")
    await acli(settings, "set-setting", created["project_id"], "rate_limit_per_minute", "2")
    runner = await start_edge(settings)
    edge = f"http://127.0.0.1:{settings.http_port}"
    try:
        statuses = [await status_of(http, edge, created["public_key"]) for _ in range(3)]
        assert statuses == [202, 202, 429]
        limiter.kill()  # the limiter's Redis is gone; the buffer's Redis is fine
        statuses = [await status_of(http, edge, created["public_key"]) for _ in range(3)]
        assert statuses == [202, 202, 202]
        async with http.get(f"{edge}/metrics") as resp:
            text = await resp.text()
        line = next(x for x in text.splitlines() if x.startswith("sa_rate_limit_fail_open_total"))
        assert float(line.split()[-1]) >= 3
    finally:
        await runner.cleanup()  # flushes the audit buffer
        limiter.kill()
    async with db.acquire() as conn:
        actions = {
            r["action"]: r["detail"]
            for r in await conn.fetch(
                "SELECT action, detail FROM audit_log WHERE project_id = $1", created["project_id"]
            )
        }
    assert orjson.loads(actions["rate_limited"]) == {"requests": 1}
    assert orjson.loads(actions["key_used"]) == {"kind": "public"}
