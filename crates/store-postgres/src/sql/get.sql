-- Get: one record, expired or not. $1 id.
SELECT fingerprint, fence, state, created_at, expires_at, lease_expires_at,
       completed_at, status, headers, body, body_kept
FROM {records}
WHERE id = $1
