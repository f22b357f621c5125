-- The pause service core: projects, API keys, pauses and the append-only audit log.
-- Times are integer milliseconds since the epoch; ids are UUID text; JSON is text.

CREATE TABLE projects (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    max_timeout_seconds INTEGER NOT NULL DEFAULT 2592000,
    -- Head of the project's audit hash chain: the last seq handed out and its hash.
    audit_seq           INTEGER NOT NULL DEFAULT 0,
    audit_head          TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    created_at          INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    -- The first characters of the key, so a person can tell keys apart; never the key.
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE pauses (
    id                  TEXT PRIMARY KEY,
    project_id          TEXT NOT NULL REFERENCES projects (id),
    status              TEXT NOT NULL CHECK (status IN ('pending', 'responded', 'timed_out', 'cancelled')),
    channel             TEXT NOT NULL,
    recipient           TEXT NOT NULL,
    message             TEXT NOT NULL,
    options             TEXT NOT NULL,
    allow_text_response INTEGER NOT NULL,
    timeout_default     TEXT,
    response_choice     TEXT,
    response_text       TEXT,
    response_at         INTEGER,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    metadata            TEXT,
    webhook_url         TEXT,
    idempotency_key     TEXT,
    -- SHA-256 of the canonical request, to tell a retry from a different request reusing a key.
    request_hash        TEXT,
    UNIQUE (project_id, idempotency_key)
);

CREATE INDEX pauses_by_project ON pauses (project_id, id);
CREATE INDEX pauses_by_project_status ON pauses (project_id, status, id);
CREATE INDEX pauses_pending_by_expiry ON pauses (expires_at) WHERE status = 'pending';

CREATE TABLE audit_events (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    seq         INTEGER NOT NULL,
    event_id    TEXT NOT NULL UNIQUE,
    event       TEXT NOT NULL,
    pause_id    TEXT,
    actor       TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    data        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (project_id, seq)
);

CREATE INDEX audit_events_by_pause ON audit_events (project_id, pause_id, seq);

-- The audit log is append-only: the database itself refuses to change or remove a row.
CREATE TRIGGER audit_events_refuse_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_refuse_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

-- Server-wide values that every server sharing the database must agree on.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
