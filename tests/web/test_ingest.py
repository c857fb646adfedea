"""The ingest edge over a real socket, with the whole pipeline behind it."""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from analytics.dev.processes import WorkerProcess
from analytics.storage.projects import NewProject
from tests.support.events import SEED
from tests.support.stack import auth, post, wait_for


async def rows_for(db: asyncpg.Pool, project_id: str) -> list[asyncpg.Record]:
    async with db.acquire() as conn:
        return list(
            await conn.fetch(
                "SELECT e.*, s.name AS source_name FROM events e"
                " JOIN event_sources s ON s.id = e.event_source_id"
                " WHERE e.project_id = $1 ORDER BY e.timestamp, e.event_id",
                project_id,
            )
        )


async def test_seed_example_lands_with_every_field(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    status, body = await post(
        http,
        f"{edge}/api/events/ingest/",
        SEED,
        project.public_key,
        **{"User-Agent": "seed-test/1.0"},
    )
    assert (status, body) == (202, {"status": "accepted", "sampled": False})
    rows = await wait_for(lambda: rows_for(db, project.project_id))
    assert len(rows) == 1
    row = rows[0]
    assert row["event_id"] == "client_event_id"
    assert row["project_id"] == project.project_id
    assert row["source_name"] == "web_app"
    assert row["user_id"] == "user_123"
    assert row["session_id"] == "sess_abc"
    assert row["event_name"] == "page_view"
    assert orjson.loads(row["properties"]) == SEED["properties"]
    assert row["timestamp"] == datetime(2023, 1, 1, 12, tzinfo=UTC)
    assert row["sample_rate"] == 1.0
    assert abs(row["received_at"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert row["ip_address"] == "127.0.0.1"
    assert row["user_agent"] == "seed-test/1.0"


async def test_defaults_are_filled(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    before = datetime.now(UTC)
    status, _ = await post(
        http,
        f"{edge}/api/events/ingest/",
        {"event_name": "signup", "event_source": "api"},
        project.public_key,
    )
    assert status == 202
    rows = await wait_for(lambda: rows_for(db, project.project_id))
    row = rows[0]
    uuid.UUID(row["event_id"])  # generated at the edge
    assert row["user_id"].startswith("anon_")
    assert row["session_id"].startswith("s_")
    assert before - timedelta(seconds=1) <= row["timestamp"] <= datetime.now(UTC)
    assert orjson.loads(row["properties"]) == {}


async def test_anonymous_user_is_stable_and_sessions_follow_the_window(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    events = [
        {"event_name": "a", "event_source": "web", "timestamp": "2024-03-01T10:05:00Z"},
        {"event_name": "b", "event_source": "web", "timestamp": "2024-03-01T10:55:00Z"},
        {"event_name": "c", "event_source": "web", "timestamp": "2024-03-01T11:05:00Z"},
    ]
    status, body = await post(
        http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
    )
    assert status == 202 and body["accepted"] == 3
    rows = await wait_for(lambda: _at_least(db, project.project_id, 3))
    assert len({r["user_id"] for r in rows}) == 1
    sessions = [r["session_id"] for r in rows]
    assert sessions[0] == sessions[1] != sessions[2]


async def _at_least(db: asyncpg.Pool, project_id: str, n: int) -> list[asyncpg.Record] | None:
    rows = await rows_for(db, project_id)
    return rows if len(rows) >= n else None


async def test_batch_of_many_events(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    events = [
        {
            "event_name": f"e{i % 7}",
            "event_source": f"src{i % 3}",
            "event_id": f"id-{i}",
            "properties": {"i": i},
        }
        for i in range(1000)
    ]
    status, body = await post(
        http,
        f"{edge}/api/events/batch/",
        {"events": events, "sent_at": datetime.now(UTC).isoformat()},
        project.public_key,
    )
    assert status == 202
    assert body == {
        "status": "accepted",
        "accepted": 1000,
        "sampled": 0,
        "rejected": 0,
        "results": [],
    }
    rows = await wait_for(lambda: _at_least(db, project.project_id, 1000))
    assert len(rows) == 1000
    assert {r["event_id"] for r in rows} == {f"id-{i}" for i in range(1000)}
    assert {r["source_name"] for r in rows} == {"src0", "src1", "src2"}


async def test_mixed_batch_reports_each_rejection(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    events = [
        {"event_name": "ok1", "event_source": "web", "event_id": "m1"},
        {"event_source": "web"},
        {"event_name": "x" * 300, "event_source": "web"},
        {"event_name": "ok2", "event_source": "web", "event_id": "m2"},
        "not an object",
        {"event_name": "p", "event_source": "web", "properties": [1, 2]},
    ]
    status, body = await post(
        http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
    )
    assert status == 202
    assert (body["accepted"], body["rejected"], body["sampled"]) == (2, 4, 0)
    by_index = {r["index"]: r for r in body["results"]}
    assert by_index[1]["code"] == "event_name_required"
    assert by_index[2]["code"] == "event_name_too_long"
    assert by_index[2]["detail"] == "event_name is 300 characters; the limit is 255"
    assert by_index[4]["code"] == "event_invalid"
    assert by_index[5]["code"] == "properties_invalid"
    assert all(r["status"] == "rejected" for r in body["results"])
    rows = await wait_for(lambda: _at_least(db, project.project_id, 2))
    assert sorted(r["event_id"] for r in rows) == ["m1", "m2"]


BIG = {"blob": "x" * (64 * 1024)}


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"event_source": "web"}, 400, "event_name_required", "event_name"),
        ({"event_name": "", "event_source": "web"}, 400, "event_name_required", "event_name"),
        (
            {"event_name": "x" * 256, "event_source": "web"},
            400,
            "event_name_too_long",
            "event_name",
        ),
        ({"event_name": 5, "event_source": "web"}, 400, "event_name_invalid", "event_name"),
        ({"event_name": "a"}, 400, "event_source_required", "event_source"),
        (
            {"event_name": "a", "event_source": "w", "properties": BIG},
            400,
            "properties_too_large",
            "properties",
        ),
        (
            {"event_name": "a", "event_source": "w", "properties": "s"},
            400,
            "properties_invalid",
            "properties",
        ),
        (
            {"event_name": "a", "event_source": "w", "timestamp": "yesterday"},
            400,
            "timestamp_invalid",
            "timestamp",
        ),
        (
            {"event_name": "a", "event_source": "w", "event_id": "i" * 129},
            400,
            "event_id_too_long",
            "event_id",
        ),
        ([1, 2], 400, "event_invalid", "event"),
    ],
)
async def test_validation_rules(
    http: aiohttp.ClientSession,
    edge: str,
    project: NewProject,
    body: Any,
    status: int,
    code: str,
    field: str,
) -> None:
    got_status, got = await post(http, f"{edge}/api/events/ingest/", body, project.public_key)
    assert got_status == status
    assert got["code"] == code
    assert got["field"] == field
    assert got["detail"]


async def test_timestamp_too_far_in_future(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    ahead = (datetime.now(UTC) + timedelta(hours=25)).isoformat()
    status, body = await post(
        http,
        f"{edge}/api/events/ingest/",
        {"event_name": "a", "event_source": "w", "timestamp": ahead},
        project.public_key,
    )
    assert status == 400 and body["code"] == "timestamp_in_future"


async def test_sent_at_corrects_client_clock_skew(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    # The client's clock is 2 days ahead: its timestamp and sent_at both carry the skew.
    skew = timedelta(days=2)
    now = datetime.now(UTC)
    event = {
        "event_name": "a",
        "event_source": "w",
        "event_id": "skewed",
        "timestamp": (now + skew - timedelta(minutes=10)).isoformat(),
        "sent_at": (now + skew).isoformat(),
    }
    status, _ = await post(http, f"{edge}/api/events/ingest/", event, project.public_key)
    assert status == 202
    rows = await wait_for(lambda: rows_for(db, project.project_id))
    assert abs(rows[0]["timestamp"] - (now - timedelta(minutes=10))) < timedelta(seconds=5)


async def test_small_skew_is_left_alone(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    now = datetime.now(UTC)
    ts = now - timedelta(hours=3)
    event = {
        "event_name": "a",
        "event_source": "w",
        "timestamp": ts.isoformat(),
        "sent_at": (now + timedelta(seconds=60)).isoformat(),
    }
    status, _ = await post(http, f"{edge}/api/events/ingest/", event, project.public_key)
    assert status == 202
    rows = await wait_for(lambda: rows_for(db, project.project_id))
    assert rows[0]["timestamp"] == ts.replace(microsecond=ts.microsecond)


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        (None, 401, "missing_api_key"),
        ("sa_" + "0" * 40, 401, "invalid_api_key"),
        ("not-a-key", 401, "invalid_api_key"),
    ],
)
async def test_bad_keys(
    http: aiohttp.ClientSession, edge: str, key: str | None, status: int, code: str
) -> None:
    got_status, body = await post(
        http, f"{edge}/api/events/ingest/", {"event_name": "a", "event_source": "w"}, key
    )
    assert (got_status, body["code"]) == (status, code)


async def test_private_key_cannot_ingest(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    for path in ("/api/events/ingest/", "/api/events/batch/"):
        status, body = await post(
            http,
            f"{edge}{path}",
            {"events": [SEED]} if "batch" in path else SEED,
            project.private_key,
        )
        assert (status, body["code"]) == (403, "private_key_not_allowed")


async def test_wrong_content_type(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    async with http.post(
        f"{edge}/api/events/ingest/",
        data=b"event_name=a",
        headers={**auth(project.public_key), "Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        body = await resp.json()
        assert resp.status == 415
        assert body["code"] == "unsupported_media_type" and body["field"] == "Content-Type"


async def test_malformed_json(http: aiohttp.ClientSession, edge: str, project: NewProject) -> None:
    status, body = await post(
        http, f"{edge}/api/events/ingest/", b'{"event_name": ', project.public_key
    )
    assert (status, body["code"], body["field"]) == (400, "invalid_json", "body")


async def test_body_too_large(http: aiohttp.ClientSession, edge: str, project: NewProject) -> None:
    events = [{"event_name": "a", "event_source": "w", "properties": {"p": "x" * 60_000}}] * 100
    status, body = await post(
        http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
    )
    assert (status, body["code"]) == (413, "payload_too_large")
    events = [{"event_name": "a", "event_source": "w"}] * 1001
    status, body = await post(
        http, f"{edge}/api/events/batch/", {"events": events}, project.public_key
    )
    assert (status, body["code"], body["field"]) == (413, "batch_too_large", "events")


async def test_gzip_body_and_bomb(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    events = [{"event_name": "gz", "event_source": "w", "event_id": f"g{i}"} for i in range(50)]
    packed = gzip.compress(orjson.dumps({"events": events}))
    status, body = await post(
        http,
        f"{edge}/api/events/batch/",
        packed,
        project.public_key,
        **{"Content-Encoding": "gzip"},
    )
    assert status == 202 and body["accepted"] == 50
    assert len(await wait_for(lambda: _at_least(db, project.project_id, 50))) == 50
    bomb = gzip.compress(b'{"events": [' + b" " * (50 * 1024 * 1024) + b"]}")
    status, body = await post(
        http, f"{edge}/api/events/batch/", bomb, project.public_key, **{"Content-Encoding": "gzip"}
    )
    assert (status, body["code"]) == (413, "payload_too_large")


async def test_same_event_id_twice_is_one_row(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    event = {"event_name": "retry", "event_source": "w", "event_id": "dup-1"}
    for _ in range(3):
        status, _ = await post(http, f"{edge}/api/events/ingest/", event, project.public_key)
        assert status == 202
    # Same id with different server timestamps (no client timestamp) and one in another day.
    later = dict(event, timestamp=(datetime.now(UTC) - timedelta(days=3)).isoformat())
    status, _ = await post(http, f"{edge}/api/events/ingest/", later, project.public_key)
    assert status == 202
    marker = {"event_name": "marker", "event_source": "w", "event_id": "after"}
    await post(http, f"{edge}/api/events/ingest/", marker, project.public_key)
    rows = await wait_for(lambda: _at_least(db, project.project_id, 2))
    await wait_for(lambda: _has(db, project.project_id, "after"))
    rows = await rows_for(db, project.project_id)
    assert sorted(r["event_id"] for r in rows) == ["after", "dup-1"]


async def _has(db: asyncpg.Pool, project_id: str, event_id: str) -> bool:
    async with db.acquire() as conn:
        return bool(
            await conn.fetchval(
                "SELECT 1 FROM events WHERE project_id = $1 AND event_id = $2", project_id, event_id
            )
        )


async def test_beacon_text_plain_with_key_in_body(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    body = orjson.dumps(
        {"api_key": project.public_key, "event_name": "beacon", "event_source": "web"}
    )
    async with http.post(
        f"{edge}/api/events/ingest/",
        data=body,
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    ) as resp:
        assert resp.status == 202
    rows = await wait_for(lambda: rows_for(db, project.project_id))
    assert rows[0]["event_name"] == "beacon"
