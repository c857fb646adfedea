"""Share links: ``analytics share-link`` makes a read-only pass to one project's stats.

Real CLI, real edge over a socket, real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from analytics.settings import Settings
from analytics.storage.projects import NewProject
from tests.support.transfer import cli_json, run_cli


async def status_of(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.timeout(120)
async def test_a_share_link_reads_stats_only_until_revoked(
    http: aiohttp.ClientSession, edge: str, settings: Settings, project: NewProject
) -> None:
    made = await cli_json(settings, "share-link", project.project_id)
    token = made["token"]
    assert token.startswith("sa_share_")
    assert made["url"] == f"{settings.public_base_url()}/share/{token}"

    aggregate = f"{edge}/api/stats/aggregate/?period=7d"
    assert (await status_of(http, aggregate, token))[0] == 200
    status, body = await status_of(http, f"{edge}/api/events/query/", token)
    assert (status, body["code"]) == (403, "share_link_not_allowed")
    status, body = await status_of(http, f"{edge}/api/export/events/", token)
    assert status == 403, body
    async with http.post(
        f"{edge}/api/events/ingest/",
        data=orjson.dumps({"event_name": "x", "event_source": "web", "api_key": token}),
        headers={"Content-Type": "text/plain"},
    ) as resp:
        assert resp.status == 401

    async with http.get(f"{edge}/share/{token}") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert resp.headers["Referrer-Policy"] == "no-referrer"

    listed = await cli_json(settings, "share-link", project.project_id, "--list")
    assert [link["hint"] for link in listed] == [token[:15]]
    assert listed[0]["revoked_at"] is None

    revoked = await cli_json(settings, "share-link", project.project_id, "--revoke", token[:15])
    assert revoked == {"revoked": 1}
    deadline = time.monotonic() + 10
    while (await status_of(http, aggregate, token))[0] == 200:
        assert time.monotonic() < deadline, "a revoked link still answers after 10 s"
        await asyncio.sleep(0.2)
    status, body = await status_of(http, aggregate, token)
    assert (status, body["code"]) == (401, "invalid_share_link")
    async with http.get(f"{edge}/share/{token}") as resp:
        assert resp.status == 404  # the revoked link itself


async def test_an_unknown_share_link_is_a_404(http: aiohttp.ClientSession, edge: str) -> None:
    for token in ("sa_share_nope", "sa_priv_" + "0" * 40, "anything"):
        async with http.get(f"{edge}/share/{token}") as resp:
            assert resp.status == 404, token


async def test_share_link_refuses_an_unknown_project_or_link(
    settings: Settings, project: NewProject
) -> None:
    unknown = await asyncio.to_thread(run_cli, settings, "share-link", "no-such-project")
    assert unknown.returncode != 0
    assert b"unknown project" in unknown.stderr
    wrong = await asyncio.to_thread(
        run_cli, settings, "share-link", project.project_id, "--revoke", "sa_share_nope"
    )
    assert wrong.returncode != 0
    assert b"no live share link" in wrong.stderr
