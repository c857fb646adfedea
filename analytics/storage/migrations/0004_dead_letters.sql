-- Events the database refused (a value no validation caught). Kept, not dropped,
-- so an operator can see, fix and re-ingest them; the sink moves on past them.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    project_id  text,
    event_id    text,
    error       text NOT NULL,
    payload     text NOT NULL
);
