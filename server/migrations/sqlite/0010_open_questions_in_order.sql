-- The questions open to a phone number are read newest first, and for one pause in
-- approver order (`ORDER BY pause_id DESC, approver`, then the first one or two). With
-- the index in that order the read stops at the first rows that are still open; without
-- `approver` in it, every open question of the number was read and sorted on each SMS
-- sent (on PostgreSQL, 2.4 ms with 1,500 open to one number, against 0.14 ms).
DROP INDEX approvers_open_by_recipient;
CREATE INDEX approvers_open_by_recipient ON approvers (recipient, channel, pause_id DESC, approver)
    WHERE vote_at IS NULL;
