"""The faust application: ``faust -A analytics.app`` and the ``analytics`` console script.

``make_app(settings)`` builds the app and registers the agents, tasks and CLI
commands; this module builds it once, from the environment, as ``app``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust

from analytics.settings import Settings


def make_app(settings: Settings) -> Any:
    """A faust app wired with every agent, task and command of the stack."""
    from agents import bridge, health_views, housekeeping, raw_sink, views
    from analytics import commands, logs, ops_commands, project_commands
    from analytics.topics import events_topic
    from tables.live import live_minutes

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
        web_host="127.0.0.1",
        producer_max_request_size=8 * 1024 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024,
    )
    topic = events_topic(app, settings)
    live = live_minutes(app, settings)
    raw_sink.register(app, settings, topic, live)
    views.register(app, settings, live)
    health_views.register(app, settings)
    housekeeping.register(app, settings)
    logs.configure_worker(app, settings.log_format)
    bridge.register(app, settings)
    commands.register(app, settings)
    ops_commands.register(app, settings)
    project_commands.register(app, settings)
    return app


logging.getLogger("aiokafka").setLevel(logging.WARNING)
settings = Settings()
app = make_app(settings)
