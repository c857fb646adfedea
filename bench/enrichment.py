"""Per-event cost of enrichment: ``uv run --no-sync python -m bench.enrichment``.

Tracker-like events (a URL per page, a referrer on a third of them, UTM on a
tenth, 204 distinct user agents, random public and private addresses), after
a warm-up as a running worker has it; then the same with everything repeated
(the ``make bench`` rows: one agent, one page).
"""

from __future__ import annotations

import random
import time

import orjson

from analytics.enrich.enricher import Enricher, StoredFields

N = 200_000

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
] + [f"Mozilla/5.0 (Windows NT 10.0) Chrome/{v}.0.0.0 Safari/537.36" for v in range(100, 300)]


def tracker_events(n: int) -> list[StoredFields]:
    rng = random.Random(1)
    events = []
    for i in range(n):
        url = f"https://example.com/p/{i % 500}"
        if i % 10 == 0:
            url += "?utm_source=news&utm_campaign=launch"
        props = {
            "url": url,
            "referrer": "https://www.google.com/" if i % 3 == 0 else None,
            "title": "Page",
            "screen_width": rng.choice((390, 768, 1280, 1440, 1920)),
            "language": "en",
        }
        ip = ".".join(str(rng.randrange(1, 255)) for _ in range(4))
        events.append(StoredFields(orjson.dumps(props).decode(), ip, rng.choice(AGENTS)))
    return events


def measure(enricher: Enricher, events: list[StoredFields]) -> float:
    """µs per event, after a warm-up pass over a quarter of them."""
    enricher.enrich(events[: len(events) // 4])
    started = time.perf_counter()
    enricher.enrich(events)
    return (time.perf_counter() - started) / len(events) * 1e6


def main() -> None:
    enricher = Enricher()
    print(f"tracker-like traffic: {measure(enricher, tracker_events(N)):.2f} µs/event")
    same = [StoredFields('{"page": "/p"}', "127.0.0.1", "bench/1.0")] * N
    print(f"make bench rows (all repeated): {measure(enricher, same):.2f} µs/event")


if __name__ == "__main__":
    main()
