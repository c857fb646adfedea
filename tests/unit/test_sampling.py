"""Sampling decisions (SPEC §5): ``random`` keeps random() < rate, ``deterministic`` keeps the
same users every time (a hash of user and project below the rate), ``time_window`` keeps
events whose time (UTC) falls in a window and stores the windows' share of time as the rate."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from analytics.events.times import to_us
from analytics.projects.policy import Sampling, TimeWindow
from analytics.projects.sampling import decide, user_fraction, window_share

T0 = to_us(datetime(2026, 3, 1, 12, tzinfo=UTC))
USERS = [f"user-{i}" for i in range(10_000)]


def kept_users(sampling: Sampling, project_id: str = "p1", at: int = T0) -> set[str]:
    return {u for u in USERS if decide(sampling, project_id, u, at)[0]}


@pytest.fixture
def seeded() -> Iterator[None]:
    """A fixed seed for the module-level ``random`` the edge draws from; restored after."""
    state = random.getstate()
    random.seed(20_260_301)
    yield
    random.setstate(state)


def test_no_sampling_keeps_everything_at_rate_1() -> None:
    assert decide(Sampling(), "p1", "u", T0) == (True, 1.0)
    assert decide(Sampling(), "p1", None, T0) == (True, 1.0)


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("rate", [0.1, 0.3, 0.75])
def test_random_keeps_about_the_rate(rate: float) -> None:
    sampling = Sampling(strategy="random", rate=rate)
    decisions = [decide(sampling, "p1", "same-user", T0) for _ in range(10_000)]
    kept = sum(k for k, _ in decisions)
    # Binomial standard deviation is at most 50 for n = 10,000; allow 4.
    assert abs(kept - 10_000 * rate) <= 200, kept
    assert {r for _, r in decisions} == {rate}


def test_random_is_not_per_user() -> None:
    # One user's events are kept and dropped at random (unlike deterministic).
    sampling = Sampling(strategy="random", rate=0.5)
    outcomes = {decide(sampling, "p1", "same-user", T0)[0] for _ in range(200)}
    assert outcomes == {True, False}


def test_random_at_rate_1_keeps_everything() -> None:
    sampling = Sampling(strategy="random", rate=1.0)
    assert all(decide(sampling, "p1", "u", T0) == (True, 1.0) for _ in range(1000))


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.5])
def test_deterministic_keeps_about_the_rate_of_users(rate: float) -> None:
    kept = kept_users(Sampling(strategy="deterministic", rate=rate))
    assert abs(len(kept) / len(USERS) - rate) <= 0.02


def test_deterministic_keeps_the_same_users_every_time() -> None:
    sampling = Sampling(strategy="deterministic", rate=0.3)
    first = kept_users(sampling)
    assert kept_users(sampling) == first
    assert kept_users(sampling, at=to_us(datetime(2027, 1, 1, tzinfo=UTC))) == first
    # Every event of a user gets the same answer, and the stored rate is the setting.
    for user in USERS[:50]:
        answers = {decide(sampling, "p1", user, T0 + i * 1_000_000) for i in range(5)}
        assert answers == {(user in first, 0.3)}


def test_deterministic_choice_depends_on_the_project() -> None:
    sampling = Sampling(strategy="deterministic", rate=0.3)
    here, there = kept_users(sampling, "p1"), kept_users(sampling, "p2")
    assert here != there
    # Independent choices: about 0.3 * 0.3 of users are kept in both.
    assert 0.07 <= len(here & there) / len(USERS) <= 0.11


def test_raising_the_rate_keeps_everyone_kept_before() -> None:
    low = kept_users(Sampling(strategy="deterministic", rate=0.1))
    high = kept_users(Sampling(strategy="deterministic", rate=0.4))
    assert low < high


def test_user_fraction_is_a_stable_number_in_0_1() -> None:
    fractions = [user_fraction(u, "p1") for u in USERS[:1000]]
    assert all(0.0 <= f < 1.0 for f in fractions)
    assert fractions == [user_fraction(u, "p1") for u in USERS[:1000]]
    assert len(set(fractions)) == 1000
    # Events without a user all share one decision.
    assert user_fraction(None, "p1") == user_fraction(None, "p1")


def at(hh: int, mm: int, ss: int = 0, day: datetime | None = None) -> int:
    base = day or datetime(2026, 3, 1, tzinfo=UTC)
    return to_us(base + timedelta(hours=hh, minutes=mm, seconds=ss))


OFFICE_HOURS = Sampling(strategy="time_window", windows=(TimeWindow(start="09:00", end="17:00"),))
QUARTER = Sampling(strategy="time_window", windows=(TimeWindow(start_minute=0, end_minute=15),))


@pytest.mark.parametrize(
    ("moment", "kept"),
    [
        (at(8, 59, 59), False),
        (at(9, 0), True),  # the start is inside
        (at(12, 30), True),
        (at(16, 59, 59), True),
        (at(17, 0), False),  # the end is outside
        (at(23, 0), False),
        (at(10, 0, day=datetime(1969, 7, 20, tzinfo=UTC)), True),  # before the epoch
        (at(8, 0, day=datetime(1969, 7, 20, tzinfo=UTC)), False),
    ],
)
def test_daily_window(moment: int, kept: bool) -> None:
    assert decide(OFFICE_HOURS, "p1", "u", moment) == (kept, pytest.approx(8 / 24))


@pytest.mark.parametrize(
    ("moment", "kept"),
    [(at(10, 0), True), (at(10, 14, 59), True), (at(10, 15), False), (at(3, 59, 59), False)],
)
def test_hourly_window(moment: int, kept: bool) -> None:
    assert decide(QUARTER, "p1", "u", moment) == (kept, 0.25)


def test_disjoint_windows_add_up() -> None:
    night = Sampling(
        strategy="time_window",
        windows=(TimeWindow(start="00:00", end="06:00"), TimeWindow(start="18:00", end="24:00")),
    )
    assert window_share(night) == 0.5
    assert decide(night, "p1", "u", at(23, 59, 59))[0]
    assert decide(night, "p1", "u", at(0, 0))[0]
    assert not decide(night, "p1", "u", at(12, 0))[0]


def test_time_window_keeps_every_user_alike() -> None:
    # The decision is about time only: all users at one moment get the same answer.
    assert kept_users(OFFICE_HOURS, at=at(10, 0)) == set(USERS)
    assert kept_users(OFFICE_HOURS, at=at(20, 0)) == set()


def test_window_share_counts_overlapping_and_mixed_windows_once() -> None:
    # The README's example: 09:00-17:00 each day plus minutes 0-15 of every hour covers
    # 8 h + 16 x 15 min = 12 of 24 hours.
    mixed = Sampling(
        strategy="time_window",
        windows=(TimeWindow(start="09:00", end="17:00"), TimeWindow(start_minute=0, end_minute=15)),
    )
    assert window_share(mixed) == 0.5
    nested = Sampling(
        strategy="time_window",
        windows=(TimeWindow(start="09:00", end="17:00"), TimeWindow(start="10:00", end="12:00")),
    )
    assert window_share(nested) == pytest.approx(8 / 24)
