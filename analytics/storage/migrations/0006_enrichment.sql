-- Enriched columns (SPEC §10), computed by the worker before the insert. Nullable
-- and without defaults, so adding them rewrites nothing; rows stored before
-- keep nulls until `analytics enrich-events` fills them.
ALTER TABLE events
    ADD COLUMN hostname         text,
    ADD COLUMN pathname         text,
    ADD COLUMN referrer_domain  text,
    ADD COLUMN referrer_source  text,
    ADD COLUMN utm_source       text,
    ADD COLUMN utm_medium       text,
    ADD COLUMN utm_campaign     text,
    ADD COLUMN utm_term         text,
    ADD COLUMN utm_content      text,
    ADD COLUMN browser          text,
    ADD COLUMN browser_version  text,
    ADD COLUMN os               text,
    ADD COLUMN os_version       text,
    ADD COLUMN device_type      text,
    ADD COLUMN is_bot           boolean,
    ADD COLUMN country_code     text;
