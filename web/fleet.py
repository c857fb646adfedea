"""Several edge processes on one port (``EDGE_PROCESSES``), for more than one core.

``analytics edge`` with ``EDGE_PROCESSES`` above 1 becomes a small supervisor: it starts
that many copies of its own command line, each serving the same host and port with
``SO_REUSEPORT`` (the kernel spreads new connections over them), restarts one that dies,
and stops them all on SIGINT/SIGTERM. The supervisor serves nothing itself.

``/metrics`` stays complete: the children run Prometheus's multiprocess mode over one
directory (``PROMETHEUS_MULTIPROC_DIR``), so whichever process answers a scrape sums the
counters and histograms of all of them.

Every process keeps its own key cache, connection cap (``HTTP_MAX_CONNECTIONS`` is per
process) and group commit; rate limits and the buffer live in Redis, shared by all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile

from analytics.settings import Settings

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CHILD_ENV = "SA_EDGE_CHILD"


def is_child() -> bool:
    """True in an edge process started by the supervisor."""
    return CHILD_ENV in os.environ


async def supervise(settings: Settings) -> None:
    """Run ``settings.edge_processes`` edge processes until SIGINT/SIGTERM."""
    count = settings.edge_processes
    metrics_dir = tempfile.mkdtemp(prefix="sa-edge-metrics-")
    env = {**os.environ, MULTIPROC_ENV: metrics_dir}
    argv = [sys.executable, *sys.orig_argv[1:]]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def start(index: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*argv, env={**env, CHILD_ENV: str(index)})

    children = [await start(i) for i in range(count)]
    log.info(
        "edge: %d processes on http://%s:%d (metrics in %s)",
        count,
        settings.http_host,
        settings.http_port,
        metrics_dir,
    )
    try:
        while not stop.is_set():
            waits = {asyncio.ensure_future(c.wait()): i for i, c in enumerate(children)}
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait([*waits, stopping], return_when=asyncio.FIRST_COMPLETED)
            for future in waits:
                future.cancel()
            for future in done:
                if future is stopping:
                    continue
                index = waits[future]
                dead = children[index]
                log.error(
                    "edge process %d exited with %s; restarting it", dead.pid, dead.returncode
                )
                _mark_dead(dead.pid, metrics_dir)
                await asyncio.sleep(0.5)
                children[index] = await start(index)
            stopping.cancel()
    finally:
        for child in children:
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                await asyncio.wait_for(child.wait(), 15)
            except TimeoutError:
                child.kill()
                await child.wait()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _mark_dead(pid: int, directory: str) -> None:
    """Drop a dead process's live gauges from the shared metrics (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
