"""HTTP capacity with wrk (closed loop, full speed), and the bare baseline servers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(slots=True)
class WrkResult:
    requests_per_s: float
    p99_ms: float | None
    non_2xx: int
    requests: int


def _ms(text: str) -> float:
    number = float(re.sub(r"[a-z]+$", "", text))
    if text.endswith("us"):
        return number / 1000
    if text.endswith("ms"):
        return number
    if text.endswith("s"):
        return number * 1000
    return number


def wrk(
    url: str,
    script: str,
    key: str,
    *,
    seconds: int = 10,
    connections: int = 32,
) -> WrkResult:
    """Capacity: wrk's closed loop at full speed (paced rows use ``bench.openloop``)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    env = {**os.environ, "SA_KEY": key}
    out = subprocess.run(
        [
            binary,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(HERE / script),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return WrkResult(
        rps,
        _ms(p99.group(1)) if p99 else None,
        int(non.group(1)) if non else 0,
        int(total.group(1)) if total else 0,
    )


class BareEdge:
    """Baseline B1 (bare aiohttp handler), or B1' with ``redis``: (url, stream) to XADD to."""

    def __init__(self, port: int, redis: tuple[str, str] | None = None) -> None:
        self.port = port
        self.redis = redis
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BareEdge:
        from analytics.dev.broker import wait_for_port

        extra = list(self.redis) if self.redis else []
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "bare_edge.py"), str(self.port), *extra]
        )
        wait_for_port("127.0.0.1", self.port, 15)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
