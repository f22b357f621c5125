-- Events committed but not yet on their project's chain. A write inserts its events here,
-- with no lock; the sequencer (one at a time across servers, under an advisory lock)
-- moves them onto `audit_events` in `id` order, hashing each onto the one before, and
-- deletes them here in the same transaction. See the store's `sequencer` module.
CREATE TABLE audit_queue (
    id          BIGSERIAL PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    event_id    TEXT COLLATE "C" NOT NULL UNIQUE,
    event       TEXT NOT NULL,
    pause_id    TEXT COLLATE "C",
    actor       TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    data        TEXT NOT NULL
) WITH (
    -- Every row is deleted moments after it is inserted: vacuum it after every few
    -- thousand, not after a fifth of a table that is always nearly empty.
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0
);

-- What a reader waits for: the project's events committed before it asked.
CREATE INDEX audit_queue_by_project ON audit_queue (project_id, id);
