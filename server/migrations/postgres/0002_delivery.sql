-- Reaching the human: one durable delivery per pause, and when its link was first opened.

ALTER TABLE pauses ADD COLUMN viewed_at BIGINT;

CREATE TABLE deliveries (
    pause_id        TEXT COLLATE "C" PRIMARY KEY REFERENCES pauses (id),
    project_id      TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'logged', 'failed', 'skipped')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
