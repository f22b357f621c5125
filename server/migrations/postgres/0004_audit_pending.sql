-- Audit events written by requests, waiting for the sequencer to put them on their
-- project's chain (in commit order, in batches), so that no request waits on the
-- project's row lock. Reads show only chained events.
CREATE TABLE audit_pending (
    id          BIGSERIAL PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    event_id    TEXT COLLATE "C" NOT NULL UNIQUE,
    event       TEXT NOT NULL,
    pause_id    TEXT COLLATE "C",
    actor       TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    data        TEXT NOT NULL
);

CREATE INDEX audit_pending_by_project ON audit_pending (project_id, id);
