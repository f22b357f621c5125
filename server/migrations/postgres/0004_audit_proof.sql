-- Proof: the Ed25519 keys that sign audit checkpoints and decision receipts, and webhook
-- events that belong to no pause (checkpoints pushed to an outside witness).

CREATE TABLE audit_keys (
    -- The RFC 7638 thumbprint of the public key: the JWS "kid".
    id          TEXT COLLATE "C" PRIMARY KEY,
    -- The 32 bytes of the public key, base64url.
    public_key  TEXT NOT NULL,
    -- The 32-byte seed, sealed under the master key; NULL once retired.
    private_key TEXT,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

-- One key signs at a time.
CREATE UNIQUE INDEX audit_keys_one_current ON audit_keys ((1)) WHERE retired_at IS NULL;

-- Checkpoints are listed through their event kind.
CREATE INDEX audit_events_by_event ON audit_events (project_id, event, seq);

-- NULL for an event of the project rather than of a pause (audit.checkpoint).
ALTER TABLE webhook_events ALTER COLUMN pause_id DROP NOT NULL;
