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
    received = max((int(v.get("r", 0)) for v in by_minute.values()), default=0)
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
        "newest_received_at": received / 1_000_000 if received else None,
    }


def merge_minutes(
    parts: Iterable[Iterable[tuple[float, dict[str, Any]]]],
) -> list[tuple[float, dict[str, Any]]]:
    """Minutes gathered from several workers; a minute seen twice (mid-rebalance) is summed."""
    merged: dict[float, dict[str, Any]] = {}
    for part in parts:
        for start, value in part:
            have = merged.get(start)
            if have is None:
                merged[start] = dict(value)
                continue
            names = dict(have.get("names") or {})
            for name, n in (value.get("names") or {}).items():
                names[name] = names.get(name, 0) + n
            users = Sketch.from_bytes(base64.b64decode(have["u"]) if have.get("u") else None)
            if value.get("u"):
                users.merge(Sketch.from_bytes(base64.b64decode(value["u"])))
            merged[start] = {
                "n": int(have.get("n", 0)) + int(value.get("n", 0)),
                "e": float(have.get("e", 0.0)) + float(value.get("e", 0.0)),
                "names": names,
                "u": base64.b64encode(users.to_bytes()).decode(),
                "r": max(int(have.get("r", 0)), int(value.get("r", 0))),
            }
    return sorted(merged.items())
