-- Audit log: key lifecycle and use (sampled), rate-limit and quota violations,
-- settings changes, system events.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    project_id  text,
    action      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_project_time ON audit_log (project_id, at);
