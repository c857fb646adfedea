"""What every command shares: its database connection and how it prints a result."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from analytics.settings import Settings
from analytics.storage import migrate


async def connect(settings: Settings) -> asyncpg.Connection:
    """A connection to the configured database, created and migrated if needed."""
    return await migrate.connect(
        settings.database_url, partitions_ahead_days=settings.partitions_ahead_days
    )


def emit(command: Any, data: Any, text: str) -> None:
    """Print ``data`` as one JSON document under faust's ``--json``, else ``text``."""
    if command.json:
        command.say(orjson.dumps(data, default=str).decode())
    else:
        command.say(text)
