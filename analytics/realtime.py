"""Realtime figures from live minute values (pure: the worker's views feed it)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from analytics.sketch import Sketch


def realtime_figures(
    minutes: Iterable[tuple[float, dict[str, Any]]], now: float, *, top: int = 10
) -> dict[str, Any]:
    """Widget figures from (minute start epoch seconds, value) pairs of one project."""
    by_minute = {int(start): value for start, value in minutes}
    current = int(now // 60 * 60)
    last_5 = [by_minute.get(current - 60 * i, {}) for i in range(5)]
    last_60 = [by_minute.get(current - 60 * i, {}) for i in range(60)]
    names: dict[str, int] = {}
    users = Sketch()
    for value in last_5:
        for name, n in (value.get("names") or {}).items():
            names[name] = names.get(name, 0) + n
        if value.get("u"):
            users.merge(Sketch.from_bytes(base64.b64decode(value["u"])))
    per_minute = [
        {"minute": current - 60 * i, "events": int(by_minute.get(current - 60 * i, {}).get("n", 0))}
        for i in reversed(range(30))
    ]
    newest = max((start for start, v in by_minute.items() if v.get("n")), default=None)
    return {
        "events_last_5_minutes": sum(int(v.get("n", 0)) for v in last_5),
        "events_last_hour": sum(int(v.get("n", 0)) for v in last_60),
        "estimated_last_hour": sum(float(v.get("e", 0.0)) for v in last_60),
        "events_per_minute": per_minute,
        "top_events_5_minutes": [
            {"event_name": n, "count": c}
            for n, c in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ],
        "active_users_5_minutes": users.cardinality(),
        "newest_minute": newest,
    }
