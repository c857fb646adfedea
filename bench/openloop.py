"""Open-loop HTTP load: requests leave on a clock, whatever the earlier ones are doing.

A closed-loop generator (wrk with a delay, a pool of clients that each wait for their
answer) sends the next request only after the previous one returned, so a slow answer
quietly lowers the offered rate and hides its own latency (coordinated omission).
Here request ``i`` is due at ``start + i / rate``; a dispatcher sends every due request
as its own task, and latency is measured from the *due* time, so time spent queued
behind a slow server, or behind a late dispatcher, counts against the server.

Limits, stated so the figures are read right:

- The generator is Python on the same cores as the system it measures. When it cannot
  keep up, requests leave late; ``late`` counts those sent more than ``LATE_S`` after
  their due time. Their latency still counts from the due time, so a busy generator
  makes figures worse, never better; a run with many late sends is a weak run.
- Several processes (``processes``) share the rate to get more sends per second; each
  keeps its own clock from one common start time.
- Requests share a fixed pool of keep-alive connections (``connections`` per process);
  a request due while all are busy waits for one, and the wait counts in its latency.
- In-flight requests (sending or waiting for a connection) are capped
  (``max_in_flight``); a request due while the cap is full is not sent and counts as
  ``dropped`` (an overloaded server shows as drops and a delivered rate below the
  offered one, not as a lower offered rate).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import aiohttp
import orjson

LATE_S = 0.005

BodyMaker = Callable[[int], bytes]


def single_event(i: int) -> bytes:
    """One event with a random UUIDv4 id, as a client or the edge's default would make."""
    return orjson.dumps(
        {
            "event_name": "page_view",
            "event_source": "web",
            "user_id": f"u{i % 1000}",
            "event_id": str(uuid.uuid4()),
            "properties": {"page": f"/p{i % 50}"},
        }
    )


def batch_of_100(i: int) -> bytes:
    """A batch of 100 events, random UUIDv4 ids, users from a pool of 100,000."""
    return orjson.dumps(
        {
            "events": [
                {
                    "event_name": f"ev{j % 10}",
                    "event_source": f"src{j % 3}",
                    "user_id": f"u{(i * 100 + j) % 100_000}",
                    "event_id": str(uuid.uuid4()),
                    "properties": {"i": j},
                }
                for j in range(100)
            ]
        }
    )


BODIES: dict[str, BodyMaker] = {"single": single_event, "batch": batch_of_100}


@dataclass(slots=True, frozen=True)
class Plan:
    """What to offer: ``rate`` requests/s to ``url`` for ``seconds``, bodies of ``body``."""

    url: str
    key: str
    rate: float
    seconds: float
    body: str = "single"
    connections: int = 64
    max_in_flight: int = 5000
    timeout_s: float = 30.0


@dataclass(slots=True)
class Outcome:
    """What one run (or the merge of several processes' runs) saw."""

    due: int
    sent: int
    ok: int
    failed: int
    dropped: int
    late: int
    seconds: float
    latencies_s: list[float]

    def merge(self, other: Outcome) -> Outcome:
        return Outcome(
            self.due + other.due,
            self.sent + other.sent,
            self.ok + other.ok,
            self.failed + other.failed,
            self.dropped + other.dropped,
            self.late + other.late,
            max(self.seconds, other.seconds),
            self.latencies_s + other.latencies_s,
        )


@dataclass(slots=True, frozen=True)
class Report:
    """An outcome in the bench's words: rates per second and latency percentiles in ms."""

    offered_per_s: float
    sent_per_s: float
    ok_per_s: float
    failed: int
    dropped: int
    late: int
    sent: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(plan: Plan, outcome: Outcome) -> Report:
    lat = sorted(outcome.latencies_s)

    def ms(q: float) -> float | None:
        value = percentile(lat, q)
        return None if value is None else value * 1000

    return Report(
        offered_per_s=plan.rate,
        sent_per_s=outcome.sent / plan.seconds,
        ok_per_s=outcome.ok / plan.seconds,
        failed=outcome.failed,
        dropped=outcome.dropped,
        late=outcome.late,
        sent=outcome.sent,
        p50_ms=ms(0.50),
        p95_ms=ms(0.95),
        p99_ms=ms(0.99),
        max_ms=lat[-1] * 1000 if lat else None,
    )


async def run(
    plan: Plan, *, start_at: float | None = None, offset: int = 0, step: int = 1
) -> Outcome:
    """Offer the plan from this event loop; requests ``offset, offset+step, ...`` of the schedule.

    ``start_at`` is a ``time.time()`` instant shared by cooperating processes; each keeps
    its schedule against it (wall clock to agree on the start, the monotonic clock after).
    """
    interval = 1.0 / plan.rate
    total = int(plan.rate * plan.seconds)
    make = BODIES[plan.body]
    headers = {"Authorization": f"Bearer {plan.key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    counts = {"ok": 0, "failed": 0}
    in_flight: set[asyncio.Task[None]] = set()
    sent = dropped = late = 0

    async def one(http: aiohttp.ClientSession, body: bytes, due: float) -> None:
        try:
            async with http.post(plan.url, data=body, headers=headers) as resp:
                await resp.read()
                good = 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError):
            good = False
        if good:
            counts["ok"] += 1
            latencies.append(time.perf_counter() - due)
        else:
            counts["failed"] += 1

    # A fixed pool of keep-alive connections (per process), as a fleet of clients would
    # hold: a request due while all are busy waits for one, and that wait counts.
    connector = aiohttp.TCPConnector(limit=plan.connections)
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.time()))
        origin = time.perf_counter()
        i = offset
        while i < total:
            due = origin + i * interval
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Everything due by now leaves in this pass, each request as its own task.
            while i < total and origin + i * interval <= now:
                due = origin + i * interval
                if len(in_flight) >= plan.max_in_flight:
                    dropped += 1
                else:
                    if now - due > LATE_S:
                        late += 1
                    task = asyncio.create_task(one(http, make(i), due))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    sent += 1
                i += step
            await asyncio.sleep(0)
        if in_flight:
            await asyncio.wait(set(in_flight))
        elapsed = time.perf_counter() - origin
    due_here = len(range(offset, total, step))
    return Outcome(
        due_here, sent, counts["ok"], counts["failed"], dropped, late, elapsed, latencies
    )


def _in_process(plan: Plan, start_at: float, offset: int, step: int) -> Outcome:
    try:
        import uvloop

        return uvloop.run(run(plan, start_at=start_at, offset=offset, step=step))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(run(plan, start_at=start_at, offset=offset, step=step))


def offer(plan: Plan, processes: int = 1) -> Report:
    """Offer the plan from ``processes`` processes that interleave one schedule; blocking."""
    if processes <= 1:
        return report(plan, _in_process(plan, time.time(), 0, 1))
    start_at = time.time() + 1.0 + 0.2 * processes
    with ProcessPoolExecutor(max_workers=processes) as pool:
        futures = [pool.submit(_in_process, plan, start_at, k, processes) for k in range(processes)]
        outcomes = [f.result() for f in futures]
    merged = outcomes[0]
    for other in outcomes[1:]:
        merged = merged.merge(other)
    return report(plan, merged)


def default_processes() -> int:
    """One generator process per core, at most two: the stack needs the rest."""
    return max(1, min(2, os.cpu_count() or 1))
