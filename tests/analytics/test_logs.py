"""Structured logging: the JSON formatter, and the edge process logging JSON lines for real."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import aiohttp
import asyncpg
import orjson

from analytics import logs
from analytics.dev.broker import free_port, wait_for_port
from analytics.dev.processes import analytics_command
from analytics.settings import Settings

KEYS = {"ts", "level", "logger", "message"}


def test_json_formatter_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("tests.logs.formatter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("two\nlines %s", "here", extra={"project": "p1", "events": 3})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert first["message"] == "two\nlines here"
    assert first["level"] == "WARNING" and first["logger"] == "tests.logs.formatter"
    assert first["project"] == "p1" and first["events"] == 3
    assert first["ts"].endswith("+00:00") and "exc" not in first
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc"]


SCRIPT = """
import logging, sys, warnings
from analytics import logs
logs.configure("info", sys.argv[1])
logs.configure("info", sys.argv[1])  # twice: still one handler
logging.getLogger("probe").debug("hidden")
logging.getLogger("probe").info("hello %s", "you")
warnings.warn("careful")
raise SystemError("crash")
"""


def run_configured(fmt: str) -> list[str]:
    """stderr lines of a process that calls ``configure(fmt)``, logs, warns and crashes."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, fmt], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and result.stdout == ""
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_configure_json_and_text() -> None:
    records = [orjson.loads(line) for line in run_configured("json")]
    assert [(r["logger"], r["level"]) for r in records] == [
        ("probe", "INFO"), ("py.warnings", "WARNING"), ("analytics", "CRITICAL"),
    ]  # fmt: skip
    assert records[0]["message"] == "hello you"
    assert "careful" in records[1]["message"]
    assert "SystemError: crash" in records[2]["exc"]

    text = run_configured("text")
    assert text[0].endswith("INFO    probe: hello you") and not text[0].startswith("{")
    assert "hidden" not in "\n".join(text)


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
