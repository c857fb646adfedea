"""The bridge as a task of the faust worker (see ``analytics.pipeline.bridge``)."""

from __future__ import annotations

from typing import Any

from analytics.pipeline.bridge import make_bridge
from analytics.pipeline.kafka import ensure_topic
from analytics.settings import Settings


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
            await bridge.close()
