-- Release: a fenced DELETE of an in-flight record, and the record as the
-- snapshot saw it when the delete matched nothing (see write.rs).
--
-- $1 id, $2 fence.
WITH released AS (
    DELETE FROM {records}
    WHERE id = $1
      AND fence = $2
      AND state = 'in_flight'
    RETURNING fence
)
SELECT c.fence AS written_fence,
       cur.fingerprint, cur.fence, cur.state, cur.created_at, cur.expires_at,
       cur.lease_expires_at, cur.completed_at, cur.status, cur.headers, cur.body,
       cur.body_kept
FROM (VALUES (1)) AS one (n)
LEFT JOIN released AS c ON TRUE
LEFT JOIN {records} AS cur ON cur.id = $1 AND c.fence IS NULL
