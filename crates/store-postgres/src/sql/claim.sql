-- Claim: decide and write in one statement (see claim.rs for how its answer
-- is read, and why it is sometimes run again).
--
-- $1 id, $2 fingerprint, $3 now, $4 lease_expires_at (now + lease),
-- $5 expires_at (now + lease + ttl). All times are the caller's.
WITH cur AS (
    -- The record as this statement's snapshot sees it.
    SELECT fingerprint, fence, state, created_at, expires_at, lease_expires_at,
           completed_at, status, headers, body, body_kept
    FROM {records}
    WHERE id = $1
),
claimed AS (
    INSERT INTO {records} AS r
        (id, fingerprint, fence, state, created_at, expires_at, lease_expires_at, takeovers)
    SELECT $1::bytea, $2::bytea, nextval('{fence_seq}'), 'in_flight',
           $3::bigint, $5::bigint, $4::bigint, 0
    -- Only when the snapshot says "execute" (no record, an expired one, or
    -- a lapsed lease of the same request). Otherwise the answer is Mismatch,
    -- Busy or Replay, read from the snapshot, and the statement writes and
    -- locks nothing: a replay costs no WAL flush.
    WHERE NOT EXISTS (
        SELECT 1 FROM cur
        WHERE cur.expires_at > $3
          AND NOT (cur.fingerprint = $2
                   AND cur.state = 'in_flight'
                   AND cur.lease_expires_at <= $3)
    )
    ON CONFLICT (id) DO UPDATE SET
        fingerprint      = excluded.fingerprint,
        -- Drawn here, after the conflicting row is locked, so the new fence
        -- is larger than the one of the holder it replaces.
        fence            = nextval('{fence_seq}'),
        state            = 'in_flight',
        -- A takeover continues the record; an expired record is replaced.
        created_at       = CASE WHEN r.expires_at <= $3 THEN excluded.created_at
                                ELSE r.created_at END,
        takeovers        = CASE WHEN r.expires_at <= $3 THEN 0
                                ELSE LEAST(r.takeovers, 2147483646) + 1 END,
        expires_at       = excluded.expires_at,
        lease_expires_at = excluded.lease_expires_at,
        completed_at     = NULL,
        status           = NULL,
        headers          = NULL,
        body             = NULL,
        body_kept        = NULL
    -- The decision again, on the newest committed version of the row, under
    -- its lock (idem_core::decide_claim's "execute" rows): an expired record
    -- (any fingerprint) is absent; a live one is taken over only if it is in
    -- flight, its lease has passed, and it is the same request.
    WHERE r.expires_at <= $3
       OR (r.fingerprint = excluded.fingerprint
           AND r.state = 'in_flight'
           AND r.lease_expires_at <= $3)
    RETURNING r.fence, r.takeovers
)
-- When nothing was written, the snapshot's record answers Mismatch, Busy
-- or Replay from the same round trip.
SELECT c.fence     AS claimed_fence,
       c.takeovers AS claimed_takeovers,
       cur.fingerprint, cur.fence, cur.state, cur.created_at, cur.expires_at,
       cur.lease_expires_at, cur.completed_at, cur.status, cur.headers, cur.body,
       cur.body_kept
FROM (VALUES (1)) AS one (n)
LEFT JOIN claimed AS c ON TRUE
LEFT JOIN cur ON c.fence IS NULL
