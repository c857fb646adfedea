-- The admin view and the dead-letter commands: a dead letter is marked, never deleted, so
-- the record of what went wrong and what an operator did about it stays. A replayed one
-- no longer vouches for its event in the bridge's confirm pass (the replay does); a
-- discarded one still does (the operator chose to give it up).
ALTER TABLE dead_letters
    ADD COLUMN replayed_at  timestamptz,
    ADD COLUMN discarded_at timestamptz;
CREATE INDEX dead_letters_event ON dead_letters (project_id, event_id);
CREATE INDEX dead_letters_open ON dead_letters (id) WHERE replayed_at IS NULL AND discarded_at IS NULL;
CREATE INDEX audit_log_time ON audit_log (at);
