"""Real Segment-protocol SDKs pointed at an edge: Segment's and RudderStack's Python
SDKs in this process, Segment's Node SDK (``@segment/analytics-node``) through
``node_sdk.js``.

Each delivery puts every call into one batch, so a test knows the index the
edge will name: a Python client is made with its upload thread not yet
started, the calls are queued, then the thread starts with a batch size of
exactly that many messages; the Node script sets ``flushAt`` to the number of
calls. The SDKs' own retry logic is left as shipped, only ``max_retries`` is
lowered so a retry would show within seconds.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rudderstack.analytics
import segment.analytics

ROOT = Path(__file__).resolve().parents[2]
NODE_SCRIPT = Path(__file__).with_name("node_sdk.js")
NODE_PACKAGE = ROOT / "node_modules" / "@segment" / "analytics-node"
PYTHON_SDKS = ("segment", "rudderstack")


@dataclass
class Delivery:
    """What the SDK reported: its error callback's calls as (error, messages in the batch)."""

    errors: list[tuple[Any, list[dict[str, Any]]]] = field(default_factory=list)


class PythonSdk:
    """``segment.analytics.Client`` or ``rudderstack.analytics.Client`` for one write key."""

    def __init__(self, name: str, host: str, write_key: str, *, retries: int = 2) -> None:
        module: Any = {"segment": segment.analytics, "rudderstack": rudderstack.analytics}[name]
        self.name = name
        self.host = host
        self.write_key = write_key
        self.retries = retries
        self.module = module

    def _deliver(self, calls: Callable[[Any], None]) -> Delivery:
        delivery = Delivery()
        lock = threading.Lock()

        def on_error(error: Any, batch: list[dict[str, Any]]) -> None:
            with lock:
                delivery.errors.append((error, batch))

        # send=False: the upload thread is made but not started (and no atexit hook);
        # turning send on afterwards makes the calls queue instead of being dropped.
        client = self.module.Client(
            self.write_key,
            host=self.host,
            send=False,
            on_error=on_error,
            max_retries=self.retries,
            upload_interval=0.5,
        )
        client.send = True
        calls(client)
        (consumer,) = client.consumers
        consumer.upload_size = client.queue.qsize()
        consumer.start()
        client.flush()  # returns once the batch was answered (retries included)
        consumer.pause()
        consumer.join(timeout=10)
        return delivery

    async def deliver(self, calls: Callable[[Any], None]) -> Delivery:
        """Run ``calls(client)``, then upload them as one batch and wait for the outcome."""
        return await asyncio.to_thread(self._deliver, calls)


def node_available() -> bool:
    return shutil.which("node") is not None


def _run_node(spec: dict[str, Any]) -> dict[str, Any]:
    assert NODE_PACKAGE.exists(), "@segment/analytics-node is not installed: run make install"
    result = subprocess.run(
        ["node", str(NODE_SCRIPT), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


async def run_node(
    host: str, write_key: str, calls: list[tuple[str, dict[str, Any]]], *, retries: int = 2
) -> dict[str, Any]:
    """Make ``calls`` with Segment's Node SDK as one batch; its results, attempts and reasons."""
    spec = {"host": host, "writeKey": write_key, "maxRetries": retries, "calls": calls}
    return await asyncio.to_thread(_run_node, spec)
