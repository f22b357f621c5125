-- `deliveries_by_pause`, one entry per delivery, repeats the primary key's prefix
-- (`{pause_id}:{approver}:{reminder}`). Every read goes by the key since the version
-- before this one (`tests/tests/api/plans.rs` checks it). PostgreSQL's 0016 drops it too.
--
-- The foreign key from deliveries to their pause stays: SQLite would look a parent's
-- children up through it only when a pause is deleted or its id changes, which nothing
-- does, and a check on insert finds the pause by its primary key.
DROP INDEX deliveries_by_pause;
