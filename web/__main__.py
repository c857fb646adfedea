"""``python -m web``: serve the edge with settings from the environment (uvloop when present)."""

import asyncio

from analytics import logs
from analytics.settings import Settings
from web.app import serve_edge

settings = Settings()
logs.configure(settings.log_level, settings.log_format)

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a Linux/macOS dependency
    asyncio.run(serve_edge(settings))
else:
    uvloop.run(serve_edge(settings))
