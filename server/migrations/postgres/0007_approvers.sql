-- Several approvers: one row per person asked, with their own view and vote, and
-- deliveries keyed by approver and notice (0 the first, then each reminder), so that an
-- escalation tier or a reminder is a delivery row due at its time like any other.

ALTER TABLE pauses
    ADD COLUMN quorum_option TEXT,
    ADD COLUMN quorum_count BIGINT,
    ADD COLUMN remind_every_seconds BIGINT,
    -- Votes for quorum_option so far: counted by the UPDATE that locks the pause row, so
    -- racing votes are counted one after the other.
    ADD COLUMN approvals BIGINT NOT NULL DEFAULT 0;

CREATE TABLE approvers (
    pause_id    TEXT COLLATE "C" NOT NULL REFERENCES pauses (id),
    -- 0 is the pause's `recipient`; tier 0 first, then each escalation tier in order.
    approver    BIGINT NOT NULL,
    channel     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    tier        BIGINT NOT NULL,
    notify_at   BIGINT NOT NULL,
    viewed_at   BIGINT,
    vote_choice TEXT,
    vote_text   TEXT,
    vote_at     BIGINT,
    PRIMARY KEY (pause_id, approver)
);

INSERT INTO approvers (pause_id, approver, channel, recipient, tier, notify_at, viewed_at,
                       vote_choice, vote_text, vote_at)
SELECT id, 0, channel, recipient, 0, created_at, viewed_at,
       CASE WHEN status = 'responded' THEN response_choice END,
       CASE WHEN status = 'responded' THEN response_text END,
       CASE WHEN status = 'responded' THEN response_at END
FROM pauses;

-- `{pause_id}:{approver}:{reminder}`: the outbox's one key. `reminder` 0 is the first
-- notice; 1 and up the reminders.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey;
ALTER TABLE deliveries
    ADD COLUMN id TEXT COLLATE "C",
    ADD COLUMN approver BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN reminder BIGINT NOT NULL DEFAULT 0;
UPDATE deliveries SET id = pause_id || ':0:0';
ALTER TABLE deliveries ALTER COLUMN id SET NOT NULL, ADD PRIMARY KEY (id);
CREATE INDEX deliveries_by_pause ON deliveries (pause_id, approver, reminder);

-- delivered and undelivered: what the provider reported after accepting it.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'logged', 'failed', 'skipped', 'delivered', 'undelivered'));
