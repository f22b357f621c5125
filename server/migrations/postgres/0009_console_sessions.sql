-- Console sessions: an operator signed in with an API key. The browser holds a random
-- token in a cookie; only its SHA-256 is stored. A session ends when the operator signs
-- out, when it expires, or when its key is revoked.
CREATE TABLE console_sessions (
    token_hash  TEXT COLLATE "C" PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    key_id      TEXT COLLATE "C" NOT NULL REFERENCES api_keys (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ended_at    BIGINT
);

CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
