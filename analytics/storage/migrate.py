"""Versioned schema migrations, applied on start-up and by ``analytics migrate``.

Each ``migrations/NNNN_name.sql`` runs once, in its own transaction, in file
order; ``schema_migrations`` records what ran. An advisory lock makes
concurrent starters (edge and worker together) wait for each other instead of
racing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import asyncpg

if TYPE_CHECKING:
    from analytics.storage import Connection

log = logging.getLogger(__name__)

_LOCK_ID = 0x5A_0001


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files("analytics.storage") / "migrations"
    files = sorted(
        (entry.name, entry.read_text()) for entry in folder.iterdir() if entry.name.endswith(".sql")
    )
    return files


async def migrate(conn: Connection, *, partitions_ahead_days: int = 7) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in _migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("applied migration %s", name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    await ensure_partitions_ahead(conn, partitions_ahead_days)
    return applied_now


async def ensure_partitions_ahead(conn: Connection, days: int) -> None:
    """Create the day partitions from yesterday to ``days`` ahead."""
    today = datetime.now(UTC).date()
    for offset in range(-1, days + 1):
        await conn.execute("SELECT sa_ensure_partition($1)", today + timedelta(days=offset))


async def ensure_database(dsn: str) -> None:
    """Create the database named in ``dsn`` when the server lacks it."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        parts = urlsplit(dsn)
        name = parts.path.lstrip("/")
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
        return
    await conn.close()


async def prepare_database(database_url: str, *, partitions_ahead_days: int) -> list[str]:
    """Create the database when missing, migrate it, create partitions ahead.

    The one start-up path of every process and command; returns the migrations applied now.
    """
    await ensure_database(database_url)
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await migrate(conn, partitions_ahead_days=partitions_ahead_days)
    finally:
        await conn.close()


async def connect(database_url: str, *, partitions_ahead_days: int) -> asyncpg.Connection:
    """A connection to a prepared (created, migrated) database; the caller closes it."""
    await prepare_database(database_url, partitions_ahead_days=partitions_ahead_days)
    conn: asyncpg.Connection = await asyncpg.connect(database_url, timeout=10)
    return conn
