-- Several approvers: one row per person asked, with their own view and vote, and
-- deliveries keyed by approver and notice (0 the first, then each reminder), so that an
-- escalation tier or a reminder is a delivery row due at its time like any other.

ALTER TABLE pauses ADD COLUMN quorum_option TEXT;
ALTER TABLE pauses ADD COLUMN quorum_count INTEGER;
ALTER TABLE pauses ADD COLUMN remind_every_seconds INTEGER;
-- Votes for quorum_option so far: counted by the UPDATE that locks the pause row, so
-- racing votes are counted one after the other.
ALTER TABLE pauses ADD COLUMN approvals INTEGER NOT NULL DEFAULT 0;

CREATE TABLE approvers (
    pause_id    TEXT NOT NULL REFERENCES pauses (id),
    -- 0 is the pause's `recipient`; tier 0 first, then each escalation tier in order.
    approver    INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    tier        INTEGER NOT NULL,
    notify_at   INTEGER NOT NULL,
    viewed_at   INTEGER,
    vote_choice TEXT,
    vote_text   TEXT,
    vote_at     INTEGER,
    PRIMARY KEY (pause_id, approver)
);

INSERT INTO approvers (pause_id, approver, channel, recipient, tier, notify_at, viewed_at,
                       vote_choice, vote_text, vote_at)
SELECT id, 0, channel, recipient, 0, created_at, viewed_at,
       CASE WHEN status = 'responded' THEN response_choice END,
       CASE WHEN status = 'responded' THEN response_text END,
       CASE WHEN status = 'responded' THEN response_at END
FROM pauses;

CREATE TABLE approver_deliveries (
    -- `{pause_id}:{approver}:{reminder}`: the outbox's one key.
    id              TEXT PRIMARY KEY,
    pause_id        TEXT NOT NULL REFERENCES pauses (id),
    approver        INTEGER NOT NULL,
    -- 0 the first notice; 1 and up the reminders.
    reminder        INTEGER NOT NULL,
    project_id      TEXT NOT NULL REFERENCES projects (id),
    channel         TEXT NOT NULL,
    -- delivered and undelivered: what the provider reported after accepting it.
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'logged', 'failed', 'skipped',
                                                    'delivered', 'undelivered')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    updated_at      INTEGER NOT NULL
);

INSERT INTO approver_deliveries (id, pause_id, approver, reminder, project_id, channel, status,
                                 attempts, last_error, next_attempt_at, lease_until, updated_at)
SELECT pause_id || ':0:0', pause_id, 0, 0, project_id, channel, status,
       attempts, last_error, next_attempt_at, lease_until, updated_at
FROM deliveries;

DROP TABLE deliveries;
ALTER TABLE approver_deliveries RENAME TO deliveries;

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_pause ON deliveries (pause_id, approver, reminder);
