-- Two connections creating the same day partition at once: the loser's CREATE
-- fails with duplicate_table even after the advisory lock (its catalog
-- snapshot predates the winner's commit). Treat that as success.
CREATE OR REPLACE FUNCTION sa_ensure_partition(day date) RETURNS void
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
    BEGIN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            part,
            (day::timestamp AT TIME ZONE 'UTC'),
            ((day + 1)::timestamp AT TIME ZONE 'UTC')
        );
    EXCEPTION WHEN duplicate_table THEN
        NULL;
    END;
END;
$$;
