"""The worker's watch for a broker that lost its log (a memory-only broker restarted).

Kafka offsets never go backwards, so two symptoms can only mean the broker forgot what it
had acknowledged:

- **A read offset past the log's end.** faust would drop every new message below the
  offset it last read and never commit below its old committed one, and its consumer
  group is gone from the broker. The watch restarts the worker in place (``execv`` of
  the same command line, the same pid): a new process joins the broker as it is now and
  reads from the start; the ledger drops whatever PostgreSQL already holds. To every
  other part of the stack this is a worker killed and restarted, which it survives.
- **Changelog recovery that reads nothing.** faust waits for every record up to the
  highwater it saw at the start; a broker written to while it had no topic can report
  records it never serves. After ``worker_recovery_stall_seconds`` without progress the
  watch ends recovery for those partitions: the live view of that hour starts short,
  PostgreSQL (the truth) is untouched.

- **A consumer that reads nothing.** A partition with messages waiting whose read offset
  has not moved for ``worker_read_stall_seconds`` while no batch write is in flight: seen
  with this broker after a worker was killed and another took its partitions (the new
  consumer sat at the committed offset for good). The watch restarts the worker in place,
  as above.

All are logged as errors. Everything the broker lost is sent again by the bridge's
confirm pass (``analytics.pipeline.confirm``), which keeps each entry in Redis until
PostgreSQL holds its events.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from agents.faust_internals import read_offset, skip_recovery, stalled_recovery
from agents.raw_sink import ACTIVITY
from analytics import metrics
from analytics.pipeline.confirm import Confirmer
from analytics.pipeline.kafka import OffsetsProbe
from analytics.settings import Settings

log = logging.getLogger(__name__)

INTERVAL = 2.0


class BrokerWatch:
    """One loop per worker, started at the first partition assignment."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self._task: asyncio.Task[None] | None = None
        # Recovery progress: tp -> (offset, when it last moved), per recovery round.
        self._progress: dict[Any, tuple[int, float]] = {}
        # Stream reads: tp -> (read offset, when it last moved or nothing waited).
        self._reads: dict[Any, tuple[int | None, float]] = {}
        self._probe: OffsetsProbe | None = None
        self._losses_seen = Confirmer.broker_losses

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while not self.app.should_stop:
                try:
                    self.check_broker_loss()
                    self.check_recovery(asyncio.get_running_loop().time())
                    await self.check_positions()
                except Exception as exc:
                    log.warning("broker watch: check failed (%r); trying again", exc)
                    metrics.ERRORS.labels(component="broker_watch", kind=type(exc).__name__).inc()
                await asyncio.sleep(INTERVAL)
        finally:
            if self._probe is not None:
                await self._probe.close()

    def check_broker_loss(self) -> None:
        """The bridge's confirm pass found its topic gone: restart before faust commits or
        drops anything by the old log's offsets."""
        if Confirmer.broker_losses > self._losses_seen:
            log.error(
                "the broker lost its log (the events topic was gone with batches sent to it);"
                " restarting this worker to read the new log from the start"
            )
            restart_in_place()

    def check_recovery(self, now: float) -> None:
        stalled = stalled_recovery(self.app)
        if not stalled:
            self._progress.clear()
            return
        give_up: list[Any] = []
        for tp, (offset, _hw) in stalled.items():
            seen = self._progress.get(tp)
            if seen is None or seen[0] != offset:
                self._progress[tp] = (offset, now)
            elif now - seen[1] >= self.settings.worker_recovery_stall_seconds:
                give_up.append(tp)
        if give_up:
            names = ", ".join(
                f"{tp.topic}[{tp.partition}] at {stalled[tp][0]} of {stalled[tp][1]}"
                for tp in give_up
            )
            log.error(
                "changelog recovery read nothing for %.0fs on %s: the broker reports records"
                " it does not serve (did it lose its log?); going on without them, so the"
                " live view starts short (PostgreSQL is unaffected)",
                self.settings.worker_recovery_stall_seconds,
                names,
            )
            skip_recovery(self.app, give_up)
            for tp in give_up:
                self._progress.pop(tp, None)

    async def check_positions(self) -> None:
        if self.app.tables.recovery.in_recovery:
            return
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic == self.settings.events_topic]
        if not tps:
            return
        ends = await self._ends(tps)
        if ends is None:
            return
        beyond = []
        for tp in tps:
            end, last = ends[tp], read_offset(self.app, tp)
            if end is not None and last is not None and last > end:
                beyond.append(f"{tp.topic}[{tp.partition}] ends at {end}, read up to {last}")
        if beyond:
            log.error(
                "the broker lost its log (%s); restarting this worker to read it again from"
                " the start (the ledger drops what PostgreSQL already holds)",
                "; ".join(beyond),
            )
            restart_in_place()
        self.check_reads(tps, ends, asyncio.get_running_loop().time())

    async def _ends(self, tps: list[Any]) -> dict[Any, int | None] | None:
        """Log ends from the worker's consumer; from the watch's own clients if it hangs.

        The consumer's answer is the fresh one right after a broker restart; but when the
        consumer itself is what is stuck, a call through it would hang this watch too.
        """
        try:
            found = await asyncio.wait_for(self.app.consumer.highwaters(*tps), 5)
            return {tp: found.get(tp) for tp in tps}
        except TimeoutError:
            log.warning("broker watch: the consumer did not answer in 5 s; asking the broker")
        if self._probe is None:
            self._probe = OffsetsProbe(
                self.settings.kafka_broker, io_seconds=5.0, client_id="analytics-watch"
            )
        offsets = await asyncio.wait_for(
            self._probe.read(self.settings.events_topic, self.settings.app_id), 15
        )
        if offsets is None:
            return None
        return {tp: offsets.ends.get(tp.partition) for tp in tps}

    def check_reads(self, tps: list[Any], ends: dict[Any, int | None], now: float) -> None:
        """Restart when a partition with messages waiting has not been read from for long."""
        stalled: list[str] = []
        for tp in tps:
            last, end = read_offset(self.app, tp), ends.get(tp)
            seen = self._reads.get(tp)
            waiting = end is not None and end > (last if last is not None else -1) + 1
            if seen is None or seen[0] != last or not waiting or ACTIVITY.writing:
                self._reads[tp] = (last, now)
            elif now - seen[1] >= self.settings.worker_read_stall_seconds:
                stalled.append(f"{tp.topic}[{tp.partition}] at {last}, end {end}")
        if stalled:
            log.error(
                "this worker has read nothing for %.0fs with messages waiting (%s): a stuck"
                " consumer; restarting it",
                self.settings.worker_read_stall_seconds,
                "; ".join(stalled),
            )
            restart_in_place()


def restart_in_place() -> None:  # pragma: no cover - replaces the process
    """Replace this process with a new run of the same command line (same pid, same stdio).

    Like a kill -9 and a restart, which the pipeline is built to survive: nothing is lost
    that Redis, the ledger and the bridge's confirm pass do not recover.
    """
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606  # nosec B606


def register(app: Any, settings: Settings) -> BrokerWatch:
    """Start the watch with the worker's first partition assignment."""
    watch = BrokerWatch(app, settings)

    @app.on_partitions_assigned.connect
    async def _start_watch(sender: Any, assigned: Any, **kwargs: Any) -> None:
        watch.start()

    return watch
