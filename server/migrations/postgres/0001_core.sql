-- The pause service core on PostgreSQL: the same tables as on SQLite. Times are BIGINT
-- milliseconds since the epoch; ids are UUID text compared byte by byte (COLLATE "C"),
-- so time-ordered ids sort by time for cursors.

CREATE TABLE projects (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    max_timeout_seconds BIGINT NOT NULL DEFAULT 2592000,
    audit_seq           BIGINT NOT NULL DEFAULT 0,
    audit_head          TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    created_at          BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE pauses (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    project_id          TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    status              TEXT NOT NULL CHECK (status IN ('pending', 'responded', 'timed_out', 'cancelled')),
    channel             TEXT NOT NULL,
    recipient           TEXT NOT NULL,
    message             TEXT NOT NULL,
    options             TEXT NOT NULL,
    allow_text_response BIGINT NOT NULL,
    timeout_default     TEXT,
    response_choice     TEXT,
    response_text       TEXT,
    response_at         BIGINT,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    metadata            TEXT,
    webhook_url         TEXT,
    idempotency_key     TEXT,
    request_hash        TEXT,
    UNIQUE (project_id, idempotency_key)
);

CREATE INDEX pauses_by_project ON pauses (project_id, id);
CREATE INDEX pauses_by_project_status ON pauses (project_id, status, id);
CREATE INDEX pauses_pending_by_expiry ON pauses (expires_at) WHERE status = 'pending';

CREATE TABLE audit_events (
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    seq         BIGINT NOT NULL,
    event_id    TEXT COLLATE "C" NOT NULL UNIQUE,
    event       TEXT NOT NULL,
    pause_id    TEXT COLLATE "C",
    actor       TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    data        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (project_id, seq)
);

CREATE INDEX audit_events_by_pause ON audit_events (project_id, pause_id, seq);

-- The audit log is append-only: the database itself refuses to change or remove a row.
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_refuse_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_refuse_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_refuse_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
