-- Foreign keys to `projects` on the tables every create writes. Each check of one is a
-- query per inserted row that also locks the project's row (FOR KEY SHARE), and that row
-- is the audit chain's head, which the sequencer updates many times a second: concurrent
-- writes of a project all lock the same row, through a multixact, while it changes
-- under them. Under load these checks were the largest part of the sequencer's batches
-- and a large part of each group of creates (auto_explain with log_triggers; see the
-- README, "Several servers").
--
-- They guard nothing the store does not already guarantee: these rows are written only
-- by the store, for the project whose key made the request (or, for the audit tables,
-- from the queue the store wrote), and projects are never deleted. The hash chain, not a
-- key, is what proves the log: verify reads every row of the project.
--
-- The keys to `pauses` stay (approvers and deliveries name their pause): they lock only
-- the pause the same transaction writes.
ALTER TABLE pauses DROP CONSTRAINT pauses_project_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_project_id_fkey;
ALTER TABLE audit_queue DROP CONSTRAINT audit_queue_project_id_fkey;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_project_id_fkey;
