-- An index for every documented filter and order, so that no list or audit query costs
-- more as the data grows (each is checked against its query plan in the tests).

-- GET /v1/pause?channel=… (status has pauses_by_project_status; since and until are ranges
-- of ids, which carry the creation time).
CREATE INDEX pauses_by_project_channel ON pauses (project_id, channel, id);

-- GET /v1/audit?actor=… and ?since=&until= (pause_id and event have theirs).
CREATE INDEX audit_events_by_actor ON audit_events (project_id, actor, seq);
CREATE INDEX audit_events_by_time ON audit_events (project_id, occurred_at);
