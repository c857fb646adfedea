"""PostgreSQL storage: migrations and the queries of each table family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    # A plain connection or one borrowed from a pool: queries accept either.
    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
