-- The table in which PostgreSQL deployments keep audit events until the sequencer chains
-- them. On SQLite the one writer chains events as it commits, so it stays empty; it is
-- here so that both databases have the same tables at the same version.
CREATE TABLE audit_pending (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    event_id    TEXT NOT NULL UNIQUE,
    event       TEXT NOT NULL,
    pause_id    TEXT,
    actor       TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    data        TEXT NOT NULL
);

CREATE INDEX audit_pending_by_project ON audit_pending (project_id, id);
