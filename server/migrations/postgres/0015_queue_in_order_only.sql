-- A reader that waits for its project's events to be sequenced now waits for every event
-- queued before it asked, whatever the project: the sequencer takes the queue in `id`
-- order across projects, so that is no later. The index by project served only that
-- wait, and every queued event (two per create) wrote an entry in it.
DROP INDEX audit_queue_by_project;
--
-- A server of the version before, during a rolling deploy, still asks by project; its
-- read then scans the queue, which holds only the events of the last few milliseconds.
