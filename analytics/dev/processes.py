"""Child processes that tests, the bench and ``make run`` start and kill for real.

``WorkerProcess`` is one ``analytics worker``; ``RedisServer`` a private redis-server with
an append-only file; ``analytics_command`` the argv of the ``analytics`` console script
installed beside this interpreter.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from analytics.dev.broker import free_port, wait_for_port
from analytics.settings import Settings


def redis_argv(binary: str, port: int, data_dir: Path, *, appendfsync: str) -> list[str]:
    """A loopback redis-server keeping an append-only file (no RDB snapshots) in ``data_dir``.

    ``appendfsync`` is Redis's own policy: ``always`` (fsync before each reply) or
    ``everysec`` (up to a second of accepted writes can be lost with the machine).
    """
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        appendfsync,
        "--dir",
        str(data_dir),
    ]


def analytics_command(*args: str) -> list[str]:
    """The argv that runs ``analytics ARGS`` from this interpreter's environment."""
    script = Path(sys.executable).with_name("analytics")
    if not script.exists():  # an interpreter outside the venv: fall back to PATH
        found = shutil.which("analytics")
        assert found, "the analytics console script is not installed (make install)"
        script = Path(found)
    return [str(script), *args]


class WorkerProcess:
    """One ``analytics worker`` process with its own log file."""

    def __init__(self, settings: Settings, log_dir: Path, name: str = "worker") -> None:
        self.settings = settings
        self.log_path = log_dir / f"{name}-{time.time_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, web_port: int | None = None) -> WorkerProcess:
        env = {**os.environ, **self.settings.as_environ()}
        env["WORKER_WEB_PORT"] = str(web_port or self.settings.worker_web_port)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(  # noqa: S603 - our own console script, fixed args
            analytics_command("worker", "-l", "info"),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the worker has its partitions (faust logs 'Ready')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_tail()}")
            if "Worker]: Ready" in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


class RedisServer:
    """A private redis-server on a free port, with an fsync-always append-only file."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for fault tests"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(  # noqa: S603 - redis-server from PATH, fixed args
            redis_argv(binary, self.port, self.data_dir, appendfsync="always"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
