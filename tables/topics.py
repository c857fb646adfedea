"""The events topic declaration; its name, like every name of the stack, is a setting."""

from __future__ import annotations

from typing import Any

from analytics.settings import Settings


def events_topic(app: Any, settings: Settings) -> Any:
    """The packed raw-events topic the bridge writes and the agents read (bytes in, bytes out)."""
    return app.topic(
        settings.events_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
        # internal: faust creates it with these partitions before subscribing, instead
        # of the broker auto-creating it with its own default on first metadata request.
        internal=True,
    )
