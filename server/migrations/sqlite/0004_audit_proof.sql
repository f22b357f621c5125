-- Proof: the Ed25519 keys that sign audit checkpoints and decision receipts, and webhook
-- events that belong to no pause (checkpoints pushed to an outside witness).

CREATE TABLE audit_keys (
    -- The RFC 7638 thumbprint of the public key: the JWS "kid".
    id          TEXT PRIMARY KEY,
    -- The 32 bytes of the public key, base64url.
    public_key  TEXT NOT NULL,
    -- The 32-byte seed, sealed under the master key; NULL once retired (it signs no more,
    -- its public half keeps verifying what it signed).
    private_key TEXT,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);

-- One key signs at a time.
CREATE UNIQUE INDEX audit_keys_one_current ON audit_keys ((1)) WHERE retired_at IS NULL;

-- Checkpoints are listed through their event kind.
CREATE INDEX audit_events_by_event ON audit_events (project_id, event, seq);

-- webhook_events.pause_id becomes optional. SQLite cannot drop NOT NULL in place, so the
-- table is rebuilt, and with it webhook_attempts, whose foreign key names it: renaming a
-- parent rewrites its children's references, so both are built new, filled, and renamed
-- into place (foreign keys stay on and are checked all along).
DROP INDEX webhook_events_due;
DROP INDEX webhook_events_by_pause;

CREATE TABLE webhook_events_new (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects (id),
    -- NULL for an event of the project rather than of a pause (audit.checkpoint).
    pause_id        TEXT REFERENCES pauses (id),
    type            TEXT NOT NULL,
    url             TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

INSERT INTO webhook_events_new
    (id, project_id, pause_id, type, url, payload, status, attempts, next_attempt_at,
     lease_until, created_at, updated_at)
SELECT id, project_id, pause_id, type, url, payload, status, attempts, next_attempt_at,
       lease_until, created_at, updated_at
FROM webhook_events;

CREATE TABLE webhook_attempts_new (
    event_id     TEXT NOT NULL REFERENCES webhook_events_new (id),
    attempt      INTEGER NOT NULL,
    attempted_at INTEGER NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    response     TEXT,
    error        TEXT,
    PRIMARY KEY (event_id, attempt)
);

INSERT INTO webhook_attempts_new
    (event_id, attempt, attempted_at, status_code, latency_ms, response, error)
SELECT event_id, attempt, attempted_at, status_code, latency_ms, response, error
FROM webhook_attempts;

DROP TABLE webhook_attempts;
DROP TABLE webhook_events;
ALTER TABLE webhook_events_new RENAME TO webhook_events;
ALTER TABLE webhook_attempts_new RENAME TO webhook_attempts;

CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_events_by_pause ON webhook_events (pause_id, created_at);
