-- Only a pause created with an Idempotency-Key needs its key checked for uniqueness.
-- The table's UNIQUE constraint indexed every pause, NULL keys included (a B-tree
-- keeps NULLs), so every create without a key wrote an index entry nothing ever reads.
-- A partial index holds the same promise for the keys there are. A look-up by key
-- (`idempotency_key = $2`) implies the key is not NULL, so it still uses this index, and
-- a racing duplicate still fails its insert with a unique violation, which the create
-- path retries as a replay.
--
-- The new index is built before the constraint goes, in the migration's one transaction,
-- so no moment is left without it; on a large table the build holds writes to `pauses`
-- for its length.
CREATE UNIQUE INDEX pauses_by_idempotency_key ON pauses (project_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE pauses DROP CONSTRAINT pauses_project_id_idempotency_key_key;
