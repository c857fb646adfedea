-- visits: nearly every sink batch updates the rows of the sessions still going on. Room
-- left on each page lets PostgreSQL update them in place (HOT: no index entries written
-- while started_at stays the same), about a fifth less time per upsert in measurements.
ALTER TABLE visits SET (fillfactor = 70);
