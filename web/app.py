"""The aiohttp edge: ``make_edge(settings)`` builds the application.

Each resource (PostgreSQL pool, Redis client) is opened and closed by one
cleanup context and stored under a typed ``web.AppKey``. ``edge_runner``
serves it with the connection guards of ``web.server`` (header deadline,
connection cap, protocol errors as JSON).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web

from analytics.pipeline import buffer
from analytics.settings import Settings
from analytics.storage.migrate import prepare_database
from web import (
    admin,
    audit,
    dashboard,
    export,
    fleet,
    health,
    heap,
    ingest,
    openapi,
    pages,
    realtime,
    segment,
    stats,
    tracker,
)
from web.admin_auth import MIN_TOKEN_LENGTH, admin_token
from web.app_keys import (
    BUFFER,
    KEY_CACHE,
    PG_POOL,
    REDIS,
    SETTINGS,
    SHARE_CACHE,
    SOURCE_CACHE,
    TRUSTED_PROXIES,
)
from web.auth import KeyCache, ShareCache, SourceCache
from web.client import parse_networks
from web.middleware import error_middleware
from web.server import EdgeRunner

log = logging.getLogger(__name__)


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    await prepare_database(
        settings.database_url, partitions_ahead_days=settings.partitions_ahead_days
    )
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
    try:
        app[PG_POOL] = pool
        app[KEY_CACHE] = KeyCache(pool, settings.key_cache_seconds)
        app[SOURCE_CACHE] = SourceCache(pool)
        app[SHARE_CACHE] = ShareCache(pool)
        yield
    finally:
        await pool.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = buffer.connect(settings.redis_url)
    limiter = None
    if settings.rate_limit_redis_url:
        limiter = buffer.connect(
            settings.rate_limit_redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
    app[REDIS] = client
    app[BUFFER] = buffer.BufferWriter(client, settings.stream_key, limiter=limiter)
    try:
        yield
    finally:
        await client.aclose()
        if limiter is not None:
            await limiter.aclose()


def make_edge(settings: Settings) -> web.Application:
    """The edge application for these settings (not yet started)."""
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=settings.max_batch_bytes * 2 + 1024,
    )
    app[SETTINGS] = settings
    if settings.admin_token is not None and admin_token(settings) is None:
        log.warning(
            "ADMIN_TOKEN is shorter than %d characters: the admin view stays off",
            MIN_TOKEN_LENGTH,
        )
    app[TRUSTED_PROXIES] = parse_networks(settings.trusted_proxies)
    app.cleanup_ctx.append(_postgres)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(audit.audit_ctx)
    app.router.add_post("/api/events/ingest/", ingest.ingest_one)
    app.router.add_post("/api/events/batch/", ingest.ingest_batch)
    app.router.add_route("OPTIONS", "/api/events/ingest/", ingest.preflight)
    app.router.add_route("OPTIONS", "/api/events/batch/", ingest.preflight)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics_view)
    dashboard.add_routes(app)
    export.add_routes(app)
    realtime.add_routes(app)
    stats.add_routes(app)
    pages.add_routes(app)
    tracker.add_routes(app)
    segment.add_routes(app)
    openapi.add_routes(app)
    admin.add_routes(app)
    return app


def edge_runner(settings: Settings, **kwargs: Any) -> EdgeRunner:
    """A runner for the edge application; ``kwargs`` go to ``web.AppRunner``."""
    return EdgeRunner(
        make_edge(settings),
        header_timeout=settings.http_header_timeout_seconds,
        max_connections=settings.http_max_connections,
        **kwargs,
    )


async def serve_edge(settings: Settings) -> None:
    """Serve the edge until SIGINT/SIGTERM, then drain in-flight requests and close.

    With ``EDGE_PROCESSES`` above 1 this process supervises that many edges instead
    (``web.fleet``), each on the same port.
    """
    if settings.edge_processes > 1 and not fleet.is_child():
        await fleet.supervise(settings)
        return
    runner = edge_runner(settings, access_log=None, shutdown_timeout=10)
    await runner.setup()
    heap.settle()  # startup's objects are made: no collection walks them again
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(
            runner,
            settings.http_host,
            settings.http_port,
            reuse_address=True,
            reuse_port=fleet.is_child(),
        )
        await site.start()
        log.info("edge listening on http://%s:%d", settings.http_host, settings.http_port)
        await stop.wait()
    finally:
        await runner.cleanup()
