"""Raw sink agent: packed event messages -> ``events`` in PostgreSQL, in batches.

Each batch of Kafka messages becomes one COPY plus one idempotent insert
(``analytics.storage.events``), each row enriched on the way
(``analytics.enrich``), with its counts in the same transaction. Its unique users,
sessions and visitors are merged into the sketches a little later
(``agents.sketch_flush``), and only then are its messages acknowledged, so a committed
offset always lies behind stored rows, counts and sketches: a crash before that replays
the batch, which the sink then stores once. A failing database is retried forever (the
batch is never skipped), and a shutdown waits for the write in flight to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
import orjson

from agents.db_retry import DATABASE_ERRORS, Backoff
from agents.live import update_live
from agents.sketch_flush import TICK_SECONDS, HeldSketches
from analytics import metrics
from analytics.counting.members import Members
from analytics.enrich.enricher import Enricher
from analytics.events.models import EventRow, decode_rows
from analytics.settings import Settings
from analytics.storage.aggregates import record_flush
from analytics.storage.events import PartitionCache, Prepared, prepare_events, write_prepared
from analytics.storage.migrate import prepare_database
from tables.live import LIVE_EXPIRES

log = logging.getLogger(__name__)

# Events older than this are only aggregated in PostgreSQL, not in the live table.
LIVE_HORIZON_US = int(LIVE_EXPIRES.total_seconds() * 1_000_000)


# A record the database refuses (class 22 data exception, class 23 constraint) or that
# Python cannot convert: skip it into dead_letters rather than block the partition.
BAD_RECORD = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    ValueError,
    OverflowError,
)


async def _write_isolating(
    conn: Any,
    prepared: Prepared,
    partitions: PartitionCache,
    enricher: Enricher,
    members: Members,
) -> tuple[list[EventRow], dict[str, int]]:
    """Write a batch; if it holds a bad record, bisect to find it and dead-letter it alone."""
    try:
        return await write_prepared(conn, prepared, partitions, members=members)
    except BAD_RECORD as exc:
        rows = prepared.rows
        if len(rows) == 1:
            await _dead_letter(conn, rows[0], exc)
            return [], {}
    middle = len(rows) // 2
    halves = (prepare_events(rows[:middle], enricher), prepare_events(rows[middle:], enricher))
    left, written = await _write_isolating(conn, halves[0], partitions, enricher, members)
    right, more = await _write_isolating(conn, halves[1], partitions, enricher, members)
    for table, count in more.items():
        written[table] = written.get(table, 0) + count
    return left + right, written


async def _dead_letter(conn: Any, row: EventRow, exc: BaseException) -> None:
    metrics.ERRORS.labels("sink", "bad_record").inc()
    log.error(
        "raw sink: dead-lettered event %s of project %s: %s", row.event_id, row.project_id, exc
    )
    await conn.execute(
        "INSERT INTO dead_letters (project_id, event_id, error, payload) VALUES ($1, $2, $3, $4)",
        row.project_id,
        row.event_id,
        f"{type(exc).__name__}: {exc}",
        orjson.dumps(tuple(row)).decode(errors="replace"),
    )


async def _store(
    pool: asyncpg.Pool,
    rows: list[EventRow],
    prepared: Prepared,
    partitions: PartitionCache,
    enricher: Enricher,
    members: Members,
) -> list[EventRow]:
    backoff = Backoff("sink")
    while True:
        try:
            async with pool.acquire() as conn:
                started = time.perf_counter()
                fresh, written = await _write_isolating(
                    conn, prepared, partitions, enricher, members
                )
                metrics.FLUSH_LATENCY.observe(time.perf_counter() - started)
                metrics.LAST_FLUSH.set(time.time())
                metrics.SINK_EVENTS.labels("new").inc(len(fresh))
                metrics.SINK_EVENTS.labels("duplicate").inc(len(rows) - len(fresh))
                metrics.SINK_ROWS.labels("events").inc(len(fresh))
                for table, count in written.items():
                    metrics.SINK_ROWS.labels(table).inc(count)
                if fresh:
                    newest = max(r.received_at_us for r in fresh)
                    metrics.PROCESSING_LAG.set(time.time() - newest / 1_000_000)
                if written:
                    await record_flush(conn, written)
                return fresh
        except DATABASE_ERRORS as exc:
            await backoff.failed("write", exc)


class SinkActivity:
    """Whether a batch write is in flight: a stalled read means nothing while one is."""

    __slots__ = ("writing",)

    def __init__(self) -> None:
        self.writing = 0


ACTIVITY = SinkActivity()


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


def register(app: Any, settings: Settings, topic: Any, live: Any) -> None:
    """Attach the raw sink agent (raw rows, aggregates, live table) to ``app``."""

    @app.agent(topic, name="raw_sink")
    async def raw_sink(stream: Any) -> None:
        await prepare_database(
            settings.database_url, partitions_ahead_days=settings.partitions_ahead_days
        )
        # The sink's own pool: every lock it takes is transaction-scoped and it sets nothing
        # on the session, so a connection going back needs no RESET round trip (asyncpg
        # still rolls back one left in a transaction).
        # Sorts and the statement's intermediate rows of a 25,000-event batch fit in memory
        # with these (the defaults, 4 MB and 8 MB, spilled them to temporary files).
        pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=1,
            max_size=4,
            reset=_no_reset,
            server_settings={"work_mem": "64MB", "temp_buffers": "64MB"},
        )
        partitions = PartitionCache()
        enricher = Enricher(settings.geoip_database)
        held = HeldSketches(pool, settings.sketch_flush_seconds, stream.ack)
        flusher = asyncio.ensure_future(_flush_when_due(held, app))

        async def write(
            events: list[Any], rows: list[EventRow], anchors: dict[str, Any], prepared: Prepared
        ) -> None:
            started = time.perf_counter()
            async with held.lock:
                ACTIVITY.writing += 1
                try:
                    fresh = await _store(pool, rows, prepared, partitions, enricher, held.members)
                finally:
                    ACTIVITY.writing -= 1
                held.hold(events)
            horizon = time.time_ns() // 1000 - LIVE_HORIZON_US
            update_live(live, fresh, anchors, horizon)
            log.debug(
                "raw sink: %d events, %d new, %.1f ms",
                len(rows),
                len(fresh),
                (time.perf_counter() - started) * 1000,
            )

        # One batch is written while the next is decoded and enriched (pure Python).
        in_flight: asyncio.Future[None] | None = None
        try:
            # Messages are acknowledged by ``held``, once their sketch members are merged.
            async for events in stream.noack_take(
                settings.sink_batch_messages, within=settings.sink_batch_seconds
            ):
                rows, anchors = _decode(events)
                prepared = prepare_events(rows, enricher)
                if in_flight is not None:
                    # A cancel here leaves the write running: the ``finally`` waits for it.
                    await asyncio.shield(in_flight)
                in_flight = asyncio.ensure_future(write(events, rows, anchors, prepared))
        finally:
            if in_flight is not None:
                await in_flight
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            async with held.lock:
                await held.flush(retry=False)
            enricher.close()
            await pool.close()


def _decode(events: list[Any]) -> tuple[list[EventRow], dict[str, Any]]:
    """The batch's rows, and per project one of its messages (the live table's anchor)."""
    rows: list[EventRow] = []
    anchors: dict[str, Any] = {}
    for event in events:
        decoded = decode_rows(event.value)
        rows.extend(decoded)
        if decoded:
            anchors[decoded[0].project_id] = event
    return rows, anchors


async def _flush_when_due(held: HeldSketches, app: Any) -> None:
    """Merge the held sketch members when due, or at once when a rebalance starts or the
    worker stops: faust then waits for every message it delivered to be acknowledged."""
    while True:
        await asyncio.sleep(TICK_SECONDS)
        if held.since is not None and (held.due() or app.rebalancing or app.should_stop):
            async with held.lock:
                ACTIVITY.writing += 1
                try:
                    await held.flush()
                finally:
                    ACTIVITY.writing -= 1
