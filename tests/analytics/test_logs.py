"""Structured logging: the edge process logging JSON lines for real (formatter: tests/unit)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable

import aiohttp
import asyncpg
import orjson

from analytics.dev.broker import free_port, wait_for_port
from analytics.dev.processes import analytics_command
from analytics.settings import Settings

KEYS = {"ts", "level", "logger", "message"}


def listening(port: int) -> bool:
    try:
        wait_for_port("127.0.0.1", port, timeout=0.5)
    except TimeoutError:
        return False
    return True


async def test_edge_logs_json_lines(
    settings_factory: Callable[..., Settings], db: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    # Kafka at a closed port: /readyz then makes aiokafka log an error, a third-party record.
    settings = settings_factory(kafka_broker=f"kafka://127.0.0.1:{free_port()}")
    env = {**os.environ, **settings.as_environ(), "LOG_FORMAT": "json", "LOG_LEVEL": "info"}
    proc = subprocess.Popen(
        analytics_command("edge"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        while not await asyncio.to_thread(listening, settings.http_port):
            assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")
        url = f"http://127.0.0.1:{settings.http_port}"
        async with http.get(f"{url}/readyz") as resp:
            assert resp.status == 503
        async with http.post(f"{url}/api/events/ingest/", data=b"{") as resp:
            assert 400 <= resp.status < 500  # refused, not a crash
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, stderr.decode(errors="replace")
    lines = [line for line in (stdout + stderr).decode().splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        record = orjson.loads(line)  # every line is one JSON object
        assert isinstance(record, dict) and set(record) >= KEYS, line
        records.append(record)
    messages = [r["message"] for r in records]
    assert any(m.startswith("edge listening on") for m in messages), messages
    assert any(r["logger"].startswith("aiokafka") for r in records), messages
