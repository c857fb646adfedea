"""``event-status`` verdicts: ``evaluate`` turns gathered figures into OK / WARN / FAIL (pure).

The thresholds are the module's constants: buffer depth above ``BUFFER_WARN`` (10,000)
warns, Kafka lag above ``LAG_WARN`` (10,000) warns and above ``LAG_FAIL`` (100,000) fails,
and work waiting with no flush for more than ``FLUSH_STALE_SECONDS`` (60 s) fails.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analytics.ops.status import (
    BUFFER_WARN,
    FLUSH_STALE_SECONDS,
    LAG_FAIL,
    LAG_WARN,
    BufferStats,
    Check,
    DatabaseStats,
    Flush,
    KafkaStats,
    Level,
    PartitionLag,
    Status,
    evaluate,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def buffer(
    depth: int = 0,
    pending: int = 0,
    stale: int = 0,
    oldest: float | None = None,
    *,
    group_exists: bool = True,
) -> BufferStats:
    return BufferStats("s", "bridge", depth, pending, stale, oldest, group_exists=group_exists)


def kafka(*lags: int) -> KafkaStats:
    parts = tuple(PartitionLag(i, 0, lag, lag) for i, lag in enumerate(lags))
    return KafkaStats("t", "g", topic_exists=True, partitions=parts)


def database(*flush_ages: float) -> DatabaseStats:
    flushes = tuple(Flush(f"agg_{i}", NOW, age, 10) for i, age in enumerate(flush_ages))
    return DatabaseStats(flushes, None, None, 0.0, 0.0, {}, {}, 0)


def levels(status: Status) -> dict[str, Level]:
    return {c.name: c.level for c in evaluate(status)}


def test_thresholds() -> None:
    healthy = Status(buffer(3, 1, oldest=0.5), kafka(2, 0), database(1.0))
    assert set(levels(healthy).values()) == {Level.OK}
    assert levels(Status(buffer(10_001, oldest=1.0), kafka(), database(1.0)))["buffer"] == (
        Level.WARN
    )
    assert levels(Status(buffer(5, 2, stale=2), kafka(), database(1.0)))["buffer"] == Level.WARN
    assert levels(Status(buffer(), kafka(10_000), database(1.0)))["kafka_lag"] == Level.OK
    assert levels(Status(buffer(), kafka(6_000, 5_000), database(1.0)))["kafka_lag"] == Level.WARN
    assert levels(Status(buffer(), kafka(100_001), database(1.0)))["kafka_lag"] == Level.FAIL
    missing = KafkaStats("t", "g", topic_exists=False)
    assert levels(Status(buffer(), missing, database(1.0)))["kafka_lag"] == Level.WARN


def test_flush_rule() -> None:
    # Work waiting and no flush for over 60 s: the pipeline is stuck.
    assert levels(Status(buffer(), kafka(5), database(61.0)))["flush"] == Level.FAIL
    assert levels(Status(buffer(), kafka(5), database()))["flush"] == Level.FAIL
    assert levels(Status(buffer(4, oldest=90.0), kafka(), database(61.0)))["flush"] == Level.FAIL
    # Nothing waiting: an old flush only means an idle system.
    assert levels(Status(buffer(), kafka(0), database(3600.0)))["flush"] == Level.OK
    # Just-arrived entries after an idle hour are not overdue yet.
    assert levels(Status(buffer(4, oldest=2.0), kafka(), database(3600.0)))["flush"] == Level.OK
    # Unreachable services: FAIL for them, and no verdicts built on missing figures.
    errors = {"postgresql": "refused", "redis": "refused", "kafka": "refused"}
    assert levels(Status(None, None, None, errors)) == dict.fromkeys(errors, Level.FAIL)


def test_the_thresholds_are_the_documented_ones() -> None:
    assert (BUFFER_WARN, LAG_WARN, LAG_FAIL, FLUSH_STALE_SECONDS) == (10_000, 10_000, 100_000, 60)


@pytest.mark.parametrize(
    ("depth", "expected"),
    [(0, Level.OK), (BUFFER_WARN, Level.OK), (BUFFER_WARN + 1, Level.WARN)],
)
def test_buffer_depth_warns_only_above_the_threshold(depth: int, expected: Level) -> None:
    assert levels(Status(buffer(depth, oldest=1.0), kafka(), database(1.0)))["buffer"] == expected


def test_buffer_without_a_bridge_group() -> None:
    # Entries waiting and no consumer group: no bridge ever ran.
    waiting = Status(buffer(3, oldest=1.0, group_exists=False), kafka(), database(1.0))
    assert levels(waiting)["buffer"] == Level.WARN
    # An empty stream without a group is a fresh install, not a problem.
    fresh = Status(buffer(0, group_exists=False), kafka(), database(1.0))
    assert levels(fresh)["buffer"] == Level.OK


@pytest.mark.parametrize(
    ("lags", "expected"),
    [
        ((), Level.OK),
        ((LAG_WARN,), Level.OK),
        ((LAG_WARN, 1), Level.WARN),  # the total over partitions counts
        ((LAG_FAIL,), Level.WARN),
        ((LAG_FAIL // 2, LAG_FAIL // 2 + 1), Level.FAIL),
    ],
)
def test_kafka_lag_levels(lags: tuple[int, ...], expected: Level) -> None:
    assert levels(Status(buffer(), kafka(*lags), database(1.0)))["kafka_lag"] == expected


@pytest.mark.parametrize(
    ("flush_age", "expected"),
    [(FLUSH_STALE_SECONDS, Level.OK), (FLUSH_STALE_SECONDS + 0.5, Level.FAIL)],
)
def test_flush_is_overdue_only_past_the_limit(flush_age: float, expected: Level) -> None:
    assert levels(Status(buffer(), kafka(1), database(flush_age)))["flush"] == expected


@pytest.mark.parametrize(
    ("oldest", "expected"),
    [(None, Level.OK), (FLUSH_STALE_SECONDS, Level.OK), (FLUSH_STALE_SECONDS + 1, Level.FAIL)],
)
def test_buffered_entries_are_overdue_only_past_the_limit(
    oldest: float | None, expected: Level
) -> None:
    status = Status(buffer(7, oldest=oldest), kafka(0), database())
    assert levels(status)["flush"] == expected


def test_the_newest_flush_of_any_table_counts() -> None:
    status = Status(buffer(), kafka(50), database(500.0, 3.0, 900.0))
    assert status.database is not None and status.database.last_flush_age == 3.0
    assert levels(status)["flush"] == Level.OK


def test_kafka_lag_still_judges_the_flush_when_redis_is_down() -> None:
    status = Status(None, kafka(20), database(120.0), {"redis": "refused"})
    found = levels(status)
    assert found["redis"] == Level.FAIL
    assert "buffer" not in found
    assert found["flush"] == Level.FAIL


def test_one_unreachable_service_fails_only_its_own_checks() -> None:
    found = levels(Status(buffer(), None, database(1.0), {"kafka": "timeout"}))
    assert found == {
        "postgresql": Level.OK,
        "redis": Level.OK,
        "kafka": Level.FAIL,
        "buffer": Level.OK,
        "flush": Level.OK,
        "freshness": Level.OK,
    }


def test_reasons_tell_the_operator_what_is_wrong() -> None:
    by_name = {c.name: c for c in evaluate(Status(buffer(), kafka(200_000), database(90.0)))}
    assert "200,000" in by_name["kafka_lag"].reason
    assert "last flush 90 s ago" in by_name["flush"].reason
    down = evaluate(Status(None, None, None, {"redis": "Connection refused"}))
    assert [c.reason for c in down if c.name == "redis"] == ["unreachable: Connection refused"]


def test_overall_level_is_the_worst_check() -> None:
    status = Status(None, None, None)
    assert status.level == Level.OK  # no checks yet
    status.checks = [
        Check("a", Level.OK, ""),
        Check("b", Level.WARN, ""),
        Check("c", Level.OK, ""),
    ]
    assert status.level == Level.WARN
    status.checks.append(Check("d", Level.FAIL, ""))
    assert status.level == Level.FAIL
    assert status.as_dict()["status"] == "FAIL"


def test_report_totals() -> None:
    db = DatabaseStats((), None, None, 0.0, 0.0, {"events": 100, "event_ids": 20}, {"x": 5}, 3)
    status = Status(buffer(2), kafka(4, 6), db)
    status.checks = evaluate(status)
    report = status.as_dict()
    assert report["kafka"]["total_lag"] == 10
    assert [p["lag"] for p in report["kafka"]["partitions"]] == [4, 6]
    assert report["postgres"]["raw_total_bytes"] == 120
    assert report["postgres"]["aggregate_total_bytes"] == 5
    assert report["buffer"]["depth"] == 2
    assert {c["status"] for c in report["checks"]} <= {"OK", "WARN", "FAIL"}
    assert report["status"] == "FAIL"  # lag 10 waiting and never flushed


def test_committed_offset_beyond_the_end_fails() -> None:
    # A memory-only broker restarted: partition 1's log restarted at 0 while the group
    # had committed 2,520; max(0, end - committed) would read as "no lag".
    lost = KafkaStats(
        "t",
        "g",
        topic_exists=True,
        partitions=(PartitionLag(0, 5, 5, 0), PartitionLag(1, 2520, 3, 0)),
    )
    checks = {c.name: c for c in evaluate(Status(buffer(), lost, database(1.0)))}
    assert checks["kafka_lag"].level == Level.FAIL
    assert "partition 1: committed 2520 > end 3" in checks["kafka_lag"].reason
    assert not PartitionLag(0, 5, 5, 0).beyond_end
