-- Console sessions: an operator signed in with an API key. The browser holds a random
-- token in a cookie; only its SHA-256 is stored. A session ends when the operator signs
-- out, when it expires, or when its key is revoked.
CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    key_id      TEXT NOT NULL REFERENCES api_keys (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    ended_at    INTEGER
);

CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
