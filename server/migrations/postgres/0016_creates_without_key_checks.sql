-- The one writer's statement is the serial part of every create: a group of them waits
-- for it. Two things in it did no work any read or guarantee needs.
--
-- The foreign keys from approvers and deliveries to their pause. A create writes the
-- pause, its approvers and all their deliveries (reminders and later tiers included) in
-- one statement, nothing else inserts those rows, and nothing deletes a pause or changes
-- its id. Each key still checked every row again after the statement, with a
-- query of its own that also locked the pause's row (a second write of the row, and a
-- WAL record, per check): 74 µs of the 286 µs PostgreSQL took to run a group of eight
-- creates (EXPLAIN ANALYZE), a quarter of the time.
ALTER TABLE approvers DROP CONSTRAINT approvers_pause_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pause_id_fkey;
--
-- `deliveries_by_pause`, one entry per delivery, repeats the primary key's prefix
-- (`{pause_id}:{approver}:{reminder}`). Every read goes by the key since the version
-- before this one (`tests/tests/api/plans.rs` checks it).
DROP INDEX deliveries_by_pause;
--
-- The version before writes and reads these rows as this one does: without the checks and
-- the index it runs as it did. A version older than that read a pause's notices through
-- the index, and scans the table without it: upgrade from the version before.
