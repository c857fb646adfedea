"""P1, the peer: a 5-minute tumbling count per key in Quix Streams, on per-event JSON messages.

Run as ``python -m bench.quix_peer BROKER TOPIC GROUP N``; prints ``EVENTS_PER_S x``.
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
    now_ms = int(time.time() * 1000)
    for i in range(n):
        ts = now_ms - 1_800_000 + i * (1_800_000 // n)
        producer.produce(
            topic_name,
            key=b"project",
            timestamp=ts,
            value=orjson.dumps({"event_name": f"event_{i % 10}", "ts": ts}),
        )
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)

    state = {"seen": 0, "started": 0.0, "finished": 0.0}

    def count(value: dict[str, object]) -> dict[str, object]:
        if not state["seen"]:
            state["started"] = time.perf_counter()
        state["seen"] += 1
        if state["seen"] >= n:
            state["finished"] = time.perf_counter()
            app.stop()
        return value

    sdf = app.dataframe(topic)
    # .current() emits each event's updated window count, so counting after it times the
    # whole per-event aggregation.
    sdf = sdf.tumbling_window(duration_ms=300_000, grace_ms=60_000).count().current()
    sdf = sdf.update(count)
    app.run()
    if state["finished"]:
        print(f"EVENTS_PER_S {n / (state['finished'] - state['started']):.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
