-- Purge: delete at most $2 records that expired at or before $1, oldest
-- first.
--
-- FOR UPDATE SKIP LOCKED: rows another sweeper (or a claim) holds are
-- skipped, not waited for, so several gateways sweeping at once each take
-- their own batch and never queue behind one another or behind claims.
WITH doomed AS (
    SELECT id
    FROM {records}
    WHERE expires_at <= $1
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {records} AS r
USING doomed
WHERE r.id = doomed.id
  -- The lock re-read the row; a claim that re-created it since is kept.
  AND r.expires_at <= $1
