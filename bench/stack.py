"""The services a benchmark run uses: its own broker, database, stream keys and processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from analytics.dev.broker import free_port, start_broker, wait_for_port
from analytics.dev.processes import WorkerProcess, analytics_command
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.migrate import migrate

ADMIN_DSN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Every Redis key of a run starts with sa_bench:<run>:. A run holds sa_bench:<run>:alive
# (refreshed, with a TTL) while it lives, so a new run deletes what dead runs left
# behind and never the keys of a run still going on the same Redis. Keys of runs made
# before this scheme have no alive key: they go only once untouched for IDLE_S.
KEY_ROOT = "sa_bench:"
ALIVE_TTL_S = 120
IDLE_S = 300


async def delete_keys(client: aioredis.Redis, pattern: str) -> int:
    """Delete every key matching pattern (streams and their consumer groups with them)."""
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += await client.delete(*batch)
            batch.clear()
    if batch:
        deleted += await client.delete(*batch)
    return deleted


async def delete_dead_runs(client: aioredis.Redis) -> int:
    """Delete the keys of earlier runs that are no longer alive; how many were deleted."""
    runs: set[str] = set()
    async for key in client.scan_iter(match=f"{KEY_ROOT}*", count=1000):
        parts = key.decode().split(":")
        if len(parts) > 2:
            runs.add(parts[1])
    deleted = 0
    for run in runs:
        if await client.exists(f"{KEY_ROOT}{run}:alive"):
            continue
        async for key in client.scan_iter(match=f"{KEY_ROOT}{run}:*", count=1000):
            idle = await client.object("idletime", key)
            if idle is None or int(idle) >= IDLE_S:
                deleted += await client.delete(key)
    return deleted


class Stack:
    """A broker and a database for the whole run; settings per scenario."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run = uuid.uuid4().hex[:8]
        self.redis: aioredis.Redis | None = None
        self._alive: asyncio.Task[None] | None = None
        self.stale_keys_deleted = 0
        self.broker_port = free_port()
        self.db_name = f"sa_bench_{uuid.uuid4().hex[:8]}"
        base = ADMIN_DSN.rsplit("/", 1)[0]
        self.database_url = f"{base}/{self.db_name}"
        self.broker: subprocess.Popen[bytes] | None = None
        self.pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Stack:
        self.redis = aioredis.Redis.from_url(REDIS_URL)
        await self.redis.set(f"{KEY_ROOT}{self.run}:alive", b"1", ex=ALIVE_TTL_S)
        self._alive = asyncio.create_task(self._keep_alive())
        self.stale_keys_deleted = await delete_dead_runs(self.redis)
        self.broker = start_broker(self.broker_port, self.workdir / "broker.log")
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{self.db_name}"')
        await admin.close()
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=4)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        return self

    async def _keep_alive(self) -> None:
        assert self.redis is not None
        while True:
            await asyncio.sleep(ALIVE_TTL_S / 4)
            await self.redis.set(f"{KEY_ROOT}{self.run}:alive", b"1", ex=ALIVE_TTL_S)

    async def __aexit__(self, *exc: object) -> None:
        if self._alive is not None:
            self._alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._alive
        if self.redis is not None:
            await delete_keys(self.redis, f"{KEY_ROOT}{self.run}:*")
            await self.redis.aclose()
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
            "stream_key": f"{KEY_ROOT}{self.run}:{tag}:events",
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

    def stream_key(self, name: str) -> str:
        """A Redis key of this run (deleted at its end)."""
        return f"{KEY_ROOT}{self.run}:{name}"

    async def count(self, project_id: str) -> int:
        """Events stored for the project, from its 5-minute aggregates.

        The sink adds a batch to the aggregates in the transaction that stores its raw
        rows, so the sum equals the stored count; it reads a few small rows instead of
        counting the ledger, which would compete with the worker being measured.
        """
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT coalesce(sum(event_count), 0) FROM agg_5min WHERE project_id = $1",
                project_id,
            )
        return int(value)

    async def metadata(self) -> dict[str, object]:
        """What the figures were measured on: commit, machine, cores, date, versions."""
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            pg = await conn.fetchval("SHOW server_version")
        redis_version = None
        if self.redis is not None:
            info = await self.redis.info("server")
            redis_version = info.get("redis_version")
        return {
            "git_commit": _git("rev-parse", "HEAD"),
            "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
            "machine": platform.node(),
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "postgresql": pg,
            "redis": redis_version,
            "quick": os.environ.get("BENCH_QUICK") == "1",
            "only": os.environ.get("BENCH_ONLY") or None,
        }


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


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip()


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MB, kept by the kernel over its life."""
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
        await asyncio.sleep(0.5)


async def wait_merged(
    stack: Stack, project_id: str, users_by_day: dict[date, int], timeout: float
) -> float:
    """Seconds until the project's daily unique users are ``users_by_day``: the sink merges
    sketch members after their counts (``agents.sketch_flush``), so a stored event is only
    done once its user is merged too. Exact only below the sketches' exact limit."""
    started = time.perf_counter()
    assert stack.pool is not None
    while True:
        rows = await stack.pool.fetch(
            "SELECT day, unique_users FROM project_daily_summary WHERE project_id = $1",
            project_id,
        )
        if {r["day"]: r["unique_users"] for r in rows} == users_by_day:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{project_id}: unique users not merged after {timeout}s")
        await asyncio.sleep(0.1)
