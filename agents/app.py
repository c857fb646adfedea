"""The composition root: the faust app, its agents and tables, and every CLI command.

Both ``faust -A agents.app COMMAND`` and the ``analytics`` console script (``main``)
start from here; nothing below imports this module. ``make_app(settings)`` builds the
app and registers the agents, timers, views and commands; the module builds it once,
from the environment, as ``app``. One way to start each process:

- worker: ``analytics worker -l info``
- edge:   ``analytics edge`` (aiohttp, on uvloop where it is installed)
- bridge alone, operator commands: ``analytics COMMAND`` (``analytics --help``)
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import faust

from agents import bridge, broker_watch, health_views, housekeeping, raw_sink, views
from analytics import logs
from analytics.cli import dead_letters, ops, projects, share_links, stack, transfer
from analytics.settings import Settings
from tables.live import live_minutes
from tables.topics import events_topic
from web.app import serve_edge


def make_app(settings: Settings) -> Any:
    """A faust app wired with every agent, task and command of the stack."""
    Path(settings.worker_datadir).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_broker,
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        # Each message packs up to 500 events: buffer two batches, not thousands of messages.
        stream_buffer_maxsize=max(256, settings.sink_batch_messages * 2),
        broker_commit_every=settings.sink_batch_messages,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.worker_session_timeout,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=settings.worker_rebalance_timeout,
        datadir=settings.worker_datadir,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        web_host=settings.worker_web_host,
        producer_max_request_size=8 * 1024 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024,
    )
    topic = events_topic(app, settings)
    live = live_minutes(app, settings)
    raw_sink.register(app, settings, topic, live)
    views.register(app, settings, live)
    health_views.register(app, settings)
    broker_watch.register(app, settings)
    housekeeping.register(app, settings)
    logs.configure_worker(app, settings.log_format)
    bridge.register(app, settings)
    stack.register(app, settings)
    ops.register(app, settings)
    projects.register(app, settings)
    share_links.register(app, settings)
    dead_letters.register(app, settings)
    transfer.register(app, settings)
    _register_edge(app, settings)
    return app


def _register_edge(app: Any, settings: Settings) -> None:
    @app.command()
    async def edge(self: Any) -> None:
        """Serve the HTTP edge (ingest, dashboard and stats API) until interrupted."""
        # faust sets up a command's logging for its own worker; the edge logs as
        # LOG_LEVEL and LOG_FORMAT say, like every other process.
        logs.configure(settings.log_level, settings.log_format)
        await serve_edge(settings)


def _use_uvloop_for_edge(argv: list[str]) -> None:
    """The edge runs on uvloop (a third off its request cost); the worker stays on asyncio.

    faust's worker and aiokafka are tested here on the default loop, so only the edge
    command switches, before faust creates its loop.
    """
    if "edge" not in argv[1:]:
        return
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a Linux/macOS dependency
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main() -> None:
    """The ``analytics`` console script: the faust command line bound to ``app``."""
    _use_uvloop_for_edge(sys.argv)
    app.main()


logging.getLogger("aiokafka").setLevel(logging.WARNING)
# While the broker is down aiokafka logs every reconnect attempt: once per 10 s is enough.
logs.quiet_repeats("aiokafka")
settings = Settings()
app = make_app(settings)
