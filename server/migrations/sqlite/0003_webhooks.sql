-- Signed webhooks: each project's signing secrets, a durable outbox of events, and a
-- record of every attempt to send one.

CREATE TABLE webhook_secrets (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    -- whsec_ and the base64 of 32 random bytes.
    secret      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    -- Set when a newer secret replaces it: it keeps signing until then.
    retires_at  INTEGER
);

CREATE INDEX webhook_secrets_by_project ON webhook_secrets (project_id, created_at);

CREATE TABLE webhook_events (
    -- The webhook-id header: the same on every attempt.
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects (id),
    pause_id        TEXT NOT NULL REFERENCES pauses (id),
    type            TEXT NOT NULL,
    url             TEXT NOT NULL,
    -- The exact body sent on every attempt.
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_events_by_pause ON webhook_events (pause_id, created_at);

CREATE TABLE webhook_attempts (
    event_id     TEXT NOT NULL REFERENCES webhook_events (id),
    attempt      INTEGER NOT NULL,
    attempted_at INTEGER NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    response     TEXT,
    error        TEXT,
    PRIMARY KEY (event_id, attempt)
);
