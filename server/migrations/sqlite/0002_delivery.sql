-- Reaching the human: one durable delivery per pause, and when its link was first opened.

ALTER TABLE pauses ADD COLUMN viewed_at INTEGER;

CREATE TABLE deliveries (
    pause_id        TEXT PRIMARY KEY REFERENCES pauses (id),
    project_id      TEXT NOT NULL REFERENCES projects (id),
    channel         TEXT NOT NULL,
    -- pending until sent; sent (by a provider), logged (printed on the console),
    -- failed (gave up) or skipped (the pause was decided before it could be sent).
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'logged', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL,
    -- A worker that claims the delivery holds it until then; after a crash it expires.
    lease_until     INTEGER,
    updated_at      INTEGER NOT NULL
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
