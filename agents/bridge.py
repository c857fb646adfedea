"""The bridge as a task of the faust worker (see ``analytics.bridge``)."""

from __future__ import annotations

from typing import Any

from analytics import buffer
from analytics.bridge import Bridge
from analytics.kafka import ensure_topic, make_producer
from analytics.settings import Settings


def make_bridge(settings: Settings) -> tuple[Bridge, Any]:
    """A bridge for these settings and the producer it owns (not yet started)."""
    producer = make_producer(settings.kafka_broker)
    bridge = Bridge(
        redis=buffer.connect(settings.redis_url, socket_timeout=5.0),
        producer=producer,
        stream=settings.stream_key,
        group=settings.stream_group,
        topic=settings.events_topic,
        read_count=settings.bridge_read_count,
        block_ms=settings.bridge_block_ms,
        claim_idle_ms=settings.bridge_claim_idle_ms,
        events_per_message=settings.bridge_events_per_message,
    )
    return bridge, producer


def register(app: Any, settings: Settings) -> None:
    """Run the bridge inside every worker when ``bridge_enabled``."""
    if not settings.bridge_enabled:
        return

    @app.task
    async def bridge_task() -> None:
        await ensure_topic(settings.kafka_broker, settings.events_topic, settings.topic_partitions)
        bridge, producer = make_bridge(settings)
        await producer.start()
        try:
            await bridge.run()
        finally:
            await producer.stop()
            await bridge.redis.aclose()
