"""``python -m web``: serve the edge with settings from the environment."""

import asyncio

from analytics.settings import Settings
from web.app import serve_edge

asyncio.run(serve_edge(Settings()))
