"""Typed application keys for what the edge's cleanup contexts own."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from analytics.pipeline.buffer import BufferWriter
from analytics.settings import Settings
from web.auth import KeyCache, ShareCache, SourceCache
from web.client import Network

SETTINGS = web.AppKey("settings", Settings)
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
BUFFER = web.AppKey("buffer", BufferWriter)
KEY_CACHE = web.AppKey("key_cache", KeyCache)
SOURCE_CACHE = web.AppKey("source_cache", SourceCache)
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple[Network, ...])
SHARE_CACHE = web.AppKey("share_cache", ShareCache)
