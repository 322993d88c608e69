-- Complete: a fenced UPDATE, and the record as the snapshot saw it when the
-- update matched nothing, to tell Gone, TakenOver and AlreadyCompleted
-- apart (see write.rs).
--
-- $1 id, $2 fence, $3 now (completed_at), $4 expires_at (now + ttl),
-- $5 status, $6 headers (codec.rs), $7 body (NULL if not kept), $8 body_kept.
WITH completed AS (
    UPDATE {records}
    SET state            = 'completed',
        completed_at     = $3,
        expires_at       = $4,
        lease_expires_at = NULL,
        status           = $5,
        headers          = $6,
        body             = $7,
        body_kept        = $8
    WHERE id = $1
      AND fence = $2
      AND state = 'in_flight'
      -- An expired record is absent: its holder gets Gone, and the record
      -- is not brought back to life.
      AND expires_at > $3
    RETURNING fence
)
SELECT c.fence AS written_fence,
       cur.fingerprint, cur.fence, cur.state, cur.created_at, cur.expires_at,
       cur.lease_expires_at, cur.completed_at, cur.status, cur.headers, cur.body,
       cur.body_kept
FROM (VALUES (1)) AS one (n)
LEFT JOIN completed AS c ON TRUE
LEFT JOIN {records} AS cur ON cur.id = $1 AND c.fence IS NULL
