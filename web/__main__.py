"""``python -m web``: serve the edge with settings from the environment (uvloop when present)."""

import asyncio

from analytics.settings import Settings
from web.app import serve_edge

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a Linux/macOS dependency
    asyncio.run(serve_edge(Settings()))
else:
    uvloop.run(serve_edge(Settings()))
