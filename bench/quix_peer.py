"""P1, the peer: a 5-minute tumbling count per key in Quix Streams, on per-event JSON messages.

Run as ``python -m bench.quix_peer BROKER TOPIC GROUP N``; prints ``EVENTS_PER_S x``.
The events are the agents row's (``bench.pipeline.make_rows``: same fields, random
UUIDv4 ids, same count), one JSON object per message keyed by project. The clock runs
from ``app.run()`` (consumer start and group join included) to the last event counted.
What the peer does: decode each event and keep a windowed count per key in its
RocksDB state. What it does not: deduplicate, store raw rows, write aggregates or
sketches to PostgreSQL, or feed a live view; it is a floor for the streaming part.
The topic is created with explicit retention configs (the broker returns no
topic configs otherwise and Quix fails on ``retention.ms``), and the window
has a grace period so in-order-ish events are not dropped as late.
"""

from __future__ import annotations

import sys
import time

import orjson
from confluent_kafka import Producer
from quixstreams import Application
from quixstreams.models import TopicConfig

from bench.pipeline import make_rows


def main(broker: str, topic_name: str, group: str, n: int) -> None:
    app = Application(
        broker_address=broker,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=f"/tmp/{group}-state",
        loglevel="WARNING",
    )
    topic = app.topic(
        topic_name,
        value_deserializer="json",
        config=TopicConfig(
            num_partitions=1,
            replication_factor=1,
            extra_config={"retention.ms": "604800000", "retention.bytes": "-1"},
        ),
    )
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 20})
    for i, row in enumerate(make_rows("bench-quix", 1, n)):
        producer.produce(
            topic_name,
            key=row.project_id.encode(),
            timestamp=row.timestamp_us // 1000,
            value=orjson.dumps(row._asdict()),
        )
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)

    state = {"seen": 0, "started": 0.0, "first": 0.0, "finished": 0.0}

    def count(value: object) -> None:
        if not state["seen"]:
            state["first"] = time.perf_counter()
        state["seen"] += 1
        if state["seen"] >= n:
            state["finished"] = time.perf_counter()
            app.stop()

    sdf = app.dataframe(topic)
    # .current() emits each event's updated window count, so counting after it times the
    # whole per-event aggregation.
    sdf = sdf.tumbling_window(duration_ms=300_000, grace_ms=60_000).count().current()
    sdf = sdf.update(count)
    state["started"] = time.perf_counter()
    app.run()
    if state["finished"]:
        print(f"EVENTS_PER_S {n / (state['finished'] - state['started']):.1f}", flush=True)
        print(f"FIRST_EVENT_AFTER_S {state['first'] - state['started']:.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
