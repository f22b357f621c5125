-- The queue's UNIQUE (event_id): every queued event (two per create) wrote an entry in
-- it, in the writer's statement, and the sequencer's delete left one more dead entry to
-- vacuum. No read goes by it. An event's id is a UUIDv7 the server draws as it builds
-- the event, and `audit_events` keeps its own UNIQUE (event_id), which is what the log
-- promises: an id named twice stops at the sequencer's insert, never reaches the chain.
-- Every version before this one inserts without ON CONFLICT, so it runs as it did.
ALTER TABLE audit_queue DROP CONSTRAINT audit_queue_event_id_key;
