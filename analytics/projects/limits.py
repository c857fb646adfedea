"""Rate limits and quotas, checked and charged atomically with the buffer append.

One Lua script per request: for every limit it reads a sliding-window
estimate (the current minute's counter plus the previous minute's, weighted
by how much of it still overlaps the last 60 s), refuses if any would be
exceeded, else charges all of them and XADDs the entry. So a request is
either accepted and counted, or refused and not buffered; never half. Daily
quotas are fixed UTC-day counters (no previous window).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from analytics.projects.policy import Policy

_TEMPLATE = """
local n = tonumber(ARGV[2])
local frac = tonumber(ARGV[3])
local count = (#KEYS - 1) / 2
for i = 1, count do
  local limit = tonumber(ARGV[3 + i])
  local cur = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local prev = 0
  if KEYS[2 * i + 1] ~= KEYS[2 * i] then
    prev = tonumber(redis.call('GET', KEYS[2 * i + 1]) or '0')
  end
  if prev * (1 - frac) + cur + n > limit then
    return i
  end
end
for i = 1, count do
  redis.call('INCRBY', KEYS[2 * i], n)
  redis.call('EXPIRE', KEYS[2 * i], tonumber(ARGV[3 + count + i]))
end
{append}
return 0
"""

APPEND_WITH_LIMITS = _TEMPLATE.replace("{append}", "redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])")
APPEND_WITH_LIMITS_SHA = hashlib.sha1(
    APPEND_WITH_LIMITS.encode(), usedforsecurity=False
).hexdigest()
# For a limiter on its own Redis: the same check and charge, no append (KEYS[1] unused).
CHECK_AND_CHARGE = _TEMPLATE.replace("{append}", "")


@dataclass(slots=True, frozen=True)
class Limit:
    """One limit to check and charge: window keys, the limit, the TTL, and how to report it."""

    current_key: str
    previous_key: str
    limit: int
    ttl_seconds: int
    code: str
    detail: str
    retry_after: int


def minute_limit(scope: str, limit: int, now: float, code: str, what: str) -> Limit:
    """A per-minute sliding-window limit for ``scope`` (e.g. ``p:<project>``)."""
    minute = int(now // 60)
    return Limit(
        current_key=f"sa:rl:{scope}:{minute}",
        previous_key=f"sa:rl:{scope}:{minute - 1}",
        limit=limit,
        ttl_seconds=150,
        code=code,
        detail=f"{what} is limited to {limit} events per minute",
        retry_after=max(1, 60 - int(now % 60)),
    )


def daily_quota(project_id: str, quota: int, now: float) -> Limit:
    """The project's daily event quota (UTC day)."""
    day = int(now // 86_400)
    key = f"sa:quota:{project_id}:{day}"
    return Limit(
        current_key=key,
        previous_key=key,
        limit=quota,
        ttl_seconds=2 * 86_400,
        code="quota_exceeded",
        detail=f"the project's daily quota of {quota} events is used up",
        retry_after=max(1, 86_400 - int(now % 86_400)),
    )


def window_fraction(now: float) -> float:
    """How far into the current minute ``now`` is (0..1)."""
    return (now % 60) / 60


def request_limits(
    project_id: str,
    policy: Policy,
    sources: Iterable[tuple[str, Policy]],
    ip: str | None,
    now: float,
) -> list[Limit]:
    """Every limit one request's kept events are charged to, in one place.

    ``policy`` is the project's (``resolve(project, None)``); ``sources`` the
    (name, policy) of each source that kept events in this request.
    """
    limits: list[Limit] = []
    if policy.rate_limit_per_minute:
        limits.append(
            minute_limit(
                f"p:{project_id}", policy.rate_limit_per_minute, now, "rate_limited", "this project"
            )
        )
    for name, source in sources:
        if source.source_rate_limit_per_minute:
            limits.append(
                minute_limit(
                    f"s:{project_id}:{name}",
                    source.source_rate_limit_per_minute,
                    now,
                    "rate_limited",
                    f"source {name}",
                )
            )
    if policy.rate_limit_per_ip_per_minute and ip:
        limits.append(
            minute_limit(
                f"ip:{project_id}:{ip}",
                policy.rate_limit_per_ip_per_minute,
                now,
                "rate_limited",
                "this client IP",
            )
        )
    if policy.daily_quota:
        limits.append(daily_quota(project_id, policy.daily_quota, now))
    return limits
