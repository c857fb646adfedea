"""Prometheus metrics: every name in one place (``sa_`` prefix, base units, ``_total``).

The edge and the worker each serve their own process's registry at ``/metrics``.
``deploy/prometheus/alerts.yml`` refers to these names; a test keeps them in step.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)


@functools.lru_cache(maxsize=8192)
def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, remembered: the hot paths label on every request."""
    return metric.labels(*labels)


# Edge
INGEST_REQUESTS = Counter(
    "sa_ingest_requests_total",
    "Ingest HTTP requests by endpoint and status",
    ["endpoint", "status"],
)
INGEST_EVENTS = Counter(
    "sa_ingest_events_total", "Events by project and outcome", ["project", "outcome"]
)
INGEST_REJECTIONS = Counter(
    "sa_ingest_rejections_total", "Rejected requests or events by error code", ["reason"]
)
INGEST_LATENCY = Histogram(
    "sa_ingest_request_duration_seconds",
    "Ingest request latency",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "sa_rate_limit_fail_open_total", "Requests let through because the rate limiter failed"
)

# Bridge
BUFFER_DEPTH = Gauge("sa_buffer_depth", "Entries in the Redis Stream buffer")
BUFFER_PENDING = Gauge("sa_buffer_pending", "Buffer entries read but not yet acknowledged")
BRIDGE_EVENTS = Counter("sa_bridge_events_total", "Events forwarded from Redis to Kafka")
BRIDGE_MESSAGES = Counter("sa_bridge_messages_total", "Kafka messages produced by the bridge")
BRIDGE_RECLAIMED = Counter(
    "sa_bridge_reclaimed_entries_total", "Buffer entries taken over from a dead bridge"
)
BUFFER_UNCONFIRMED = Gauge(
    "sa_buffer_unconfirmed", "Batches in Kafka whose events PostgreSQL does not hold yet"
)
BRIDGE_CONFIRMED = Counter(
    "sa_bridge_confirmed_entries_total", "Buffer entries trimmed once PostgreSQL held their events"
)
BRIDGE_RESENT = Counter(
    "sa_bridge_resent_entries_total", "Buffer entries sent again because the broker lost them"
)
BRIDGE_DROPPED = Counter(
    "sa_bridge_dropped_entries_total",
    "Buffer entries given up after repeated re-sends never reached PostgreSQL",
)

# Agents
SINK_EVENTS = Counter("sa_sink_events_total", "Events seen by the sink", ["outcome"])
SINK_ROWS = Counter("sa_flush_rows_total", "Rows written per table", ["table"])
FLUSH_LATENCY = Histogram(
    "sa_flush_duration_seconds",
    "Duration of one batch transaction (raw rows and aggregates)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LAST_FLUSH = Gauge("sa_last_flush_timestamp_seconds", "Unix time of the last successful flush")
CONSUMER_LAG = Gauge(
    "sa_consumer_lag_messages", "Kafka messages not yet processed, per partition", ["partition"]
)
PROCESSING_LAG = Gauge(
    "sa_processing_lag_seconds", "Age of the newest event at the moment it was stored"
)
ERRORS = Counter("sa_errors_total", "Errors by component and kind", ["component", "kind"])


def exposition() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type.

    In Prometheus's multiprocess mode (several edge processes, ``PROMETHEUS_MULTIPROC_DIR``
    set) the answer sums every process's counters and histograms.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


ALL_NAMES = (
    "sa_ingest_requests_total",
    "sa_ingest_events_total",
    "sa_ingest_rejections_total",
    "sa_ingest_request_duration_seconds",
    "sa_rate_limit_fail_open_total",
    "sa_buffer_depth",
    "sa_buffer_pending",
    "sa_bridge_events_total",
    "sa_bridge_messages_total",
    "sa_bridge_reclaimed_entries_total",
    "sa_sink_events_total",
    "sa_flush_rows_total",
    "sa_flush_duration_seconds",
    "sa_last_flush_timestamp_seconds",
    "sa_consumer_lag_messages",
    "sa_processing_lag_seconds",
    "sa_errors_total",
)
