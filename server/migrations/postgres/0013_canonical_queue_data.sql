-- A queued event's `data` is written in canonical form (RFC 8785), the form its hash
-- covers, so that the sequencer hashes and stores the text as it is instead of parsing
-- it and writing it out twice (a sixth of a server's CPU under load). Rows queued by a
-- server of an earlier version, during a rolling deploy, keep 0: their text is
-- serde_json's, which differs from the canonical form in number spelling and in the
-- order of some names, and the sequencer puts it in canonical form first. (A number,
-- 0 or 1, as every flag of this schema is.)
ALTER TABLE audit_queue ADD COLUMN data_canonical BIGINT NOT NULL DEFAULT 0;
