-- Signed webhooks: each project's signing secrets, a durable outbox of events, and a
-- record of every attempt to send one.

CREATE TABLE webhook_secrets (
    id          TEXT COLLATE "C" PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retires_at  BIGINT
);

CREATE INDEX webhook_secrets_by_project ON webhook_secrets (project_id, created_at);

CREATE TABLE webhook_events (
    id              TEXT COLLATE "C" PRIMARY KEY,
    project_id      TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    pause_id        TEXT COLLATE "C" NOT NULL REFERENCES pauses (id),
    type            TEXT NOT NULL,
    url             TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_events_by_pause ON webhook_events (pause_id, created_at);

CREATE TABLE webhook_attempts (
    event_id     TEXT COLLATE "C" NOT NULL REFERENCES webhook_events (id),
    attempt      BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL,
    status_code  BIGINT,
    latency_ms   BIGINT NOT NULL,
    response     TEXT,
    error        TEXT,
    PRIMARY KEY (event_id, attempt)
);
