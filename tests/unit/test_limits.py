"""Which limits a request is charged to (``analytics.projects.limits``), with their Redis keys.

Per-minute limits are sliding windows over the current and the previous minute's counter;
the daily quota is a fixed UTC-day counter. Scopes: the project (shared by all its
sources), each source that kept events (on top of the project's), the client IP within
the project, and the project's daily quota. The Lua script that checks and charges them
needs Redis and is tested in tests/web/test_projects.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analytics.projects.limits import (
    Limit,
    daily_quota,
    minute_limit,
    request_limits,
    window_fraction,
)
from analytics.projects.policy import Policy, ProjectSettings, SourceSettings, resolve

NOON = 1_772_366_400.0  # 2026-03-01T12:00:00Z: minute 29,539,440 and day 20,513 of the epoch


def project_policy(**settings: int) -> Policy:
    return resolve(ProjectSettings.model_validate(settings), None)


def source_policy(limit: int | None) -> Policy:
    return resolve(ProjectSettings(), SourceSettings(rate_limit_per_minute=limit))


def test_the_clock_constant() -> None:
    assert datetime.fromtimestamp(NOON, UTC) == datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_minute_limit_keys_and_report() -> None:
    limit = minute_limit("p:p1", 100, NOON + 25, "rate_limited", "this project")
    assert limit == Limit(
        current_key="sa:rl:p:p1:29539440",
        previous_key="sa:rl:p:p1:29539439",
        limit=100,
        ttl_seconds=150,
        code="rate_limited",
        detail="this project is limited to 100 events per minute",
        retry_after=35,
    )


def test_minute_counters_outlive_the_window_they_are_read_in() -> None:
    # The previous minute's counter is read up to 2 minutes after it started.
    assert minute_limit("p:p1", 1, NOON, "rate_limited", "x").ttl_seconds > 120


@pytest.mark.parametrize(
    ("offset", "retry_after"), [(0.0, 60), (0.5, 60), (30.0, 30), (59.0, 1), (59.9, 1)]
)
def test_minute_retry_after_is_the_rest_of_the_minute(offset: float, retry_after: int) -> None:
    assert minute_limit("p:p1", 1, NOON + offset, "rate_limited", "x").retry_after == retry_after


def test_the_next_minute_moves_both_keys() -> None:
    now = minute_limit("p:p1", 1, NOON + 59.9, "rate_limited", "x")
    later = minute_limit("p:p1", 1, NOON + 60, "rate_limited", "x")
    assert later.previous_key == now.current_key
    assert later.current_key != now.current_key


def test_daily_quota_is_one_fixed_counter_per_utc_day() -> None:
    quota = daily_quota("p1", 1000, NOON + 25)
    assert quota.current_key == quota.previous_key == "sa:quota:p1:20513"
    assert quota.limit == 1000
    assert quota.code == "quota_exceeded"
    assert quota.detail == "the project's daily quota of 1000 events is used up"
    assert quota.retry_after == 12 * 3600 - 25  # until 00:00 UTC
    assert quota.ttl_seconds >= 86_400
    assert daily_quota("p1", 1000, NOON + 12 * 3600 - 0.5).current_key == quota.current_key
    assert daily_quota("p1", 1000, NOON + 12 * 3600).current_key == "sa:quota:p1:20514"
    assert daily_quota("p1", 1000, NOON + 12 * 3600 - 0.5).retry_after == 1


@pytest.mark.parametrize(("offset", "fraction"), [(0, 0.0), (15, 0.25), (30, 0.5), (59.4, 0.99)])
def test_window_fraction(offset: float, fraction: float) -> None:
    assert window_fraction(NOON + offset) == pytest.approx(fraction)


def test_no_limits_configured_charges_nothing() -> None:
    sources = [("web", source_policy(None))]
    assert request_limits("p1", project_policy(), sources, "203.0.113.7", NOON) == []


def test_every_scope_in_one_request() -> None:
    policy = project_policy(
        rate_limit_per_minute=600, rate_limit_per_ip_per_minute=60, daily_quota=10_000
    )
    sources = [
        ("web", source_policy(100)),
        ("ios", source_policy(None)),
        ("batch", source_policy(5)),
    ]
    limits = request_limits("p1", policy, sources, "203.0.113.7", NOON + 10)
    assert [(lim.current_key, lim.limit, lim.code) for lim in limits] == [
        ("sa:rl:p:p1:29539440", 600, "rate_limited"),
        ("sa:rl:s:p1:web:29539440", 100, "rate_limited"),
        ("sa:rl:s:p1:batch:29539440", 5, "rate_limited"),
        ("sa:rl:ip:p1:203.0.113.7:29539440", 60, "rate_limited"),
        ("sa:quota:p1:20513", 10_000, "quota_exceeded"),
    ]
    details = [lim.detail for lim in limits]
    assert details[1] == "source web is limited to 100 events per minute"
    assert details[3] == "this client IP is limited to 60 events per minute"


def test_only_sources_that_kept_events_are_charged() -> None:
    policy = project_policy(rate_limit_per_minute=600)
    limits = request_limits("p1", policy, [], "203.0.113.7", NOON)
    assert [lim.current_key for lim in limits] == ["sa:rl:p:p1:29539440"]


def test_the_ip_limit_needs_an_address() -> None:
    policy = project_policy(rate_limit_per_ip_per_minute=60)
    assert request_limits("p1", policy, [], None, NOON) == []
    assert len(request_limits("p1", policy, [], "::1", NOON)) == 1


def test_scopes_never_cross_projects() -> None:
    policy = project_policy(rate_limit_per_minute=5, rate_limit_per_ip_per_minute=5, daily_quota=5)
    sources = [("web", source_policy(5))]
    one = {lim.current_key for lim in request_limits("p1", policy, sources, "10.0.0.1", NOON)}
    two = {lim.current_key for lim in request_limits("p2", policy, sources, "10.0.0.1", NOON)}
    assert len(one) == len(two) == 4
    assert one.isdisjoint(two)


def test_sources_of_one_project_share_its_project_limit() -> None:
    policy = project_policy(rate_limit_per_minute=5)
    web = request_limits("p1", policy, [("web", source_policy(None))], None, NOON)
    ios = request_limits("p1", policy, [("ios", source_policy(None))], None, NOON)
    assert web == ios
