-- Complete many: complete.sql for a batch of completions of distinct ids,
-- in one statement (see complete_many.rs). Every row is written, or not,
-- exactly as complete.sql decides for its one row.
--
-- $1 ids, $2 fences, $3 nows, $4 expires_ats, $5 statuses, $6 headers,
-- $7 bodies (NULL elements when not kept), $8 body_kepts: arrays of one
-- element per completion, sorted by id (so rows are locked in the same
-- order by every batch), ids distinct.
WITH input AS (
    SELECT *
    FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::bigint[], $5::integer[],
                $6::bytea[], $7::bytea[], $8::boolean[])
         WITH ORDINALITY AS i (id, fence, now, expires_at, status, headers, body, body_kept, n)
),
completed AS (
    UPDATE {records} AS r
    SET state            = 'completed',
        completed_at     = i.now,
        expires_at       = i.expires_at,
        lease_expires_at = NULL,
        status           = i.status,
        headers          = i.headers,
        body             = i.body,
        body_kept        = i.body_kept
    FROM input AS i
    WHERE r.id = i.id
      AND r.fence = i.fence
      -- In flight: the state_fields constraint makes this the same as
      -- state = 'in_flight'. Written that way, it would match the in-flight
      -- index's predicate, and the planner would read that whole index
      -- (every record in flight, and dead entries not yet vacuumed) instead
      -- of looking up one key per id.
      AND r.lease_expires_at IS NOT NULL
      -- An expired record is absent, as in complete.sql.
      AND r.expires_at > i.now
    RETURNING r.id, r.fence
)
-- One row per completion, in input order: the fence written, or else the
-- record as the snapshot saw it.
SELECT i.n,
       c.fence AS written_fence,
       cur.fingerprint, cur.fence, cur.state, cur.created_at, cur.expires_at,
       cur.lease_expires_at, cur.completed_at, cur.status, cur.headers, cur.body,
       cur.body_kept
FROM input AS i
LEFT JOIN completed AS c ON c.id = i.id
LEFT JOIN {records} AS cur ON cur.id = i.id AND c.fence IS NULL
ORDER BY i.n
