-- The sink's write path maintains every index on every insert; two of them earned nothing.
-- events(event_id): no read path looks an event up by id alone (the ledger, event_ids,
-- answers "is this id stored?" by its primary key).
DROP INDEX IF EXISTS events_event_id;
-- event_ids("timestamp") serves only retention's range delete; ids arrive roughly in time
-- order, so a BRIN index (a few pages) finds the range at a fraction of a btree's upkeep.
DROP INDEX IF EXISTS event_ids_time;
CREATE INDEX event_ids_time ON event_ids USING brin ("timestamp");
