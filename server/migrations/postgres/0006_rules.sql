-- Remembered approvals: an approver answered "Allow for 1 hour", and the same call (the
-- same tool, input and folder, compared by `match_key`) is allowed without asking until
-- `expires_at`, unless revoked. One rule per decision at most.
CREATE TABLE approval_rules (
    id          TEXT COLLATE "C" PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    pause_id    TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES pauses (id),
    tool_name   TEXT NOT NULL,
    match_key   TEXT NOT NULL,
    -- What the approver was asked: the rule is never wider than this.
    question    TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX approval_rules_by_match ON approval_rules (project_id, match_key, expires_at);
CREATE INDEX approval_rules_by_project ON approval_rules (project_id, id);
