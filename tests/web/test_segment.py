"""Segment HTTP Tracking API compatibility: what a Segment SDK sends is stored as our events."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import aiohttp
import asyncpg
import orjson

from analytics.storage.projects import NewProject
from tests.support.stack import wait_for


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def send(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(
        url, data=data, headers={"Content-Type": "application/json", **headers}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def stored(db: asyncpg.Pool, project_id: str, n: int) -> list[asyncpg.Record] | None:
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT e.*, s.name AS source FROM events e JOIN event_sources s"
            " ON s.id = e.event_source_id WHERE e.project_id = $1 ORDER BY e.event_id",
            project_id,
        )
    return list(rows) if len(rows) >= n else None


async def test_segment_batch_maps_onto_events(
    http: aiohttp.ClientSession, edge: str, worker: Any, db: asyncpg.Pool, project: NewProject
) -> None:
    batch = {
        "batch": [
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "u1",
                "messageId": "m1",
                "properties": {"total": 30},
                "timestamp": "2026-02-01T10:00:00Z",
                "context": {"library": {"name": "analytics-node"}},
            },
            {
                "type": "page",
                "name": "Home",
                "anonymousId": "anon-7",
                "messageId": "m2",
                "properties": {"path": "/"},
            },
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m3"},
            {
                "type": "group",
                "userId": "u1",
                "groupId": "g9",
                "traits": {"n": 3},
                "messageId": "m4",
            },
            {"type": "alias", "userId": "u1", "previousId": "anon-7", "messageId": "m5"},
            {"type": "screen", "name": "Cart", "userId": "u2", "messageId": "m6"},
            {"type": "track", "userId": "u3", "messageId": "m7"},  # no event name: rejected
        ],
        "sentAt": "2026-02-01T10:00:01Z",
    }
    status, body = await send(
        http,
        f"{edge}/v1/batch",
        gzip.compress(orjson.dumps(batch)),
        {**basic(project.public_key), "Content-Encoding": "gzip"},
    )
    assert status == 200 and body["success"] is True
    assert (body["accepted"], body["rejected"]) == (6, 1)
    rows = await wait_for(lambda: stored(db, project.project_id, 6))
    by_id = {r["event_id"]: r for r in rows}
    assert set(by_id) == {"m1", "m2", "m3", "m4", "m5", "m6"}
    assert (
        by_id["m1"]["event_name"] == "Order Completed" and by_id["m1"]["source"] == "analytics-node"
    )
    assert orjson.loads(by_id["m1"]["properties"]) == {"total": 30}
    assert by_id["m2"]["event_name"] == "page_view" and by_id["m2"]["user_id"] == "anon-7"
    assert orjson.loads(by_id["m2"]["properties"]) == {"path": "/", "name": "Home"}
    assert by_id["m3"]["event_name"] == "identify"
    assert orjson.loads(by_id["m3"]["properties"]) == {"plan": "pro"}
    assert orjson.loads(by_id["m4"]["properties"]) == {"n": 3, "groupId": "g9"}
    assert orjson.loads(by_id["m5"]["properties"]) == {"previousId": "anon-7"}
    assert by_id["m6"]["event_name"] == "screen_view"


async def test_segment_single_calls_and_write_key_in_body(
    http: aiohttp.ClientSession, edge: str, worker: Any, db: asyncpg.Pool, project: NewProject
) -> None:
    status, body = await send(
        http,
        f"{edge}/v1/track",
        {"writeKey": project.public_key, "event": "Signed Up", "userId": "w1", "messageId": "s1"},
        {},
    )
    assert (status, body["success"]) == (200, True)
    # The same messageId again (an SDK retry) is stored once.
    await send(
        http,
        f"{edge}/v1/track",
        {"event": "Signed Up", "userId": "w1", "messageId": "s1"},
        basic(project.public_key),
    )
    await send(
        http,
        f"{edge}/v1/page",
        {"name": "Pricing", "anonymousId": "a", "messageId": "s2"},
        basic(project.public_key),
    )
    rows = await wait_for(lambda: stored(db, project.project_id, 2))
    assert [r["event_id"] for r in rows] == ["s1", "s2"]


async def test_segment_auth_and_limits(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    status, body = await send(http, f"{edge}/v1/track", {"event": "x", "userId": "u"}, {})
    assert (status, body["code"]) == (401, "missing_api_key")
    status, body = await send(
        http, f"{edge}/v1/track", {"event": "x", "userId": "u"}, basic(project.private_key)
    )
    assert (status, body["code"]) == (403, "private_key_not_allowed")
    big = {"event": "x", "userId": "u", "properties": {"blob": "x" * 40_000}}
    status, body = await send(http, f"{edge}/v1/track", big, basic(project.public_key))
    assert (status, body["code"]) == (413, "payload_too_large")
    batch = {
        "batch": [{"type": "track", "event": "x", "userId": "u", "properties": {"b": "x" * 30_000}}]
        * 20
    }
    status, body = await send(http, f"{edge}/v1/batch", batch, basic(project.public_key))
    assert (status, body["code"]) == (413, "payload_too_large")


async def test_segment_malformed_messages_are_rejected_not_errors(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    batch = {
        "batch": [
            {"type": "track", "event": "x", "userId": "u", "properties": [1, 2]},
            {"type": "identify", "userId": "u", "traits": "nope"},
            {"type": "page", "userId": "u", "context": "not an object"},
            {"type": "unknown", "userId": "u"},
            "not a message",
        ]
    }
    status, body = await send(http, f"{edge}/v1/batch", batch, basic(project.public_key))
    assert status == 200
    assert (body["accepted"], body["rejected"]) == (1, 4)
    assert {e["code"] for e in body["errors"]} == {
        "properties_invalid",
        "event_name_required",
        "event_invalid",
    }
