-- Aggregates: one row per (project, source name, event name, bucket), and a daily summary.
-- Sketches hold the distinct users/sessions (analytics.sketch) so counts merge and replays
-- cannot inflate them; they are written whole, so no compression pass (STORAGE EXTERNAL).

CREATE TABLE agg_5min (
    project_id       text NOT NULL,
    event_source     text NOT NULL,
    event_name       text NOT NULL,
    bucket_start     timestamptz NOT NULL,
    event_count      bigint NOT NULL DEFAULT 0,
    estimated_count  double precision NOT NULL DEFAULT 0,
    unique_users     bigint NOT NULL DEFAULT 0,
    unique_sessions  bigint NOT NULL DEFAULT 0,
    users_sketch     bytea,
    sessions_sketch  bytea,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, event_source, event_name, bucket_start)
);
CREATE INDEX agg_5min_project_time ON agg_5min (project_id, bucket_start);
ALTER TABLE agg_5min ALTER COLUMN users_sketch SET STORAGE EXTERNAL;
ALTER TABLE agg_5min ALTER COLUMN sessions_sketch SET STORAGE EXTERNAL;

CREATE TABLE agg_hourly (
    project_id       text NOT NULL,
    event_source     text NOT NULL,
    event_name       text NOT NULL,
    bucket_start     timestamptz NOT NULL,
    event_count      bigint NOT NULL DEFAULT 0,
    estimated_count  double precision NOT NULL DEFAULT 0,
    unique_users     bigint NOT NULL DEFAULT 0,
    unique_sessions  bigint NOT NULL DEFAULT 0,
    users_sketch     bytea,
    sessions_sketch  bytea,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, event_source, event_name, bucket_start)
);
CREATE INDEX agg_hourly_project_time ON agg_hourly (project_id, bucket_start);
ALTER TABLE agg_hourly ALTER COLUMN users_sketch SET STORAGE EXTERNAL;
ALTER TABLE agg_hourly ALTER COLUMN sessions_sketch SET STORAGE EXTERNAL;

CREATE TABLE agg_daily (
    project_id       text NOT NULL,
    event_source     text NOT NULL,
    event_name       text NOT NULL,
    bucket_start     timestamptz NOT NULL,
    event_count      bigint NOT NULL DEFAULT 0,
    estimated_count  double precision NOT NULL DEFAULT 0,
    unique_users     bigint NOT NULL DEFAULT 0,
    unique_sessions  bigint NOT NULL DEFAULT 0,
    users_sketch     bytea,
    sessions_sketch  bytea,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, event_source, event_name, bucket_start)
);
CREATE INDEX agg_daily_project_time ON agg_daily (project_id, bucket_start);
ALTER TABLE agg_daily ALTER COLUMN users_sketch SET STORAGE EXTERNAL;
ALTER TABLE agg_daily ALTER COLUMN sessions_sketch SET STORAGE EXTERNAL;

CREATE TABLE project_daily_summary (
    project_id       text NOT NULL,
    day              date NOT NULL,
    total_events     bigint NOT NULL DEFAULT 0,
    estimated_events double precision NOT NULL DEFAULT 0,
    unique_users     bigint NOT NULL DEFAULT 0,
    unique_sessions  bigint NOT NULL DEFAULT 0,
    top_events       jsonb NOT NULL DEFAULT '[]'::jsonb,
    sources          jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_counts     jsonb NOT NULL DEFAULT '{}'::jsonb,
    users_sketch     bytea,
    sessions_sketch  bytea,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, day)
);
ALTER TABLE project_daily_summary ALTER COLUMN users_sketch SET STORAGE EXTERNAL;
ALTER TABLE project_daily_summary ALTER COLUMN sessions_sketch SET STORAGE EXTERNAL;

-- Last flush per table, for event-status and freshness.
CREATE TABLE flush_log (
    table_name   text PRIMARY KEY,
    flushed_at   timestamptz NOT NULL,
    rows_written bigint NOT NULL
);
