"""The services a benchmark run uses: its own broker, database, stream keys and processes."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from analytics.dev.broker import free_port, start_broker, wait_for_port
from analytics.dev.processes import WorkerProcess, analytics_command
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.migrate import migrate

ADMIN_DSN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


class Stack:
    """A broker and a database for the whole run; settings per scenario."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.broker_port = free_port()
        self.db_name = f"sa_bench_{uuid.uuid4().hex[:8]}"
        base = ADMIN_DSN.rsplit("/", 1)[0]
        self.database_url = f"{base}/{self.db_name}"
        self.broker: subprocess.Popen[bytes] | None = None
        self.pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Stack:
        self.broker = start_broker(self.broker_port, self.workdir / "broker.log")
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{self.db_name}"')
        await admin.close()
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=4)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.broker is not None:
            self.broker.terminate()
            self.broker.wait(timeout=10)
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        await admin.close()

    def settings(self, **overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "redis_url": REDIS_URL,
            "kafka_broker": f"kafka://127.0.0.1:{self.broker_port}",
            "app_id": f"sa-bench-{tag}",
            "stream_key": f"sa_bench:{tag}:events",
            "events_topic": f"sa-bench-{tag}-events",
            "http_port": free_port(),
            "worker_web_port": free_port(),
            "worker_datadir": str(self.workdir / f"worker-{tag}"),
            "topic_partitions": 1,
        }
        values.update(overrides)
        return Settings(**values)

    async def project(self, name: str) -> projects.NewProject:
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            return await projects.create_project(conn, name)

    async def count(self, project_id: str) -> int:
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT count(*) FROM event_ids WHERE project_id = $1", project_id
            )
        return int(value)


class Edge:
    """``analytics edge`` as a child process."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Edge:
        env = {**os.environ, **self.settings.as_environ()}
        self.proc = subprocess.Popen(
            analytics_command("edge"),
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port("127.0.0.1", self.settings.http_port, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"


def start_worker(
    settings: Settings, workdir: Path, name: str, port: int | None = None
) -> WorkerProcess:
    worker = WorkerProcess(settings, workdir, name).start(web_port=port)
    worker.wait_ready(timeout=90)
    return worker


def peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else None


async def wait_count(stack: Stack, project_id: str, n: int, timeout: float) -> float:
    """Seconds until the project has n stored events (raises on timeout)."""
    started = time.perf_counter()
    while True:
        if await stack.count(project_id) >= n:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{project_id}: fewer than {n} events after {timeout}s")
        await asyncio.sleep(0.2)
