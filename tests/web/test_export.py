"""``GET /api/export/events/`` and ``/api/export/stats/`` over a real socket (SPEC §11)."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import os
import subprocess
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import orjson

from analytics.dev.broker import wait_for_port
from analytics.dev.processes import analytics_command
from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.settings import Settings
from analytics.storage import exports, projects
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject, resolve_source
from analytics.transfer.events_file import LEADING_COLUMNS, export_columns
from tests.support.stack import auth
from tests.support.transfer import TRICKY, fill

EXPORT = "/api/export/events/"
STATS = "/api/export/stats/"


async def _get(
    http: aiohttp.ClientSession, url: str, key: str, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url, headers={**auth(key), **headers}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_csv_parses_and_keeps_every_character(
    db: asyncpg.Pool, edge: str, http: aiohttp.ClientSession, project: NewProject
) -> None:
    written = await fill(db, project.project_id)
    status, headers, body = await _get(http, f"{edge}{EXPORT}?format=csv", project.private_key)
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    records = list(csv.reader(io.StringIO(body.decode(), newline="")))
    header, rows = records[0], records[1:]
    async with db.acquire() as conn:
        table = await exports.event_columns(conn)
    # Every column of the table plus the source's name, the known ones in their order.
    assert header == list(export_columns(table))
    assert set(header) == {*table, "event_source"}
    assert header[:13] == list(LEADING_COLUMNS[:13])
    assert len(rows) == len(written)
    by_id = {row[header.index("event_id")]: dict(zip(header, row, strict=True)) for row in rows}
    for event in written:
        got = by_id[event.event_id]
        assert orjson.loads(got["properties"]) == orjson.loads(event.properties)
        assert got["event_source"] == event.event_source
        assert got["ip_address"] == (event.ip_address or "")
        assert datetime.fromisoformat(got["timestamp"]) == datetime(1970, 1, 1, tzinfo=UTC) + (
            timedelta(microseconds=event.timestamp_us)
        )
    tricky = [orjson.loads(r["properties"]) for r in by_id.values() if "text" in r["properties"]]
    assert tricky and all(
        p["text"] == TRICKY["text"] and p["name"] == TRICKY["name"] for p in tricky
    )
    # Oldest first.
    times = [r[header.index("timestamp")] for r in rows]
    assert times == sorted(times)


async def test_ndjson_gzip_streams_the_same_events(
    db: asyncpg.Pool, edge: str, project: NewProject
) -> None:
    written = await fill(db, project.project_id)
    start = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    url = f"{edge}{EXPORT}"
    params = {"start_date": start, "format": "ndjson"}
    async with aiohttp.ClientSession(auto_decompress=False) as raw_http:
        async with raw_http.get(
            url, params=params, headers={**auth(project.private_key), "Accept-Encoding": "gzip"}
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Encoding"] == "gzip"
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert resp.content_type == "application/x-ndjson"
            compressed = await resp.read()
        async with raw_http.get(
            url, params=params, headers={**auth(project.private_key), "Accept-Encoding": "identity"}
        ) as resp:
            assert "Content-Encoding" not in resp.headers
            plain = await resp.read()
    assert gzip.decompress(compressed) == plain
    events = [orjson.loads(line) for line in plain.splitlines()]
    recent = {e.event_id for e in written if e.timestamp_us >= to_us(datetime.fromisoformat(start))}
    assert {e["event_id"] for e in events} == recent  # the range: late events left out
    assert all(isinstance(e["properties"], dict) for e in events)


async def test_only_the_private_key_of_the_project_exports_it(
    db: asyncpg.Pool,
    edge: str,
    http: aiohttp.ClientSession,
    project: NewProject,
) -> None:
    await fill(db, project.project_id, count=6)
    status, _, body = await _get(http, f"{edge}{EXPORT}", project.public_key)
    assert status == 403 and orjson.loads(body)["code"] == "public_key_not_allowed"
    async with http.get(f"{edge}{EXPORT}") as resp:
        assert resp.status == 401
    async with db.acquire() as conn:
        other = await projects.create_project(conn, "export-other")
    status, _, body = await _get(http, f"{edge}{EXPORT}", other.private_key)
    assert status == 200 and body == b""  # the other project has nothing; ours is not shown
    status, _, body = await _get(http, f"{edge}{STATS}", project.public_key)
    assert status == 403


async def test_bad_parameters_are_400_naming_the_field(
    edge: str, http: aiohttp.ClientSession, project: NewProject
) -> None:
    cases = [
        (f"{EXPORT}?format=xml", "format_invalid", "format"),
        (f"{EXPORT}?start_date=yesterday", "start_date_invalid", "start_date"),
        (f"{EXPORT}?end_date=2024-13-01", "end_date_invalid", "end_date"),
        (f"{EXPORT}?start_date=2024-02-01&end_date=2024-01-01", "date_range_invalid", "start_date"),
        (f"{STATS}?period=week", "period_invalid", "period"),
        (f"{STATS}?period=custom&date=2024-01-01", "date_invalid", "date"),
        (f"{STATS}?period=day&date=01/02/2024", "date_invalid", "date"),
    ]
    for path, code, field in cases:
        status, _, body = await _get(http, f"{edge}{path}", project.private_key)
        assert status == 400, path
        assert orjson.loads(body) == {
            "code": code,
            "detail": orjson.loads(body)["detail"],
            "field": field,
        }


async def test_stats_zip_holds_one_csv_per_breakdown(
    db: asyncpg.Pool, edge: str, http: aiohttp.ClientSession, project: NewProject
) -> None:
    written = await fill(db, project.project_id)
    today = datetime.now(UTC).date()
    first = today - timedelta(days=120)
    status, headers, body = await _get(
        http, f"{edge}{STATS}?period=custom&date={first},{today}", project.private_key
    )
    assert status == 200 and headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert sorted(archive.namelist()) == [
        "custom_events.csv",
        "event_sources.csv",
        "visitors_per_day.csv",
    ]

    def read(name: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(archive.read(name).decode(), newline="")))

    visitors = read("visitors_per_day.csv")
    assert sum(int(r["events"]) for r in visitors) == len(written)
    assert list(visitors[0]) == [
        "day",
        "events",
        "estimated_events",
        "unique_users",
        "unique_sessions",
    ]
    events = read("custom_events.csv")
    assert sum(int(r["events"]) for r in events) == len(written)
    assert {r["event_name"] for r in events} == {"page_view", "signup", "click"}
    sources = read("event_sources.csv")
    assert {r["event_source"] for r in sources} == {"web", "ios"}
    assert sum(int(r["events"]) for r in sources) == len(written)
    # The default period (30 days to today) leaves the 95-day-old events out.
    status, _, body = await _get(http, f"{edge}{STATS}", project.private_key)
    recent = zipfile.ZipFile(io.BytesIO(body)).read("visitors_per_day.csv").decode()
    assert sum(int(r["events"]) for r in csv.DictReader(io.StringIO(recent))) < len(written)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def _bulk(db: asyncpg.Pool, project_id: str, count: int) -> None:
    """``count`` events with 200-byte properties, written as the sink writes them."""
    base = to_us(datetime.now(UTC) - timedelta(hours=1))
    async with db.acquire() as conn:
        source = await resolve_source(conn, project_id, "bulk")
        cache = PartitionCache()
        step = 10_000
        for offset in range(0, count, step):
            rows = [
                EventRow(
                    project_id,
                    f"b{i:07d}",
                    source,
                    "bulk",
                    f"u{i % 1000}",
                    f"s{i % 3000}",
                    "page_view",
                    orjson.dumps({"i": i, "pad": "x" * 200}).decode(),
                    base + i,
                    1.0,
                    base + i,
                    "198.51.100.1",
                    "bulk-agent",
                )
                for i in range(offset, min(offset + step, count))
            ]
            await write_events(conn, rows, cache, aggregate=False)


async def test_a_large_export_streams_in_bounded_memory(
    db: asyncpg.Pool, settings_factory: Callable[..., Settings], run_dir: Path
) -> None:
    """200,000 events (about 90 MB of NDJSON) leave the edge's peak RSS where 2,000 left it."""
    async with db.acquire() as conn:
        small = await projects.create_project(conn, "export-small")
        large = await projects.create_project(conn, "export-large")
    await _bulk(db, small.project_id, 2_000)
    await _bulk(db, large.project_id, 200_000)
    settings = settings_factory()
    log = run_dir / f"export-edge-{settings.http_port}.log"
    proc = subprocess.Popen(
        analytics_command("edge"),
        env={**os.environ, **settings.as_environ()},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{settings.http_port}{EXPORT}"
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", settings.http_port, 60)

        async def export(key: str) -> tuple[int, int]:
            size = chunks = 0
            async with (
                aiohttp.ClientSession() as session,
                session.get(url, headers=auth(key)) as resp,
            ):
                assert resp.status == 200
                async for chunk in resp.content.iter_any():
                    size += len(chunk)
                    chunks += 1
            return size, chunks

        small_size, _ = await export(small.private_key)
        after_small = _peak_rss_kib(proc.pid)
        large_size, large_chunks = await export(large.private_key)
        after_large = _peak_rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert large_size > 60_000_000 and large_size > 80 * small_size
    assert large_chunks > 100  # it arrived as a stream, not as one body
    growth_mib = (after_large - after_small) / 1024
    assert growth_mib < 20, (
        f"peak RSS grew {growth_mib:.1f} MiB over a {large_size >> 20} MiB export"
    )
