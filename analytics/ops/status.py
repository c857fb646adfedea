"""Health and processing statistics (``analytics event-status``).

``collect`` asks the three services at once, each within ``limit`` seconds (an unreachable
or hanging service becomes an error, never a hang); ``evaluate`` turns the figures into
OK / WARN / FAIL checks and is pure, so its rules are tested without services.

What is measured:

* buffer: ``XLEN`` of the stream (entries, each holding one or more accepted requests'
  events; an entry stays until PostgreSQL holds its events, so the depth includes entries
  sent to Kafka and not yet confirmed by the bridge's confirm pass), ``XPENDING`` of the
  bridge group, entries pending longer than the claim timeout (left by a dead bridge), and
  the age of the oldest entry;
* Kafka: per partition of the events topic, the faust group's committed offset and the high
  watermark; lag is in messages (each packs up to ``bridge_events_per_message`` events); a
  partition without a committed offset counts from the log start (faust reads from earliest);
* PostgreSQL: ``flush_log`` per table, newest ``received_at`` and ingest rates over 1 and
  5 minutes, and table sizes. Freshness and rates look only at events whose own time is
  within the last day (``events`` has no index on ``received_at``: this prunes to the newest
  partitions instead of scanning all), so a historical import does not show there.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from redis.exceptions import ResponseError

from analytics.counting.rollup import GRAINS
from analytics.ops.readiness import fail_fast_redis
from analytics.pipeline.kafka import OffsetsProbe
from analytics.settings import Settings

BUFFER_WARN = 10_000
LAG_WARN = 10_000
LAG_FAIL = 100_000
FLUSH_STALE_SECONDS = 60.0
STALE_PENDING_LIMIT = 1000

AGGREGATE_TABLES = (*GRAINS, "project_daily_summary", "visits", "stats_hourly", "stats_daily")

T = TypeVar("T")


class Level(enum.IntEnum):
    """Check outcome; ordered, so the worst of several is their ``max``."""

    OK = 0
    WARN = 1
    FAIL = 2


@dataclass(slots=True, frozen=True)
class Check:
    """One check with a reason an operator can act on."""

    name: str
    level: Level
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.level.name, "reason": self.reason}


@dataclass(slots=True, frozen=True)
class BufferStats:
    """The Redis Stream and its bridge consumer group."""

    stream: str
    group: str
    depth: int
    pending: int
    stale_pending: int
    oldest_age_seconds: float | None
    group_exists: bool


@dataclass(slots=True, frozen=True)
class PartitionLag:
    """Committed offset (None: none yet, counted from the log start), high watermark, lag."""

    partition: int
    committed: int | None
    end: int
    lag: int

    @property
    def beyond_end(self) -> bool:
        """Committed past the log's end: the broker lost messages (a memory-only restart)."""
        return self.committed is not None and self.committed > self.end


@dataclass(slots=True, frozen=True)
class KafkaStats:
    """The faust consumer group on the events topic."""

    topic: str
    group: str
    topic_exists: bool
    partitions: tuple[PartitionLag, ...] = ()

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)


@dataclass(slots=True, frozen=True)
class Flush:
    """The last flush of one table, as ``flush_log`` has it."""

    table: str
    flushed_at: datetime
    age_seconds: float
    rows_written: int


@dataclass(slots=True, frozen=True)
class DatabaseStats:
    """Flushes, freshness, ingest rates (events per second) and sizes (bytes)."""

    flushes: tuple[Flush, ...]
    newest_received_at: datetime | None
    freshness_seconds: float | None
    rate_1m: float
    rate_5m: float
    raw_bytes: dict[str, int]
    aggregate_bytes: dict[str, int]
    partitions: int

    @property
    def last_flush_age(self) -> float | None:
        return min((f.age_seconds for f in self.flushes), default=None)


@dataclass(slots=True)
class Status:
    """Everything ``event-status`` reports; a service that failed has ``None`` and an error."""

    buffer: BufferStats | None
    kafka: KafkaStats | None
    database: DatabaseStats | None
    errors: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def level(self) -> Level:
        return max((c.level for c in self.checks), default=Level.OK)

    def as_dict(self) -> dict[str, Any]:
        buffer = self.buffer
        kafka = self.kafka
        db = self.database
        return {
            "status": self.level.name,
            "checks": [c.as_dict() for c in self.checks],
            "errors": dict(self.errors),
            "buffer": None
            if buffer is None
            else {
                "stream": buffer.stream,
                "group": buffer.group,
                "depth": buffer.depth,
                "pending": buffer.pending,
                "stale_pending": buffer.stale_pending,
                "oldest_age_seconds": buffer.oldest_age_seconds,
                "group_exists": buffer.group_exists,
            },
            "kafka": None
            if kafka is None
            else {
                "topic": kafka.topic,
                "group": kafka.group,
                "topic_exists": kafka.topic_exists,
                "total_lag": kafka.total_lag,
                "partitions": [
                    {"partition": p.partition, "committed": p.committed, "end": p.end, "lag": p.lag}
                    for p in kafka.partitions
                ],
            },
            "postgres": None
            if db is None
            else {
                "flushes": [
                    {
                        "table": f.table,
                        "flushed_at": f.flushed_at,
                        "age_seconds": f.age_seconds,
                        "rows_written": f.rows_written,
                    }
                    for f in db.flushes
                ],
                "newest_received_at": db.newest_received_at,
                "freshness_seconds": db.freshness_seconds,
                "rate_1m": db.rate_1m,
                "rate_5m": db.rate_5m,
                "partitions": db.partitions,
                "raw_bytes": dict(db.raw_bytes),
                "aggregate_bytes": dict(db.aggregate_bytes),
                "raw_total_bytes": sum(db.raw_bytes.values()),
                "aggregate_total_bytes": sum(db.aggregate_bytes.values()),
            },
        }


async def buffer_stats(
    redis_url: str, stream: str, group: str, claim_idle_ms: int, *, io_seconds: float
) -> BufferStats:
    """Depth, pending and age of the buffer stream (no retries: fail fast)."""
    client = fail_fast_redis(redis_url, io_seconds)
    try:
        depth = int(await client.xlen(stream))
        seconds, micros = await client.time()
        now_ms = seconds * 1000 + micros // 1000
        oldest: float | None = None
        first = await client.xrange(stream, count=1)
        if first:
            # Stream ids start with the Redis server's clock in ms when the entry was added.
            entry_id = first[0][0]
            text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            entry_ms = int(text.split("-", 1)[0])
            oldest = max(0.0, (now_ms - entry_ms) / 1000)
        try:
            summary = await client.xpending(stream, group)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return BufferStats(stream, group, depth, 0, 0, oldest, group_exists=False)
        pending = int(summary["pending"])
        stale = 0
        if pending:
            stale = len(
                await client.xpending_range(
                    stream, group, "-", "+", STALE_PENDING_LIMIT, idle=claim_idle_ms
                )
            )
        return BufferStats(stream, group, depth, pending, stale, oldest, group_exists=True)
    finally:
        await client.aclose()


async def kafka_stats(broker_url: str, topic: str, group: str, *, io_seconds: float) -> KafkaStats:
    """Per-partition lag of ``group`` on ``topic``."""
    probe = OffsetsProbe(broker_url, io_seconds=io_seconds, client_id="analytics-status")
    try:
        offsets = await probe.read(topic, group)
    finally:
        await probe.close()
    if offsets is None:
        return KafkaStats(topic, group, topic_exists=False)
    lags: list[PartitionLag] = []
    for partition in sorted(offsets.ends):
        committed = offsets.committed.get(partition)
        end = offsets.ends[partition]
        base = committed if committed is not None else offsets.starts.get(partition, 0)
        lags.append(PartitionLag(partition, committed, end, max(0, end - base)))
    return KafkaStats(topic, group, topic_exists=True, partitions=tuple(lags))


_RECENT = """
SELECT max(received_at),
       extract(epoch FROM now() - max(received_at))::float8,
       count(*) FILTER (WHERE received_at >= now() - interval '1 minute'),
       count(*) FILTER (WHERE received_at >= now() - interval '5 minutes')
FROM events WHERE "timestamp" >= $1
"""

_SIZES = """
SELECT (SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint
          FROM pg_partition_tree('events')),
       (SELECT count(*) FROM pg_partition_tree('events') WHERE isleaf),
       pg_total_relation_size('event_ids')
"""


async def database_stats(database_url: str, *, io_seconds: float) -> DatabaseStats:
    """Flushes, freshness, rates and sizes; read-only, no migrations."""
    conn = await asyncpg.connect(database_url, timeout=io_seconds, command_timeout=io_seconds)
    try:
        flushes = tuple(
            Flush(r[0], r[1], max(0.0, float(r[2])), int(r[3]))
            for r in await conn.fetch(
                "SELECT table_name, flushed_at, extract(epoch FROM now() - flushed_at)::float8,"
                " rows_written FROM flush_log ORDER BY table_name"
            )
        )
        since = datetime.now(UTC) - timedelta(days=1)
        newest, age, last_1m, last_5m = await conn.fetchrow(_RECENT, since) or (None, None, 0, 0)
        events_bytes, partitions, ledger_bytes = await conn.fetchrow(_SIZES) or (0, 0, 0)
        aggregate_bytes = {
            table: int(await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table))
            for table in AGGREGATE_TABLES
        }
    finally:
        await conn.close()
    return DatabaseStats(
        flushes=flushes,
        newest_received_at=newest,
        freshness_seconds=None if age is None else max(0.0, float(age)),
        rate_1m=int(last_1m) / 60,
        rate_5m=int(last_5m) / 300,
        raw_bytes={"events": int(events_bytes), "event_ids": int(ledger_bytes)},
        aggregate_bytes=aggregate_bytes,
        partitions=int(partitions),
    )


async def _guarded(work: Awaitable[T], limit: float) -> tuple[T | None, str | None]:
    """The result, or None and the reason the service could not answer in time."""
    try:
        return await asyncio.wait_for(work, limit), None
    except TimeoutError:
        return None, f"no answer within {limit:g} s"
    except Exception as exc:  # any failure of a service is a finding, not a crash
        text = str(exc) or type(exc).__name__
        name = type(exc).__name__
        return None, text if text.startswith(name) else f"{name}: {text}"


async def collect(settings: Settings, *, limit: float = 5.0) -> Status:
    """Ask Redis, Kafka and PostgreSQL at once and evaluate the checks."""
    # The inner timeouts are a little shorter, so a service reports its own error first.
    inner = max(0.5, limit - 1.0)
    (buffer, redis_error), (kafka, kafka_error), (database, db_error) = await asyncio.gather(
        _guarded(
            buffer_stats(
                settings.redis_url,
                settings.stream_key,
                settings.stream_group,
                settings.bridge_claim_idle_ms,
                io_seconds=inner,
            ),
            limit,
        ),
        _guarded(
            kafka_stats(
                settings.kafka_broker, settings.events_topic, settings.app_id, io_seconds=inner
            ),
            limit,
        ),
        _guarded(database_stats(settings.database_url, io_seconds=inner), limit),
    )
    errors = {
        name: error
        for name, error in (
            ("redis", redis_error),
            ("kafka", kafka_error),
            ("postgresql", db_error),
        )
        if error is not None
    }
    status = Status(buffer, kafka, database, errors)
    status.checks = evaluate(status)
    return status


def _reach(name: str, error: str | None) -> Check:
    if error is None:
        return Check(name, Level.OK, "reachable")
    return Check(name, Level.FAIL, f"unreachable: {error}")


def _buffer_check(buffer: BufferStats) -> Check:
    summary = f"{buffer.depth:,} entries buffered, {buffer.pending:,} pending"
    if buffer.depth > BUFFER_WARN:
        return Check(
            "buffer",
            Level.WARN,
            f"{summary} (> {BUFFER_WARN:,}): the bridge is falling behind; add workers",
        )
    if buffer.stale_pending:
        return Check(
            "buffer",
            Level.WARN,
            f"{summary}; {buffer.stale_pending:,} pending past the claim timeout: a bridge"
            " died and no live bridge has reclaimed them yet",
        )
    if buffer.depth and not buffer.group_exists:
        return Check(
            "buffer",
            Level.WARN,
            f"{summary}; consumer group {buffer.group!r} does not exist: no bridge has run",
        )
    return Check("buffer", Level.OK, summary)


def _lag_check(kafka: KafkaStats) -> Check:
    if not kafka.topic_exists:
        return Check(
            "kafka_lag",
            Level.WARN,
            f"topic {kafka.topic!r} does not exist yet: no worker or bridge has started",
        )
    lag = kafka.total_lag
    summary = f"lag {lag:,} message(s) over {len(kafka.partitions)} partition(s)"
    beyond = [p for p in kafka.partitions if p.beyond_end]
    if beyond:
        where = ", ".join(
            f"partition {p.partition}: committed {p.committed} > end {p.end}" for p in beyond
        )
        return Check(
            "kafka_lag",
            Level.FAIL,
            f"{where}: the broker lost messages it had acknowledged (restarted without its"
            " data?); restart the workers and check that the buffer re-sent what was lost",
        )
    if lag > LAG_FAIL:
        return Check("kafka_lag", Level.FAIL, f"{summary} (> {LAG_FAIL:,}): workers are far behind")
    if lag > LAG_WARN:
        return Check("kafka_lag", Level.WARN, f"{summary} (> {LAG_WARN:,}): workers are behind")
    return Check("kafka_lag", Level.OK, summary)


def _flush_check(status: Status, db: DatabaseStats) -> Check:
    """FAIL when work waits and nothing was flushed for FLUSH_STALE_SECONDS.

    Buffered entries younger than that are not yet overdue: after an idle hour the first
    new entry must not read as a stalled pipeline.
    """
    last = db.last_flush_age
    since = "never flushed" if last is None else f"last flush {last:.0f} s ago"
    buffer = status.buffer
    overdue_entries = (
        buffer is not None
        and buffer.depth > 0
        and (buffer.oldest_age_seconds or 0.0) > FLUSH_STALE_SECONDS
    )
    lag = status.kafka.total_lag if status.kafka is not None else 0
    fresh = last is not None and last <= FLUSH_STALE_SECONDS
    if (overdue_entries or lag > 0) and not fresh:
        waiting = []
        if overdue_entries and buffer is not None:
            waiting.append(f"{buffer.depth:,} buffered entries")
        if lag:
            waiting.append(f"Kafka lag {lag:,}")
        return Check(
            "flush",
            Level.FAIL,
            f"{' and '.join(waiting)} waiting, {since}: is a worker running and able to"
            " write to PostgreSQL?",
        )
    return Check("flush", Level.OK, since)


def _freshness_check(db: DatabaseStats) -> Check:
    if db.freshness_seconds is None:
        return Check("freshness", Level.OK, "no event with a time in the last 24 h")
    return Check(
        "freshness",
        Level.OK,
        f"newest event received {db.freshness_seconds:.0f} s ago;"
        f" {db.rate_1m:.2f}/s over 1 min, {db.rate_5m:.2f}/s over 5 min",
    )


def evaluate(status: Status) -> list[Check]:
    """The checks for collected figures (pure: thresholds are this module's constants)."""
    checks = [
        _reach("postgresql", status.errors.get("postgresql")),
        _reach("redis", status.errors.get("redis")),
        _reach("kafka", status.errors.get("kafka")),
    ]
    if status.buffer is not None:
        checks.append(_buffer_check(status.buffer))
    if status.kafka is not None:
        checks.append(_lag_check(status.kafka))
    if status.database is not None:
        checks.append(_flush_check(status, status.database))
        checks.append(_freshness_check(status.database))
    return checks
