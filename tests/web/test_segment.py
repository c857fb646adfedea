"""Segment HTTP Tracking API compatibility: what a Segment SDK sends is stored as our events."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson

from analytics.storage import projects
from analytics.storage.projects import NewProject
from tests.support.stack import scrape, stored_rows, wait_for


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
    return await stored_rows(db, project_id, n)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


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
    # One invalid message: the other six are stored, and the 400 names the one rejected.
    assert status == 400 and body["success"] is False
    assert (body["code"], body["accepted"], body["rejected"]) == ("messages_rejected", 6, 1)
    assert body["message"].startswith("1 of 7 messages rejected, the other 6 accepted")
    assert "message 6: event_name_required" in body["message"]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(6, "event_name_required")]
    rows = await wait_for(lambda: stored(db, project.project_id, 6))
    by_id = {r["event_id"]: r for r in rows}
    assert set(by_id) == {"m1", "m2", "m3", "m4", "m5", "m6"}
    assert (
        by_id["m1"]["event_name"] == "Order Completed" and by_id["m1"]["source"] == "analytics-node"
    )
    assert orjson.loads(by_id["m1"]["properties"]) == {
        "total": 30,
        "context": {"library": {"name": "analytics-node"}},
    }
    # Segment's sentAt rule: the message was made 1 s before it was sent, so 1 s before now.
    received = by_id["m1"]["received_at"]
    assert abs((received - by_id["m1"]["timestamp"]).total_seconds() - 1.0) < 0.5
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
    # A single call with an invalid message: a 400 in its own code, with Segment's message.
    status, body = await send(
        http,
        f"{edge}/v1/track",
        {"event": "x" * 300, "userId": "w1", "messageId": "s3"},
        basic(project.public_key),
    )
    assert (status, body["code"], body["field"]) == (400, "event_name_too_long", "event_name")
    assert "message 0: event_name_too_long (event_name is 300 characters" in body["message"]
    rows = await wait_for(lambda: stored(db, project.project_id, 2))
    assert [r["event_id"] for r in rows] == ["s1", "s2"]


async def test_segment_errors_carry_message(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    """Every error on /v1/* has Segment's ``message`` beside our code, detail and field."""
    status, body = await send(http, f"{edge}/v1/track", {"event": "x", "userId": "u"}, {})
    assert (status, body["code"]) == (401, "missing_api_key")
    assert body["message"] == body["detail"]
    status, body = await send(http, f"{edge}/v1/batch", {"batch": []}, basic("sa_" + "0" * 32))
    assert (status, body["code"], body["message"]) == (
        401,
        "invalid_api_key",
        "the API key is unknown or revoked",
    )
    status, body = await send(
        http, f"{edge}/v1/track", {"event": "x", "userId": "u"}, basic(project.private_key)
    )
    assert (status, body["code"]) == (403, "private_key_not_allowed")
    assert "private key" in body["message"]
    big = {"event": "x", "userId": "u", "properties": {"blob": "x" * 40_000}}
    status, body = await send(http, f"{edge}/v1/track", big, basic(project.public_key))
    assert (status, body["code"]) == (413, "payload_too_large")
    assert "32 KB per message" in body["message"]
    batch = {
        "batch": [{"type": "track", "event": "x", "userId": "u", "properties": {"b": "x" * 30_000}}]
        * 20
    }
    status, body = await send(http, f"{edge}/v1/batch", batch, basic(project.public_key))
    assert (status, body["code"]) == (413, "payload_too_large")
    status, body = await send(http, f"{edge}/v1/batch", b"{nope", basic(project.public_key))
    assert (status, body["code"], body["field"]) == (400, "invalid_json", "body")
    assert body["message"].startswith("the body is not valid JSON")
    status, body = await send(http, f"{edge}/v1/nothing", {}, basic(project.public_key))
    assert (status, body["code"], body["message"]) == (404, "not_found", "Not Found")
    # Our own endpoints keep SPEC §4's shape exactly.
    async with http.post(
        f"{edge}/api/events/ingest/", data=b"{}", headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 401 and "message" not in await resp.json()


async def test_segment_malformed_messages_are_rejected_by_index(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    batch = {
        "batch": [
            {"type": "track", "event": "x", "userId": "u", "properties": [1, 2]},
            {"type": "identify", "userId": "u", "traits": "nope"},
            {"type": "page", "userId": "u", "context": "not an object"},
            {"type": "unknown", "userId": "u"},
            "not a message",
            {"type": "track", "event": "big", "userId": "u", "properties": {"b": "x" * 33_000}},
        ]
    }
    status, body = await send(http, f"{edge}/v1/batch", batch, basic(project.public_key))
    assert status == 400
    assert (body["accepted"], body["rejected"]) == (1, 5)
    assert [(e["index"], e["code"], e["field"]) for e in body["errors"]] == [
        (0, "properties_invalid", "properties"),
        (1, "properties_invalid", "properties"),
        (3, "type_invalid", "type"),
        (4, "event_invalid", "message"),
        (5, "message_too_large", "message"),
    ]
    for index in (0, 1, 3, 4, 5):
        assert f"message {index}: " in body["message"]
    assert "message 2:" not in body["message"]
    # The reason phrase names them too, for SDKs that read no body (Segment's Node SDK).
    async with http.post(
        f"{edge}/v1/batch",
        data=orjson.dumps(batch),
        headers={"Content-Type": "application/json", **basic(project.public_key)},
    ) as resp:
        assert resp.status == 400
        assert resp.reason == (
            "Bad Request: rejected message 0 (properties_invalid), message 1"
            " (properties_invalid), message 3 (type_invalid), message 4 (event_invalid),"
            " message 5 (message_too_large)"
        )


async def test_segment_future_and_clock_skew(
    http: aiohttp.ClientSession, edge: str, worker: Any, db: asyncpg.Pool, project: NewProject
) -> None:
    """A timestamp days ahead is refused; an SDK whose clock is days ahead is corrected."""
    now = datetime.now(UTC)
    ahead = now + timedelta(days=3)
    batch = {
        "batch": [
            {"type": "track", "event": "ok", "userId": "u", "messageId": "f1"},
            {
                "type": "track",
                "event": "future",
                "userId": "u",
                "messageId": "f2",
                "timestamp": iso(ahead),
            },
            {"type": "track", "event": "n" * 300, "userId": "u", "messageId": "f3"},
        ],
        "sentAt": iso(now),
    }
    status, body = await send(http, f"{edge}/v1/batch", batch, basic(project.public_key))
    assert status == 400
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (1, "timestamp_in_future"),
        (2, "event_name_too_long"),
    ]
    assert "message 1: timestamp_in_future" in body["message"]
    assert "message 2: event_name_too_long" in body["message"]
    # The same future timestamp from a client whose clock runs 3 days fast (sentAt says so).
    skewed = {
        "batch": [
            {
                "type": "track",
                "event": "skewed",
                "userId": "u",
                "messageId": "f4",
                "timestamp": iso(ahead - timedelta(seconds=2)),
            }
        ],
        "sentAt": iso(ahead),
    }
    status, body = await send(http, f"{edge}/v1/batch", skewed, basic(project.public_key))
    assert (status, body["accepted"]) == (200, 1)
    rows = await wait_for(lambda: stored(db, project.project_id, 2))
    by_id = {r["event_id"]: r for r in rows}
    assert set(by_id) == {"f1", "f4"}
    lag = (by_id["f4"]["received_at"] - by_id["f4"]["timestamp"]).total_seconds()
    assert 1.5 < lag < 3.0  # made 2 s before it was sent, by the client's clock


async def test_segment_context_traits_and_sender(
    http: aiohttp.ClientSession, edge: str, worker: Any, db: asyncpg.Pool, project: NewProject
) -> None:
    context = {
        "page": {
            "url": "https://shop.example/p?x=1",
            "path": "/p",
            "referrer": "https://search.example/",
            "title": "P",
            "search": "?x=1",
        },
        "userAgent": "Mozilla/5.0 (relayed)",
        "ip": "203.0.113.9",
        "locale": "de-DE",
        "traits": {"plan": "free", "email": "a@example.com"},
        "library": {"name": "analytics-python", "version": "2.1.9"},
        "timezone": "Europe/Berlin",
    }
    batch = {
        "batch": [
            {
                "type": "page",
                "name": "Product",
                "category": "Shop",
                "userId": "c1",
                "messageId": "c1",
                "context": context,
                "channel": "server",
            },
            # RudderStack puts identify traits in context.traits only; top-level wins per key.
            {"type": "identify", "userId": "c1", "messageId": "c2", "context": context},
            {
                "type": "identify",
                "userId": "c1",
                "messageId": "c3",
                "context": context,
                "traits": {"plan": "pro"},
            },
        ]
    }
    headers = {**basic(project.public_key), "User-Agent": "relay/1.0"}
    status, body = await send(http, f"{edge}/v1/batch", batch, headers)
    assert (status, body["accepted"]) == (200, 3)
    rows = await wait_for(lambda: stored(db, project.project_id, 3))
    by_id = {r["event_id"]: r for r in rows}
    kept = {
        "page": {
            "url": "https://shop.example/p?x=1",
            "path": "/p",
            "referrer": "https://search.example/",
            "title": "P",
        },
        "userAgent": "Mozilla/5.0 (relayed)",
        "locale": "de-DE",
        "library": {"name": "analytics-python", "version": "2.1.9"},
    }
    page = orjson.loads(by_id["c1"]["properties"])
    assert page == {"name": "Product", "category": "Shop", "context": {**kept, "channel": "server"}}
    assert by_id["c1"]["user_agent"] == "Mozilla/5.0 (relayed)"
    # 127.0.0.1 is no trusted proxy of this project: context.ip is not believed.
    assert str(by_id["c1"]["ip_address"]) == "127.0.0.1"
    traits = {k: v for k, v in orjson.loads(by_id["c2"]["properties"]).items() if k != "context"}
    assert traits == {"plan": "free", "email": "a@example.com"}
    traits = {k: v for k, v in orjson.loads(by_id["c3"]["properties"]).items() if k != "context"}
    assert traits == {"plan": "pro", "email": "a@example.com"}


async def test_segment_context_ip_from_a_trusted_proxy(
    http: aiohttp.ClientSession, edge: str, worker: Any, db: asyncpg.Pool
) -> None:
    async with db.acquire() as conn:
        project = await projects.create_project(conn, "segment-trusted")
        await projects.set_setting(
            conn, project.project_id, "trusted_proxies", ["127.0.0.1/32"], None
        )
    message = {"type": "track", "event": "t", "userId": "p", "messageId": "t1"}
    batch = {
        "batch": [
            {**message, "context": {"ip": "203.0.113.9"}},
            {**message, "messageId": "t2", "context": {"ip": "not an address"}},
        ]
    }
    status, _ = await send(http, f"{edge}/v1/batch", batch, basic(project.public_key))
    assert status == 200
    rows = await wait_for(lambda: stored(db, project.project_id, 2))
    by_id = {r["event_id"]: r for r in rows}
    assert str(by_id["t1"]["ip_address"]) == "203.0.113.9"
    assert orjson.loads(by_id["t1"]["properties"]) == {"context": {"ip": "203.0.113.9"}}
    assert str(by_id["t2"]["ip_address"]) == "127.0.0.1"
    assert orjson.loads(by_id["t2"]["properties"]) == {}


async def test_segment_requests_are_measured(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    before = await scrape(http, f"{edge}/metrics")
    batch = {"batch": [{"type": "track", "event": "m", "userId": "u"}]}
    for _ in range(3):
        status, _ = await send(http, f"{edge}/v1/batch", batch, basic(project.public_key))
        assert status == 200
    status, _ = await send(http, f"{edge}/v1/batch", batch, basic("sa_" + "1" * 32))
    assert status == 401
    after = await scrape(http, f"{edge}/metrics")
    ok = 'sa_ingest_requests_total{endpoint="segment_batch",status="200"}'
    assert after[ok] - before.get(ok, 0) == 3
    refused = 'sa_ingest_requests_total{endpoint="segment_batch",status="401"}'
    assert after[refused] - before.get(refused, 0) == 1
    count = 'sa_ingest_request_duration_seconds_count{endpoint="segment_batch"}'
    assert after[count] - before.get(count, 0) == 4
    bucket = 'sa_ingest_request_duration_seconds_bucket{endpoint="segment_batch",le="+Inf"}'
    assert after[bucket] == after[count]
