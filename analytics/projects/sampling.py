"""Sampling decisions per event (SPEC §5): random, deterministic per user, time windows.

Each decision returns whether the event is kept and the rate it was kept
at, which is stored with the event so counts scale back to estimates.
"""

from __future__ import annotations

import functools
import random
from hashlib import blake2b

from analytics.projects.policy import Sampling

_SCALE = float(1 << 64)


def user_fraction(user_id: str | None, project_id: str) -> float:
    """A stable number in [0, 1) per (user, project): the same users are always kept."""
    digest = blake2b(f"{project_id}\x1f{user_id or ''}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@functools.lru_cache(maxsize=256)  # per event otherwise; Sampling is frozen and hashable
def window_share(sampling: Sampling) -> float:
    """The fraction of the day the windows cover together (kept events are scaled back by it).

    Counted minute by minute over one day, so overlapping windows and daily windows mixed
    with hourly ones count each covered minute once, exactly as ``in_windows`` keeps them.
    """
    covered = sum(1 for minute in range(1440) if in_windows(sampling, minute * 60_000_000))
    return covered / 1440 if covered else 1.0


def in_windows(sampling: Sampling, timestamp_us: int) -> bool:
    """Whether an event time (UTC) falls in one of the windows."""
    minute_of_day = (timestamp_us // 60_000_000) % 1440
    minute_of_hour = minute_of_day % 60
    for window in sampling.windows:
        kind, start, end = window.span()
        point = minute_of_day if kind == "day" else minute_of_hour
        if start <= point < end:
            return True
    return False


def decide(
    sampling: Sampling, project_id: str, user_id: str | None, timestamp_us: int
) -> tuple[bool, float]:
    """(kept, sample rate) for one event."""
    strategy = sampling.strategy
    if strategy == "none":
        return True, 1.0
    if strategy == "random":
        return random.random() < sampling.rate, sampling.rate
    if strategy == "deterministic":
        return user_fraction(user_id, project_id) < sampling.rate, sampling.rate
    return in_windows(sampling, timestamp_us), window_share(sampling)
