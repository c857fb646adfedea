-- Projects, keys, sources and the raw event store.

CREATE TABLE projects (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    salt        text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('public', 'private')),
    key_hash    bytea NOT NULL UNIQUE,
    key_hint    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_project ON api_keys (project_id, kind);

CREATE TABLE event_sources (
    id          bigserial PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- Raw events, one partition per UTC day of the event time, so retention drops
-- partitions instead of deleting rows.
CREATE TABLE events (
    event_id         text NOT NULL,
    project_id       text NOT NULL,
    event_source_id  bigint NOT NULL REFERENCES event_sources (id),
    user_id          text,
    session_id       text,
    event_name       text NOT NULL,
    properties       jsonb NOT NULL DEFAULT '{}'::jsonb,
    "timestamp"      timestamptz NOT NULL,
    sample_rate      double precision NOT NULL DEFAULT 1.0,
    received_at      timestamptz NOT NULL,
    ip_address       text,
    user_agent       text
) PARTITION BY RANGE ("timestamp");
CREATE INDEX events_project_source_time_name
    ON events (project_id, event_source_id, "timestamp", event_name);
CREATE INDEX events_event_id ON events (event_id);

-- Idempotency ledger. A unique index on the partitioned table would have to
-- include "timestamp", and a client retry without its own timestamp gets a new
-- server time (maybe on the next day), so uniqueness of (project, event_id)
-- lives here, outside the partitioning.
CREATE TABLE event_ids (
    project_id   text NOT NULL,
    event_id     text NOT NULL,
    "timestamp"  timestamptz NOT NULL,
    PRIMARY KEY (project_id, event_id)
);
CREATE INDEX event_ids_time ON event_ids ("timestamp");

-- Creates the day partition holding `day` if it is missing; safe to race.
CREATE FUNCTION sa_ensure_partition(day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    part text := format('events_%s', to_char(day, 'YYYYMMDD'));
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('sa_partition_' || part));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
        part,
        (day::timestamp AT TIME ZONE 'UTC'),
        ((day + 1)::timestamp AT TIME ZONE 'UTC')
    );
END;
$$;
