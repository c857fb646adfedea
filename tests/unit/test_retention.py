"""Retention planning (pure): which day partitions are dropped, which only lose some rows.

The rules (``analytics.ops.retention``): with N days, today and the N days before it are
kept; a day past the *longest* raw retention of all projects is dropped whole; a younger
day past a shorter retention only has the expired projects' rows deleted.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from analytics.ops.retention import (
    DEFAULT_AGGREGATE_RETENTION_DAYS,
    DEFAULT_RETENTION_DAYS,
    MAX_RETENTION_DAYS,
    Retention,
    RetentionError,
    _days,
    plan_partitions,
)

TODAY = date(2026, 6, 30)


def partitions(*ages: int) -> list[tuple[str, date]]:
    """Day partitions ``ages`` days before TODAY, named as the sink names them."""
    days = [TODAY - timedelta(days=age) for age in ages]
    return [(f"events_{d:%Y%m%d}", d) for d in days]


def test_plan_drops_only_days_past_the_longest_retention() -> None:
    today = date(2026, 6, 30)
    policies = [Retention("a", 30, 730), Retention("b", 90, 730)]
    parts = [
        (f"events_{d:%Y%m%d}", d)
        for d in (
            today - timedelta(days=91),
            today - timedelta(days=90),
            today - timedelta(days=31),
        )
    ]
    steps = plan_partitions(parts, policies, today)
    assert [(s.day, s.drop, s.projects) for s in steps] == [
        (today - timedelta(days=91), True, ("a", "b")),
        (today - timedelta(days=90), False, ("a",)),
        (today - timedelta(days=31), False, ("a",)),
    ]
    # One project: same drop rule (the caller then checks the partition holds only its rows).
    only_b = plan_partitions(parts, policies, today, "b")
    assert [(s.day, s.drop, s.projects) for s in only_b] == [
        (today - timedelta(days=91), True, ("b",))
    ]
    assert plan_partitions(parts, [], today) == []  # no project, no expired rows


def test_the_cutoff_day_itself_is_kept() -> None:
    policy = Retention("a", 30, 730)
    assert policy.raw_cutoff(TODAY) == date(2026, 5, 31)
    assert policy.aggregate_cutoff(TODAY) == date(2024, 6, 30)
    steps = plan_partitions(partitions(30, 31), [policy], TODAY)
    assert [s.day for s in steps] == [TODAY - timedelta(days=31)]


def test_without_policies_nothing_is_planned() -> None:
    # No project: no expired rows anywhere, whatever the age of the partition.
    assert plan_partitions(partitions(10_000), [], TODAY) == []


def test_a_day_past_every_retention_is_dropped_with_every_project_named() -> None:
    policies = [Retention("a", 7, 730), Retention("b", 14, 730), Retention("c", 3, 730)]
    (step,) = plan_partitions(partitions(15), policies, TODAY)
    assert step.drop and step.projects == ("a", "b", "c")
    assert step.partition == "events_20260615"
    assert step.describe() == "events_20260615"


def test_a_day_only_some_projects_expired_is_deleted_from_not_dropped() -> None:
    policies = [Retention("a", 7, 730), Retention("b", 14, 730)]
    (step,) = plan_partitions(partitions(10), policies, TODAY)
    assert (step.drop, step.projects) == (False, ("a",))
    assert step.describe() == "events_20260620 (1 proj)"


def test_one_project_mode_ignores_the_others_expiry() -> None:
    policies = [Retention("a", 7, 730), Retention("b", 14, 730)]
    assert plan_partitions(partitions(10), policies, TODAY, "b") == []
    (step,) = plan_partitions(partitions(10), policies, TODAY, "a")
    assert (step.drop, step.projects) == (False, ("a",))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DEFAULT_RETENTION_DAYS),  # not set
        ("null", DEFAULT_RETENTION_DAYS),  # set to JSON null
        ("30", 30),
        ('"45"', 45),  # a number written as a string
        ("1", 1),
        ("1000000", MAX_RETENTION_DAYS),  # "for ever" is clamped
    ],
)
def test_retention_setting_values(raw: str | None, expected: int) -> None:
    assert _days(raw, "retention_days", "p1", DEFAULT_RETENTION_DAYS) == expected


@pytest.mark.parametrize("raw", ["0", "-3", "true", "1.5", '"soon"', "[30]"])
def test_bad_retention_settings_stop_the_cleanup(raw: str) -> None:
    with pytest.raises(RetentionError, match=r"p1: settings\.retention_days"):
        _days(raw, "retention_days", "p1", DEFAULT_RETENTION_DAYS)


def test_defaults_are_the_project_settings_defaults() -> None:
    assert (DEFAULT_RETENTION_DAYS, DEFAULT_AGGREGATE_RETENTION_DAYS) == (90, 730)
