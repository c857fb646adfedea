-- Web analytics (SPEC §10): visits and the rollups the stats API reads.
--
-- Both are written in the raw sink's batch transaction from the rows the event_ids
-- ledger accepted as new (the same rule as agg_*), and only from events that are not
-- bots (is_bot IS NOT TRUE). analytics.ops.recount compares them with a recount of
-- `events`.

-- One row per visit: the events of one session_id. Every column is a commutative
-- merge of its events (least/greatest with event_id as the tie-break, or a sum), so
-- the row is the same whatever order the events arrive in, late ones included.
CREATE TABLE visits (
    project_id      text NOT NULL,
    session_id      text NOT NULL,
    user_id         text,
    -- the first event: (started_at, first_event_id) is the least (timestamp, event_id)
    started_at      timestamptz NOT NULL,
    first_event_id  text NOT NULL,
    -- the last event's time: duration = ended_at - started_at
    ended_at        timestamptz NOT NULL,
    -- the first and the last page_view (by timestamp, then event_id); null without one
    entry_page      text,
    entry_at        timestamptz,
    entry_event_id  text,
    exit_page       text,
    exit_at         timestamptz,
    exit_event_id   text,
    pageviews       bigint NOT NULL,
    events          bigint NOT NULL,
    -- where the visit came from and who made it: the first event's enriched columns
    hostname        text,
    referrer_domain text,
    referrer_source text,
    utm_source      text,
    utm_medium      text,
    utm_campaign    text,
    utm_term        text,
    utm_content     text,
    country_code    text,
    device_type     text,
    browser         text,
    os              text,
    PRIMARY KEY (project_id, session_id)
);
CREATE INDEX visits_started ON visits (project_id, started_at);

-- Event rollups for the stats API: per (project, dimension, value, bucket), counts and a
-- visitor sketch (analytics.counting.sketch: exact up to 10,000 members, HyperLogLog
-- beyond). dimension is '' for the whole site (value ''), 'name' (event_name), 'page'
-- (pathname) or 'hostname'; events without that column are not in its rows.
CREATE TABLE stats_hourly (
    project_id      text NOT NULL,
    dimension       text NOT NULL,
    bucket_start    timestamptz NOT NULL,   -- a UTC hour
    value           text NOT NULL,
    events          bigint NOT NULL,
    pageviews       bigint NOT NULL,
    visitors        bigint NOT NULL,        -- the sketch's cardinality
    visitors_sketch bytea,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, dimension, bucket_start, value)
);

CREATE TABLE stats_daily (
    project_id      text NOT NULL,
    dimension       text NOT NULL,
    day             date NOT NULL,          -- a UTC day
    value           text NOT NULL,
    events          bigint NOT NULL,
    pageviews       bigint NOT NULL,
    visitors        bigint NOT NULL,
    visitors_sketch bytea,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, dimension, day, value)
);

-- Read-only links to a project's dashboard (`analytics share-link`): the token is shown
-- once and stored as its SHA-256; a revoked link stops answering.
CREATE TABLE share_links (
    token_hash  text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    token_hint  text NOT NULL,              -- the token's first characters, for listings
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX share_links_project ON share_links (project_id);
