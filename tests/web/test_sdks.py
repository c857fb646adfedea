"""Real SDKs against a running edge: Segment's and RudderStack's Python SDKs, Segment's Node SDK.

For each: every call type is stored as the README says; a wrong key is
reported once to the error callback and not retried; a batch with an invalid
message stores the valid ones once and the error callback names the invalid
one; identify traits arrive (RudderStack sends them in ``context.traits``).
Attempts are counted at the edge (``sa_ingest_requests_total``), with the
SDKs' retries lowered to two so that a retry would show.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from analytics.storage.projects import NewProject
from tests.support.sdks import PYTHON_SDKS, PythonSdk, run_node
from tests.support.stack import stored_rows, wait_for

WRONG_KEY = "sa_" + "7" * 32


async def attempts(http: aiohttp.ClientSession, edge: str) -> dict[str, float]:
    """``sa_ingest_requests_total`` of /v1/batch, by status."""
    async with http.get(f"{edge}/metrics") as resp:
        text = await resp.text()
    prefix = 'sa_ingest_requests_total{endpoint="segment_batch",status="'
    return {
        line[len(prefix) : len(prefix) + 3]: float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def added(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


async def rows_of(db: asyncpg.Pool, project_id: str, n: int) -> list[asyncpg.Record] | None:
    return await stored_rows(db, project_id, n, order="timestamp")


async def settled(db: asyncpg.Pool, project_id: str, n: int) -> list[asyncpg.Record]:
    """The project's rows once ``n`` are stored and a further second adds none."""
    rows: list[asyncpg.Record] = await wait_for(lambda: rows_of(db, project_id, n))
    await asyncio.sleep(1.0)
    again = await rows_of(db, project_id, n)
    assert again is not None and len(again) == len(rows)
    return rows


def props(row: asyncpg.Record) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(row["properties"])
    return value


TRAITS = {"plan": "pro", "email": "ada@example.com"}


def every_call(client: Any) -> None:
    client.track(user_id="ada", event="Order Completed", properties={"total": 30}, message_id="t")
    client.page(
        user_id="ada", category="Docs", name="Intro", properties={"path": "/d"}, message_id="p"
    )
    client.screen(user_id="ada", name="Cart", message_id="s")
    client.identify(user_id="ada", traits=TRAITS, message_id="i")
    client.group(user_id="ada", group_id="g1", traits={"seats": 5}, message_id="g")
    client.alias(previous_id="anon-1", user_id="ada", message_id="a")


@pytest.mark.parametrize("name", PYTHON_SDKS)
async def test_python_sdk_every_call_type(
    name: str,
    http: aiohttp.ClientSession,
    edge: str,
    worker: Any,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    sdk = PythonSdk(name, edge, project.public_key)
    before = await attempts(http, edge)
    delivery = await sdk.deliver(every_call)
    assert delivery.errors == []
    assert added(before, await attempts(http, edge)) == {"200": 1}
    rows = {r["event_id"]: r for r in await settled(db, project.project_id, 6)}
    assert set(rows) == {"t", "p", "s", "i", "g", "a"}
    assert {r["source"] for r in rows.values()} == {"analytics-python"}
    assert {r["user_id"] for r in rows.values()} == {"ada"}
    names = {k: r["event_name"] for k, r in rows.items()}
    assert names == {
        "t": "Order Completed",
        "p": "page_view",
        "s": "screen_view",
        "i": "identify",
        "g": "group",
        "a": "alias",
    }
    context = props(rows["t"]).pop("context")
    # How to tell the two analytics-python libraries apart: RudderStack's sends a channel.
    assert context["library"]["name"] == "analytics-python"
    assert ("channel" in context) == (name == "rudderstack")
    assert {k: v for k, v in props(rows["t"]).items() if k != "context"} == {"total": 30}
    page = {k: v for k, v in props(rows["p"]).items() if k != "context"}
    assert page == {"path": "/d", "category": "Docs", "name": "Intro"}
    # RudderStack sends identify traits only in context.traits; both arrive the same.
    assert {k: v for k, v in props(rows["i"]).items() if k != "context"} == TRAITS
    assert {k: v for k, v in props(rows["g"]).items() if k != "context"} == {
        "seats": 5,
        "groupId": "g1",
    }
    assert props(rows["a"])["previousId"] == "anon-1"


@pytest.mark.parametrize("name", PYTHON_SDKS)
async def test_python_sdk_wrong_key_is_reported_once(
    name: str, http: aiohttp.ClientSession, edge: str
) -> None:
    sdk = PythonSdk(name, edge, WRONG_KEY)
    before = await attempts(http, edge)
    delivery = await sdk.deliver(lambda c: c.track(user_id="u", event="e", message_id="w"))
    assert added(before, await attempts(http, edge)) == {"401": 1}  # no retry
    [(error, batch)] = delivery.errors
    assert (error.status, error.code) == (401, "invalid_api_key")
    assert error.message == "the API key is unknown or revoked"
    assert [m["messageId"] for m in batch] == ["w"]


def with_invalid(client: Any) -> None:
    ahead = datetime.now(UTC) + timedelta(days=3)
    client.track(user_id="u", event="fine", message_id="ok-1")
    client.track(user_id="u", event="x" * 300, message_id="long")
    client.identify(user_id="u", traits={"plan": "pro"}, message_id="ok-2")
    client.track(user_id="u", event="later", timestamp=ahead, message_id="future")


@pytest.mark.parametrize("name", PYTHON_SDKS)
async def test_python_sdk_invalid_message_is_named_and_valid_ones_stored_once(
    name: str,
    http: aiohttp.ClientSession,
    edge: str,
    worker: Any,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    sdk = PythonSdk(name, edge, project.public_key)
    before = await attempts(http, edge)
    delivery = await sdk.deliver(with_invalid)
    assert added(before, await attempts(http, edge)) == {"400": 1}  # no retry
    [(error, batch)] = delivery.errors
    assert (error.status, error.code) == (400, "messages_rejected")
    assert error.message.startswith("2 of 4 messages rejected, the other 2 accepted")
    assert "message 1: event_name_too_long" in error.message
    assert "message 3: timestamp_in_future" in error.message
    assert [m["messageId"] for m in batch] == ["ok-1", "long", "ok-2", "future"]
    rows = await settled(db, project.project_id, 2)
    assert sorted(r["event_id"] for r in rows) == ["ok-1", "ok-2"]


NODE_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("track", {"userId": "ada", "event": "Order Completed", "properties": {"total": 30}}),
    ("page", {"userId": "ada", "category": "Docs", "name": "Intro", "properties": {"path": "/d"}}),
    ("screen", {"userId": "ada", "name": "Cart"}),
    ("identify", {"userId": "ada", "traits": TRAITS}),
    ("group", {"userId": "ada", "groupId": "g1", "traits": {"seats": 5}}),
    ("alias", {"userId": "ada", "previousId": "anon-1"}),
]


async def test_node_sdk_every_call_type(
    http: aiohttp.ClientSession,
    edge: str,
    worker: Any,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    before = await attempts(http, edge)
    answer = await run_node(edge, project.public_key, NODE_CALLS)
    assert answer["results"] == [None] * 6
    assert answer["attempts"] == [200]
    assert added(before, await attempts(http, edge)) == {"200": 1}
    rows = {r["event_name"]: r for r in await settled(db, project.project_id, 6)}
    assert set(rows) == {
        "Order Completed",
        "page_view",
        "screen_view",
        "identify",
        "group",
        "alias",
    }
    assert {r["source"] for r in rows.values()} == {"@segment/analytics-node"}
    assert {r["user_id"] for r in rows.values()} == {"ada"}
    assert props(rows["Order Completed"])["total"] == 30
    page = {k: v for k, v in props(rows["page_view"]).items() if k != "context"}
    assert page == {"path": "/d", "category": "Docs", "name": "Intro"}
    assert {k: v for k, v in props(rows["identify"]).items() if k != "context"} == TRAITS
    assert props(rows["group"])["groupId"] == "g1"
    assert props(rows["alias"])["previousId"] == "anon-1"


async def test_node_sdk_wrong_key_is_reported_once(http: aiohttp.ClientSession, edge: str) -> None:
    before = await attempts(http, edge)
    answer = await run_node(edge, WRONG_KEY, [("track", {"userId": "u", "event": "e"})])
    assert answer["attempts"] == [401]
    assert added(before, await attempts(http, edge)) == {"401": 1}
    assert answer["results"] == ["[401] Unauthorized"]


async def test_node_sdk_invalid_message_is_named_and_valid_ones_stored_once(
    http: aiohttp.ClientSession,
    edge: str,
    worker: Any,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    ahead = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    calls: list[tuple[str, dict[str, Any]]] = [
        ("track", {"userId": "u", "event": "fine"}),
        ("track", {"userId": "u", "event": "x" * 300}),
        ("identify", {"userId": "u", "traits": {"plan": "pro"}}),
        ("track", {"userId": "u", "event": "later", "timestamp": ahead}),
    ]
    before = await attempts(http, edge)
    answer = await run_node(edge, project.public_key, calls)
    assert answer["attempts"] == [400]
    assert added(before, await attempts(http, edge)) == {"400": 1}
    # Node reads no body on a 400: the reason phrase names the rejected messages, and the
    # SDK fails every message of the batch with it (it cannot tell which were kept).
    expected = (
        "[400] Bad Request: rejected message 1 (event_name_too_long),"
        " message 3 (timestamp_in_future)"
    )
    assert answer["results"] == [expected] * 4
    rows = await settled(db, project.project_id, 2)
    assert sorted(r["event_name"] for r in rows) == ["fine", "identify"]
