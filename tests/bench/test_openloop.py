"""The open-loop generator keeps its schedule whatever the server does.

Each test starts its own aiohttp server with a deliberately slow handler and checks
the generator's bookkeeping (how many requests left, from which clock latency counts).
Nothing here measures the product.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from analytics.dev.broker import free_port
from bench.openloop import Plan, offer, percentile, report, run


async def _serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.fixture
async def slow_url() -> AsyncIterator[str]:
    """Every answer takes 0.2 s; a closed loop of c clients gets at most 5c requests/s."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.2)
        return web.Response(status=202)

    async for url in _serve(handler):
        yield url


@pytest.fixture
async def serial_url() -> AsyncIterator[str]:
    """One request at a time, 10 ms each: at most 100 answers/s, the rest queue."""
    lock = asyncio.Lock()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        async with lock:
            await asyncio.sleep(0.01)
        return web.Response(status=202)

    async for url in _serve(handler):
        yield url


async def test_sends_on_schedule_whatever_the_answers_take(slow_url: str) -> None:
    # 150 requests due over 1.5 s against 0.2 s answers: a closed loop of 16 clients
    # could send at most 16 * 1.5 / 0.2 = 120 in that time.
    plan = Plan(slow_url, "k", rate=100, seconds=1.5)
    outcome = await run(plan)
    assert outcome.due == 150
    assert outcome.sent == 150
    assert outcome.ok == 150
    assert outcome.dropped == 0
    assert min(outcome.latencies_s) >= 0.2


async def test_latency_counts_from_the_due_time(serial_url: str) -> None:
    # 200 requests due in 1 s, served 100/s: the last is answered about 1 s after it
    # was due. Timed from its own send by a closed loop it would read 10 ms.
    plan = Plan(serial_url, "k", rate=200, seconds=1.0)
    result = report(plan, await run(plan))
    assert result.sent == 200
    assert result.max_ms is not None and result.max_ms >= 500
    assert result.p50_ms is not None and result.p50_ms >= 100


async def test_overload_shows_as_drops_not_as_a_lower_offer(slow_url: str) -> None:
    plan = Plan(slow_url, "k", rate=100, seconds=1.0, max_in_flight=5)
    outcome = await run(plan)
    assert outcome.due == 100
    assert outcome.sent + outcome.dropped == 100
    assert outcome.dropped > 50


async def test_processes_share_one_schedule(slow_url: str) -> None:
    plan = Plan(slow_url, "k", rate=60, seconds=1.0)
    result = await asyncio.to_thread(offer, plan, 2)
    assert result.sent == 60
    assert result.offered_per_s == 60


def test_percentile_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) is None
