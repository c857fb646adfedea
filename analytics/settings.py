"""Settings: the one configuration object, read from the environment once.

Built at the entry points (CLI, worker, edge, ``make run``) and handed down;
nothing else reads ``os.environ``. Tests build ``Settings(...)`` directly.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the stack; environment variable names are the field names upper-cased."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/analytics"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # fsync policy of the Redis that `make run` embeds (README, "Why nothing is lost"):
    # "always" survives power loss, "everysec" may lose up to a second of accepted events.
    redis_appendfsync: Literal["always", "everysec"] = "everysec"
    # Rate limits and quotas on their own Redis (fail open when it is down); unset = the
    # buffer's Redis, checked atomically with the append.
    rate_limit_redis_url: str | None = None
    kafka_broker: str = "kafka://127.0.0.1:9092"

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Slow or idle clients (slowloris): a connection must deliver a request's complete
    # headers within this many seconds of opening (or of the previous answer on a kept-alive
    # connection), else it is closed; once the headers are in, the whole body must arrive
    # within the body timeout, else the answer is 408. Beyond the connection cap a new
    # connection is answered 503 and closed at once.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=60.0, gt=0)
    http_max_connections: int = Field(default=1000, ge=1)
    # Edge processes sharing HTTP_PORT (SO_REUSEPORT); above 1 `analytics edge` supervises.
    edge_processes: int = Field(default=1, ge=1, le=64)
    # The worker's own web server (live figures, /readyz, /metrics): loopback unless the
    # operator opens it (compose sets 0.0.0.0 so the edge can reach every worker).
    worker_web_host: str = "127.0.0.1"
    worker_web_port: int = 6066
    # Where the edge gathers live figures from (every worker's web port); empty means
    # the one local worker on WORKER_WEB_PORT.
    worker_urls: tuple[str, ...] = ()

    # Names of the buffer, topics and tables live here and nowhere else.
    app_id: str = "simple-analytics"
    stream_key: str = "sa:events"
    stream_group: str = "bridge"
    events_topic: str = "sa-events"
    live_table: str = "live-minutes"
    topic_partitions: int = Field(default=4, ge=1)

    # Edge limits (SPEC §4).
    max_batch_events: int = 1000
    max_batch_bytes: int = 5 * 1024 * 1024
    max_event_bytes: int = 1024 * 1024
    max_properties_bytes: int = 64 * 1024
    # Nesting levels allowed in an event's properties (the object itself is level 1).
    # orjson cannot write more than 254, so the ceiling keeps every accepted event storable.
    max_properties_depth: int = Field(default=32, ge=1, le=200)
    future_tolerance_seconds: int = 24 * 3600
    clock_skew_threshold_seconds: int = 150
    session_window_minutes: int = 60
    key_cache_seconds: float = 5.0
    trusted_proxies: tuple[str, ...] = ()

    # Bridge: Redis Stream -> Kafka.
    bridge_enabled: bool = True
    # Entries per read: an entry holds up to 1,000 events (buffer.ENTRY_EVENTS), so this
    # bounds what one read holds decoded in the worker (50,000 events; 500 let a backlog
    # of large batches put 500,000 in memory at once).
    bridge_read_count: int = 50
    bridge_block_ms: int = 200
    bridge_claim_idle_ms: int = 30_000
    bridge_events_per_message: int = 500
    # Entries stay in Redis until PostgreSQL holds their events; a confirm pass trims them
    # (and re-sends what the broker lost) this often.
    bridge_confirm_interval_seconds: float = Field(default=1.0, gt=0)
    # A re-sent batch that still does not reach PostgreSQL this many times is dropped
    # with an error log (its events were stored and since removed, e.g. by retention).
    bridge_max_resends: int = Field(default=5, ge=1)

    # Raw sink agent.
    sink_batch_messages: int = 50
    sink_batch_seconds: float = 0.2
    # A batch's unique users, sessions and visitors are merged into the stored sketches
    # at most this long after its counts (its Kafka offsets wait for that merge).
    sketch_flush_seconds: float = Field(default=2.0, gt=0)
    partitions_ahead_days: int = 7
    # Enrichment: a MaxMind or DB-IP country (or city) .mmdb file to use instead of the
    # registry data compiled into iptocc; unset uses iptocc.
    geoip_database: str | None = None

    # faust worker: a dead worker's partitions move after this many seconds.
    worker_session_timeout: float = 6.0
    worker_rebalance_timeout: float = 3.0
    # Changelog recovery that reads nothing for this long is given up (live view only).
    worker_recovery_stall_seconds: float = 10.0
    # A partition with messages waiting and no read (and no write in flight) for this long
    # means a stuck consumer: the worker restarts itself.
    worker_read_stall_seconds: float = 20.0
    worker_datadir: str = ".run/worker-data"

    # The admin view at /admin/ (README, "Admin view"): off unless this is set to a secret
    # of at least ADMIN_TOKEN_MIN_LENGTH characters (a shorter one leaves it off, with a
    # warning). Failed logins: after this many within the window, the client is locked out.
    admin_token: str | None = None
    admin_session_hours: float = Field(default=12.0, gt=0)
    admin_max_failures: int = Field(default=5, ge=1)
    admin_lockout_seconds: int = Field(default=300, ge=1)

    # Where people reach the edge (the base of share links); default http://HTTP_HOST:PORT.
    public_url: str | None = None

    log_level: str = "info"
    log_format: str = "text"

    def public_base_url(self) -> str:
        """The edge's public base URL, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.http_host}:{self.http_port}"

    def as_environ(self) -> dict[str, str]:
        """The environment variables that rebuild these settings (for child processes)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue  # unset stays unset (an empty variable would not parse as None)
            if isinstance(value, tuple | list | dict):
                out[name.upper()] = json.dumps(list(value) if isinstance(value, tuple) else value)
            elif isinstance(value, bool):
                out[name.upper()] = "true" if value else "false"
            else:
                out[name.upper()] = str(value)
        return out
