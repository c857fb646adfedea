"""``EDGE_PROCESSES=2``: two edge processes on one port, one complete ``/metrics``.

The supervisor and its children are real processes (``analytics edge``); the test kills a
child with SIGKILL and checks the supervisor brings it back.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from analytics.dev.broker import wait_for_port
from analytics.dev.processes import analytics_command
from analytics.events.models import decode_rows
from analytics.pipeline.buffer import FIELD
from analytics.settings import Settings
from analytics.storage.projects import NewProject
from tests.support.stack import wait_for

EVENT = {"event_name": "fleet", "event_source": "web"}


def accepted_requests(metrics_text: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        ours = 'status="202"' in line and 'endpoint="ingest"' in line
        if line.startswith("sa_ingest_requests_total{") and ours:
            total += float(line.rsplit(" ", 1)[1])
    return total


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


async def post_many(url: str, key: str, n: int) -> list[int]:
    # A new connection per request, so the kernel spreads them over the processes.
    statuses = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(n):
            async with s.post(
                f"{url}/api/events/ingest/", json=EVENT, headers={"Authorization": f"Bearer {key}"}
            ) as resp:
                statuses.append(resp.status)
    return statuses


async def test_two_processes_share_the_port_and_the_metrics(
    settings_factory: Callable[..., Settings],
    project: NewProject,
    redis_client: aioredis.Redis,
    run_dir: Path,
) -> None:
    settings = settings_factory(edge_processes=2)
    log = run_dir / f"fleet-{settings.http_port}.log"
    proc = subprocess.Popen(
        analytics_command("edge"),
        env={**os.environ, **settings.as_environ()},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{settings.http_port}"
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", settings.http_port, 60)
        await wait_for(lambda: asyncio.to_thread(lambda: len(children_of(proc.pid)) == 2))
        found = re.search(r"metrics in (\S+)\)", log.read_text())
        assert found, log.read_text()
        metrics_dir = Path(found.group(1))

        statuses = await post_many(url, project.public_key, 200)
        assert statuses == [202] * 200
        # Both processes took requests: each wrote its own counter file.
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            for _ in range(6):  # whichever process answers, the sum is the whole
                async with s.get(f"{url}/metrics") as resp:
                    assert accepted_requests(await resp.text()) == 200

        # A child killed is replaced; the port keeps answering.
        victim = children_of(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            kids = await asyncio.to_thread(children_of, proc.pid)
            return len(kids) == 2 and victim not in kids

        await wait_for(replaced, timeout=30)
        await asyncio.to_thread(wait_for_port, "127.0.0.1", settings.http_port, 30)
        assert await post_many(url, project.public_key, 20) == [202] * 20

        # No worker runs here: every accepted event waits in the one shared stream.
        buffered = [
            row
            for _, fields in await redis_client.xrange(settings.stream_key)
            for row in decode_rows(fields[FIELD])
        ]
        assert len(buffered) == 220
        assert {row.project_id for row in buffered} == {project.project_id}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert children_of(proc.pid) == []
    assert not metrics_dir.exists()
