"""Export a project and import the file elsewhere; import Segment archives (SPEC §11).

Against the real stack: the CLI as an operator runs it, the Redis buffer, the
broker and a worker storing what the import appends.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import pty
import subprocess
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from analytics.dev.processes import WorkerProcess, analytics_command
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.projects import NewProject
from tests.support.load import settled
from tests.support.stack import auth, stored_rows, wait_for
from tests.support.transfer import aggregates, cli_json, fill, raw_rows, run_cli


async def _new_project(db: asyncpg.Pool) -> NewProject:
    async with db.acquire() as conn:
        return await projects.create_project(conn, f"import-{uuid.uuid4().hex[:6]}")


async def _stored(db: asyncpg.Pool, project_id: str, n: int) -> None:
    await wait_for(lambda: stored_rows(db, project_id, n), timeout=60)


async def _stats(http: aiohttp.ClientSession, edge: str, key: str) -> dict[str, bytes]:
    """The stats ZIP of the last 200 days: file name -> CSV bytes."""
    today = datetime.now(UTC).date()
    url = f"{edge}/api/export/stats/?period=custom&date={today - timedelta(days=200)},{today}"
    async with http.get(url, headers=auth(key)) as resp:
        assert resp.status == 200
        archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    return {name: archive.read(name) for name in archive.namelist()}


async def test_export_then_import_gives_the_same_rows_and_aggregates(
    db: asyncpg.Pool,
    settings: Settings,
    worker: WorkerProcess,
    edge: str,
    http: aiohttp.ClientSession,
    project: NewProject,
    tmp_path: Path,
) -> None:
    written = await fill(db, project.project_id)
    target = await _new_project(db)
    export = tmp_path / "events.ndjson"
    summary = await cli_json(
        settings, "export-events", project.project_id, "--format", "ndjson", "--output", str(export)
    )
    assert summary["events"] == len(written)
    assert len(export.read_bytes().splitlines()) == len(written)

    report = await cli_json(settings, "import-events", target.project_id, str(export))
    assert report["accepted"] == len(written)
    assert report["duplicate"] == 0 and report["rejected"] == 0
    await _stored(db, target.project_id, len(written))
    await settled(db, target.project_id)  # unique counts follow their counts

    source_rows = await raw_rows(db, project.project_id)
    imported_rows = await raw_rows(db, target.project_id)
    assert len(imported_rows) == len(written)
    for mine, theirs in zip(source_rows, imported_rows, strict=True):
        assert mine == theirs  # every column, field by field, bar the project's ids
    assert await aggregates(db, target.project_id) == await aggregates(db, project.project_id)
    stats = await _stats(http, edge, project.private_key)
    assert len(stats) == 3 and all(body.count(b"\n") > 1 for body in stats.values())
    assert await _stats(http, edge, target.private_key) == stats

    # The command line writes what the endpoint serves, byte for byte.
    csv_file = tmp_path / "events.csv"
    await cli_json(
        settings, "export-events", project.project_id, "--format", "csv", "--output", str(csv_file)
    )
    async with http.get(
        f"{edge}/api/export/events/?format=csv", headers=auth(project.private_key)
    ) as resp:
        assert await resp.read() == csv_file.read_bytes()

    # The same file again: every line is a duplicate and nothing changes.
    again = await cli_json(settings, "import-events", target.project_id, str(export))
    assert again["accepted"] == 0 and again["duplicate"] == len(written)
    assert await raw_rows(db, target.project_id) == imported_rows
    assert await aggregates(db, target.project_id) == await aggregates(db, project.project_id)


def _messages() -> list[dict[str, Any]]:
    """One Segment message of each type, as an archive holds them."""
    context = {
        "library": {"name": "analytics-python", "version": "2.4.0"},
        "userAgent": "archive-agent/1.0",
        "page": {"url": "https://example.com/a?x=1", "path": "/a"},
    }
    base = {"anonymousId": "anon-1", "context": context, "timestamp": "2025-06-01T10:00:00Z"}
    tag = uuid.uuid4().hex[:8]
    messages: list[dict[str, Any]] = [
        {**base, "type": "track", "event": "Signed Up", "userId": "u1", "properties": {"a": 1}},
        {**base, "type": "page", "name": "Home", "properties": {"title": 'Zoë, "home"'}},
        {**base, "type": "screen", "name": "Main", "category": "app"},
        {**base, "type": "identify", "userId": "u2", "traits": {"plan": "pro"}},
        {**base, "type": "group", "groupId": "g1", "traits": {"size": 3}},
        {**base, "type": "alias", "userId": "u3", "previousId": "anon-1"},
    ]
    return [{**m, "messageId": f"{tag}-{i}"} for i, m in enumerate(messages)]


# Stored differently by construction: the project's ids, when the edge received the
# message, the address it came from (the test client vs. none in an archive), and the
# derived session (a hash of the project, the user and the time).
EDGE_SPECIFIC = ("received_at", "ip_address", "session_id")


async def test_a_segment_archive_is_stored_as_v1_batch_stores_it(
    db: asyncpg.Pool,
    settings: Settings,
    worker: WorkerProcess,
    edge: str,
    http: aiohttp.ClientSession,
    project: NewProject,
    tmp_path: Path,
) -> None:
    messages = _messages()
    async with http.post(
        f"{edge}/v1/batch", json={"batch": messages}, headers=auth(project.public_key)
    ) as resp:
        assert resp.status == 200, await resp.text()
    target = await _new_project(db)
    lines = [orjson.dumps(m) for m in messages]
    # Bad lines between the good ones: not JSON, a track without its event, an unknown type.
    lines.insert(2, b'{"type": "track", "messageId": "broken"')
    lines.insert(4, orjson.dumps({"type": "track", "messageId": "no-name", "userId": "u"}))
    lines.insert(6, orjson.dumps({"type": "purchase", "messageId": "bad-type"}))
    lines.insert(7, b"")  # blank lines are skipped, and still counted in line numbers
    archive = tmp_path / "segment-archive.jsonl.gz"  # gzip told by its bytes, not its name
    archive.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))

    result = await _import(settings, target.project_id, archive, "segment")
    report = result[0]
    assert report["accepted"] == len(messages)
    assert report["rejected"] == 3
    assert [(r["line"], r["code"]) for r in report["rejections"]] == [
        (3, "invalid_json"),
        (5, "event_name_required"),
        (7, "type_invalid"),
    ]
    assert "rejected line 3: invalid_json" in result[1]
    await _stored(db, target.project_id, len(messages))
    await _stored(db, project.project_id, len(messages))

    def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in EDGE_SPECIFIC} for r in rows]

    via_edge = comparable(await raw_rows(db, project.project_id))
    via_import = comparable(await raw_rows(db, target.project_id))
    assert via_import == via_edge
    assert {r["event_name"] for r in via_import} == {
        "Signed Up",
        "page_view",
        "screen_view",
        "identify",
        "group",
        "alias",
    }


async def _import(settings: Settings, project_id: str, path: Path, fmt: str) -> tuple[Any, str]:
    """``import-events``: its JSON report and what it wrote to stderr."""
    result = await asyncio.to_thread(
        run_cli, settings, "--json", "import-events", project_id, str(path), "--format", fmt
    )
    assert result.returncode == 0, result.stderr.decode()
    return orjson.loads(result.stdout.strip().splitlines()[-1]), result.stderr.decode()


async def test_segment_clock_correction_uses_the_archived_receive_time(
    db: asyncpg.Pool, settings: Settings, worker: WorkerProcess, project: NewProject, tmp_path: Path
) -> None:
    message = {
        "type": "track",
        "event": "Late",
        "userId": "u",
        "messageId": f"skew-{uuid.uuid4().hex[:6]}",
        "timestamp": "2025-06-01T10:00:00Z",
        "sentAt": "2025-06-01T10:05:00Z",  # the client clock was 10 minutes behind
        "receivedAt": "2025-06-01T10:15:00Z",
    }
    path = tmp_path / "skew.jsonl"
    path.write_bytes(orjson.dumps(message) + b"\n")
    report, _ = await _import(settings, project.project_id, path, "segment")
    assert report["accepted"] == 1
    rows = await wait_for(lambda: stored_rows(db, project.project_id, 1), timeout=60)
    assert rows[0]["timestamp"].isoformat() == "2025-06-01T10:10:00+00:00"
    assert rows[0]["received_at"].isoformat() == "2025-06-01T10:15:00+00:00"


async def test_a_file_of_the_wrong_format_fails_fast(
    db: asyncpg.Pool, settings: Settings, project: NewProject, tmp_path: Path
) -> None:
    ours = tmp_path / "ours.ndjson"
    ours.write_bytes(orjson.dumps({"event_name": "e", "event_source": "web"}) + b"\n")
    segment = tmp_path / "segment.jsonl"
    segment.write_bytes(orjson.dumps({"type": "track", "event": "e"}) + b"\n")
    csv_file = tmp_path / "events.csv"
    csv_file.write_bytes(b"event_id,project_id\r\nx,y\r\n")
    cases = [
        (ours, "segment", "use --format ndjson"),
        (segment, "ndjson", "use --format segment"),
        (csv_file, "ndjson", "line 1 is a CSV file"),
    ]
    for path, fmt, message in cases:
        result = await asyncio.to_thread(
            run_cli, settings, "import-events", project.project_id, str(path), "--format", fmt
        )
        assert result.returncode != 0, (path, fmt)
        assert message in result.stderr.decode(), result.stderr.decode()
    async with db.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM event_sources WHERE project_id = $1", project.project_id
        )
    assert stored == 0  # nothing was sent: not even a source was created


async def test_a_truncated_gzip_keeps_what_was_read_and_says_where_it_stopped(
    db: asyncpg.Pool, settings: Settings, worker: WorkerProcess, project: NewProject, tmp_path: Path
) -> None:
    lines = [
        orjson.dumps(
            {
                "event_name": "e",
                "event_source": "web",
                "event_id": f"cut-{i}",
                "timestamp": "2025-03-01T00:00:00Z",
                "properties": {"pad": uuid.uuid4().hex},  # random: gzip cannot shrink it away
            }
        )
        for i in range(2500)
    ]
    whole = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(whole[: len(whole) * 3 // 4])
    result = await asyncio.to_thread(
        run_cli, settings, "import-events", project.project_id, str(path)
    )
    assert result.returncode != 0
    message = result.stderr.decode()
    assert "cannot read past line" in message, message
    accepted = int(message.split("imported: ")[1].split(" accepted")[0])
    assert 1000 < accepted < 2500
    await _stored(db, project.project_id, accepted)
    assert len(await raw_rows(db, project.project_id)) == accepted


def _export_stderr(settings: Settings, project_id: str, out: Path, *, tty: bool) -> str:
    """What ``export-events`` writes to stderr, when stderr is a terminal or a pipe."""
    env = {**os.environ, **settings.as_environ()}
    argv = analytics_command("export-events", project_id, "--output", str(out))
    if not tty:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0
        return done.stderr.decode()
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        seen += data
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    return seen.decode(errors="replace")


async def test_the_progress_bar_is_drawn_only_on_a_terminal(
    db: asyncpg.Pool, settings: Settings, project: NewProject, tmp_path: Path
) -> None:
    await fill(db, project.project_id, count=12)
    out = tmp_path / "e.ndjson"
    on_terminal = await asyncio.to_thread(
        _export_stderr, settings, project.project_id, out, tty=True
    )
    assert "exporting" in on_terminal and "12/12" in on_terminal
    on_pipe = await asyncio.to_thread(_export_stderr, settings, project.project_id, out, tty=False)
    assert "exporting" not in on_pipe
    assert len(out.read_bytes().splitlines()) == 12
