-- List in flight: up to $2 in-flight records with ids greater than $1, in
-- id order (BYTEA compares bytewise, unsigned, as RecordId orders). The
-- first page passes the empty BYTEA, which sorts before every id. One
-- SELECT is one snapshot, and takes no row locks: claims go on meanwhile.
SELECT id, fingerprint, fence, state, created_at, expires_at, lease_expires_at,
       completed_at, status, headers, body, body_kept
FROM {records}
WHERE state = 'in_flight'
  AND id > $1
ORDER BY id
LIMIT $2
