"""Hostile input at the edge (issue 11), over real sockets with the whole pipeline behind.

Each refusal is a JSON error naming the field and the reason; a bad event in a
batch is refused on its own and the rest are stored; nothing is answered 500.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from analytics.dev.processes import WorkerProcess
from analytics.settings import Settings
from analytics.storage.projects import NewProject
from tests.support.raw_http import closed_by_peer, exchange, read_response, request_head
from tests.support.stack import auth, post, start_edge, wait_for

BATCH = "/api/events/batch/"
ONE = "/api/events/ingest/"


async def stored(db: asyncpg.Pool, project_id: str) -> dict[str, asyncpg.Record]:
    """The project's stored events by event_id."""
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM events WHERE project_id = $1", project_id)
    return {r["event_id"]: r for r in rows}


async def dead_letters(db: asyncpg.Pool, project_id: str) -> list[asyncpg.Record]:
    async with db.acquire() as conn:
        return list(
            await conn.fetch("SELECT * FROM dead_letters WHERE project_id = $1", project_id)
        )


async def landed(db: asyncpg.Pool, project_id: str, *event_ids: str) -> dict[str, asyncpg.Record]:
    """Wait until every one of ``event_ids`` is stored; the project's events then."""

    async def check() -> dict[str, asyncpg.Record] | None:
        rows = await stored(db, project_id)
        return rows if set(event_ids) <= rows.keys() else None

    result: dict[str, asyncpg.Record] = await wait_for(check)
    return result


async def post_raw(
    http: aiohttp.ClientSession, url: str, body: bytes, key: str, **headers: str
) -> tuple[int, Any]:
    """POST bytes as they are (no client-side JSON encoding); status and JSON answer."""
    hdrs = {"Content-Type": "application/json", **auth(key), **headers}
    async with http.post(url, data=body, headers=hdrs) as resp:
        return resp.status, await resp.json(content_type=None)


def by_index(answer: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["index"]: r for r in answer["results"]}


# 2. sent_at: every time rule applies to the corrected time ------------------------------


async def test_batch_sent_at_out_of_range_is_400_naming_sent_at(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    # Issue 11's input: it was answered 202 and then dead-lettered ("year -4947 is out of range").
    body = {
        "events": [{"timestamp": "2026-11-27T12:00:00Z", "event_name": "a", "event_source": "w"}],
        "sent_at": "9000-01-01T00:00:00Z",
    }
    status, answer = await post(http, f"{edge}{BATCH}", body, project.public_key)
    assert status == 400
    assert (answer["code"], answer["field"]) == ("sent_at_out_of_range", "sent_at")
    assert "8999" in answer["detail"]
    # A later event lands; the refused one never reached the pipeline, not even as a dead letter.
    marker = {"event_name": "after", "event_source": "w", "event_id": "after"}
    assert (await post(http, f"{edge}{ONE}", marker, project.public_key))[0] == 202
    rows = await landed(db, project.project_id, "after")
    assert list(rows) == ["after"]
    assert await dead_letters(db, project.project_id) == []


async def test_corrected_time_out_of_range_is_rejected_per_event(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    # sent_at 2100 means the client's clock is ~73 years ahead: a 1950 event would be stored
    # as 1876 (before the 1900 rule); a 2099-12-31 event is corrected to a day ago.
    body = {
        "events": [
            {"timestamp": "1950-01-01T00:00:00Z", "event_name": "a", "event_source": "w"},
            {"event_name": "now", "event_source": "w", "event_id": "now"},
            {
                "timestamp": "2099-12-31T00:00:00Z",
                "event_name": "skewed",
                "event_source": "w",
                "event_id": "skewed",
            },
            {
                # In range itself, but 7,000 years ahead: the 2026 event would be year -4947.
                "timestamp": "2026-11-27T12:00:00Z",
                "sent_at": "8999-12-31T23:59:59Z",
                "event_name": "b",
                "event_source": "w",
            },
            {
                # The per-event sent_at is checked like the batch's.
                "timestamp": "2026-11-27T12:00:00Z",
                "sent_at": "9000-01-01T00:00:00Z",
                "event_name": "c",
                "event_source": "w",
            },
        ],
        "sent_at": "2100-01-01T00:00:00Z",
    }
    status, answer = await post(http, f"{edge}{BATCH}", body, project.public_key)
    assert status == 202
    assert (answer["accepted"], answer["rejected"]) == (2, 3)
    results = by_index(answer)
    assert set(results) == {0, 3, 4}
    for index in (0, 3):
        assert (results[index]["code"], results[index]["field"]) == (
            "timestamp_out_of_range",
            "timestamp",
        )
        assert "before 1900-01-01" in results[index]["detail"]
        assert "sent_at" in results[index]["detail"]
    assert (results[4]["code"], results[4]["field"]) == ("sent_at_out_of_range", "sent_at")
    rows = await landed(db, project.project_id, "now", "skewed")
    assert set(rows) == {"now", "skewed"}
    now = datetime.now(UTC)
    assert abs(rows["skewed"]["timestamp"] - (now - timedelta(days=1))) < timedelta(minutes=5)
    assert abs(rows["now"]["timestamp"] - now) < timedelta(minutes=5)
    assert await dead_letters(db, project.project_id) == []


@pytest.mark.parametrize(
    ("event", "code", "field"),
    [
        (
            {"timestamp": "1950-01-01T00:00:00Z", "sent_at": "2100-01-01T00:00:00Z"},
            "timestamp_out_of_range",
            "timestamp",
        ),
        (
            {"timestamp": "2026-11-27T12:00:00Z", "sent_at": "9000-01-01T00:00:00Z"},
            "sent_at_out_of_range",
            "sent_at",
        ),
        (
            # 1950 clock, 8500 event: corrected by +76 years, past the year 8999.
            {"timestamp": "8990-01-01T00:00:00Z", "sent_at": "1950-01-01T00:00:00Z"},
            "timestamp_out_of_range",
            "timestamp",
        ),
    ],
)
async def test_single_event_corrected_time_rules(
    http: aiohttp.ClientSession,
    edge: str,
    project: NewProject,
    event: dict[str, str],
    code: str,
    field: str,
) -> None:
    body = {"event_name": "a", "event_source": "w", **event}
    status, answer = await post(http, f"{edge}{ONE}", body, project.public_key)
    assert (status, answer["code"], answer["field"]) == (400, code, field)


async def test_future_rule_applies_to_the_corrected_time(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    # The client's clock is 3 days behind: an event an hour old by its clock is 2 days ahead.
    now = datetime.now(UTC)
    body = {
        "event_name": "a",
        "event_source": "w",
        "timestamp": (now - timedelta(hours=1)).isoformat(),
        "sent_at": (now - timedelta(days=3)).isoformat(),
    }
    status, answer = await post(http, f"{edge}{ONE}", body, project.public_key)
    assert (status, answer["code"], answer["field"]) == (400, "timestamp_in_future", "timestamp")
    assert "sent_at" in answer["detail"]


# 3 and 6a. Properties nested too deep, integers beyond 64 bits ----------------------


def nested(depth: int, *, lists: bool = False) -> bytes:
    """JSON properties ``depth`` levels deep (the object is level 1), as bytes.

    Written by hand: orjson in this test could not write more than 254 levels either.
    """
    if lists:
        return b'{"a":' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}"
    return b'{"a":' * depth + b"1" + b"}" * depth


def event_bytes(name: str, properties: bytes) -> bytes:
    return b'{"event_name":"%s","event_source":"w","event_id":"%s","properties":%s}' % (
        name.encode(),
        name.encode(),
        properties,
    )


async def test_properties_too_deep_is_rejected_per_event(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    settings: Settings,
    project: NewProject,
) -> None:
    limit = settings.max_properties_depth
    events = [
        event_bytes("at_limit", nested(limit)),
        event_bytes("over", nested(limit + 1)),
        event_bytes("d300", nested(300)),  # orjson writes at most 254 levels: was a 500
        event_bytes("d1000", nested(1000, lists=True)),  # the body parser's 1,024 minus 3
        event_bytes("flat", b'{"page": "/"}'),
    ]
    body = b'{"events":[' + b",".join(events) + b"]}"
    status, answer = await post_raw(http, f"{edge}{BATCH}", body, project.public_key)
    assert status == 202
    assert (answer["accepted"], answer["rejected"]) == (2, 3)
    results = by_index(answer)
    assert set(results) == {1, 2, 3}
    for result in results.values():
        assert (result["code"], result["field"]) == ("properties_too_deep", "properties")
        assert f"the limit is {limit}" in result["detail"]
    rows = await landed(db, project.project_id, "at_limit", "flat")
    assert set(rows) == {"at_limit", "flat"}
    assert orjson.loads(rows["at_limit"]["properties"]) == orjson.loads(nested(limit))

    status, answer = await post_raw(
        http, f"{edge}{ONE}", event_bytes("one", nested(500)), project.public_key
    )
    assert (status, answer["code"], answer["field"]) == (400, "properties_too_deep", "properties")


async def test_segment_messages_too_deep_or_too_big_are_rejected_alone(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    # Segment measured each message with orjson before validation: a 500 for the batch.
    messages = [
        b'{"type":"track","event":"deep","messageId":"deep","properties":%s}' % nested(300),
        b'{"type":"track","event":"big","messageId":"big","properties":{"n":18446744073709551616}}',
        b'{"type":"track","event":"ok","messageId":"ok"}',
    ]
    key = base64.b64encode(f"{project.public_key}:".encode()).decode()
    async with http.post(
        f"{edge}/v1/batch",
        data=b'{"batch":[' + b",".join(messages) + b"]}",
        headers={"Authorization": f"Basic {key}", "Content-Type": "application/json"},
    ) as resp:
        # A batch with rejected messages is a 400 naming them; the valid one is kept.
        assert resp.status == 400
        answer = await resp.json()
    assert answer["code"] == "messages_rejected"
    assert (answer["accepted"], answer["rejected"]) == (1, 2)
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [
        (0, "properties_too_deep"),
        (1, "properties_invalid"),
    ]


async def test_integers_beyond_64_bits_are_refused_by_name(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    db: asyncpg.Pool,
    project: NewProject,
) -> None:
    body = b'{"events": [%s]}' % b",".join(
        [
            event_bytes("big", b'{"n": 18446744073709551616}'),  # 2^64: was stored as a float
            event_bytes(
                "nested", b'{"order": {"items": [{"id": 1}, {"id": -9223372036854775809}]}}'
            ),
            event_bytes("huge", b'{"h": 1%s}' % (b"0" * 300)),
            event_bytes(
                "edges",
                b'{"max": 18446744073709551615, "min": -9223372036854775808,'
                b' "f": 1.8446744073709552e19, "s": "123456789012345678901234"}',
            ),
        ]
    )
    status, answer = await post_raw(http, f"{edge}{BATCH}", body, project.public_key)
    assert status == 202
    assert (answer["accepted"], answer["rejected"]) == (1, 3)
    results = by_index(answer)
    assert set(results) == {0, 1, 2}
    for result in results.values():
        assert (result["code"], result["field"]) == ("properties_invalid", "properties")
        assert "beyond 64 bits" in result["detail"]
    assert results[0]["detail"].startswith("properties.n ")
    assert results[1]["detail"].startswith("properties.order.items[1].id ")
    assert results[2]["detail"].startswith("properties.h ")
    rows = await landed(db, project.project_id, "edges")
    async with db.acquire() as conn:
        kept = await conn.fetchrow(
            "SELECT properties->>'max' AS max, properties->>'min' AS min,"
            " properties->>'s' AS s, jsonb_typeof(properties->'f') AS f"
            " FROM events WHERE project_id = $1 AND event_id = 'edges'",
            project.project_id,
        )
    assert dict(kept) == {
        "max": "18446744073709551615",
        "min": "-9223372036854775808",
        "s": "123456789012345678901234",
        "f": "number",
    }
    assert set(rows) == {"edges"}

    status, answer = await post_raw(
        http, f"{edge}{ONE}", event_bytes("one", b'{"n": 18446744073709551616}'), project.public_key
    )
    assert (status, answer["code"], answer["field"]) == (400, "properties_invalid", "properties")
    assert answer["detail"].startswith("properties.n ")

    # Beyond a double's range (about 1e308) orjson cannot read the body at all.
    status, answer = await post_raw(
        http, f"{edge}{ONE}", event_bytes("one", b'{"n": 1%s}' % (b"0" * 400)), project.public_key
    )
    assert (status, answer["code"], answer["field"]) == (400, "invalid_json", "body")


# 4. A corrupt gzip body --------------------------------------------------------------


async def test_corrupt_gzip_is_400_invalid_encoding(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    for path in (ONE, BATCH):
        status, answer = await post_raw(
            http,
            f"{edge}{path}",
            b"this is not gzip at all",
            project.public_key,
            **{"Content-Encoding": "gzip"},
        )
        assert status == 400
        assert (answer["code"], answer["field"]) == ("invalid_encoding", "Content-Encoding")


# 5 and 6b. Slow and vanishing clients, aiohttp's own errors ---------------------------


class Trickle:
    """Send bytes one at a time, ``interval`` seconds apart, until done, cut off or stopped."""

    def __init__(self, writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
        self.sent = 0
        self.total = len(data)
        self.task = asyncio.create_task(self._run(writer, data, interval))

    async def _run(self, writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
        try:
            for byte in data:
                await asyncio.sleep(interval)
                writer.write(bytes([byte]))
                await writer.drain()
                self.sent += 1
        except ConnectionError:
            pass

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_slow_body_gets_408_and_the_connection_closes(
    settings_factory: Callable[..., Settings], db: asyncpg.Pool, project: NewProject
) -> None:
    settings = settings_factory(http_body_timeout_seconds=1.0)
    runner = await start_edge(settings)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.http_port)
        body = orjson.dumps({"events": [{"event_name": "slow", "event_source": "w"}]})
        headers = {
            **auth(project.public_key),
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        writer.write(request_head(BATCH, headers))
        started = time.monotonic()
        sender = Trickle(writer, body, 0.25)  # the whole body would take 15 s
        response = await read_response(reader, timeout=10)
        waited = time.monotonic() - started
        assert response.status == 408
        assert response.json()["code"] == "body_timeout"
        assert response.json()["field"] == "body"
        assert response.headers["connection"].lower() == "close"
        assert 0.9 <= waited < 5
        # No lingering to drain the rest of the trickle: the server closes at once.
        assert await closed_by_peer(reader, 3)
        await sender.stop()
        assert sender.sent < sender.total
        writer.close()
    finally:
        await runner.cleanup()


async def test_slow_headers_are_cut_off(
    settings_factory: Callable[..., Settings], db: asyncpg.Pool
) -> None:
    settings = settings_factory(http_header_timeout_seconds=1.0)
    runner = await start_edge(settings)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.http_port)
        writer.write(b"POST /api/events/ingest/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        sender = Trickle(writer, b"X-Slow: " + b"a" * 100, 0.2)  # would take 22 s
        assert await closed_by_peer(reader, 8)
        assert 0.9 <= time.monotonic() - started < 5
        await sender.stop()
        assert sender.sent < sender.total
        writer.close()
    finally:
        await runner.cleanup()


async def rejections(http: aiohttp.ClientSession, edge: str, reason: str) -> float:
    async with http.get(f"{edge}/metrics") as resp:
        text = await resp.text()
    line = f'sa_ingest_rejections_total{{reason="{reason}"}} '
    return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


async def test_client_leaving_mid_body_is_one_info_line_and_counted(
    http: aiohttp.ClientSession,
    edge: str,
    settings: Settings,
    project: NewProject,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    before = await rejections(http, edge, "client_disconnected")
    _, writer = await asyncio.open_connection("127.0.0.1", settings.http_port)
    headers = {**auth(project.public_key), "Content-Type": "application/json"}
    writer.write(request_head(BATCH, {**headers, "Content-Length": "1000"}) + b'{"events": [')
    await writer.drain()
    await asyncio.sleep(0.3)  # the handler is reading the body now
    writer.close()

    async def counted() -> bool:
        return await rejections(http, edge, "client_disconnected") == before + 1

    await wait_for(counted, timeout=10)
    await asyncio.sleep(0.3)  # anything logged late would show up now
    ours = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(ours) == 1
    assert (ours[0].levelno, ours[0].name) == (logging.INFO, "web.body")
    assert ours[0].exc_info is None
    loud = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.split(".")[0] in ("web", "aiohttp")
    ]
    assert loud == []


async def test_connections_beyond_the_cap_get_503(
    settings_factory: Callable[..., Settings], db: asyncpg.Pool
) -> None:
    settings = settings_factory(http_max_connections=2)
    runner = await start_edge(settings)
    port = settings.http_port
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    try:
        await asyncio.sleep(0.3)  # both accepted by the server
        refused = await exchange(port, b"")
        assert refused.status == 503
        assert refused.json()["code"] == "too_many_connections"
        assert refused.headers["connection"].lower() == "close"
        # A freed slot serves again.
        held.pop()[1].close()

        async def served() -> bool:
            answer = await exchange(port, request_head("/healthz", {}, method="GET"))
            return answer.status == 200

        await wait_for(served, timeout=10, interval=0.2)
    finally:
        for _, writer in held:
            writer.close()
        await runner.cleanup()


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (
            request_head(ONE, {"X-Big": "a" * 10_000, "Content-Length": "2"}) + b"{}",
            400,
            "header_too_large",
        ),
        (
            request_head(ONE, {"Content-Encoding": "br", "Content-Length": "2"}) + b"{}",
            415,
            "unsupported_content_encoding",
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n", 400, None),
    ],
    ids=["oversized-header", "brotli", "not-http"],
)
async def test_aiohttp_own_errors_are_json(
    edge: str, settings: Settings, request_bytes: bytes, status: int, code: str | None
) -> None:
    answer = await exchange(settings.http_port, request_bytes)
    assert answer.status == status
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["detail"]
    assert body["code"] == code if code else body["code"] in ("invalid_request_line", "bad_request")


# 6c. The worker's web server address ---------------------------------------------------


def listening_hosts(port: int) -> set[str]:
    """The addresses with a TCP socket listening on ``port``, from /proc/net/tcp{,6}."""
    hosts = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with open(table) as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                    continue
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                hosts.add(socket.inet_ntop(family, words))
    return hosts


async def test_worker_web_server_listens_on_loopback_by_default(
    worker: WorkerProcess, settings: Settings
) -> None:
    assert Settings.model_fields["worker_web_host"].default == "127.0.0.1"
    assert listening_hosts(settings.worker_web_port) == {"127.0.0.1"}
