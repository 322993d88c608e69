-- Claim many: claim.sql for a batch of claims of distinct ids, in one
-- statement (see claim_many.rs). Every row is decided exactly as claim.sql
-- decides its one row; only where claim.sql reads $3 (now) for the row, this
-- reads that row's own `now`, which the conflict branch finds in
-- excluded.created_at (an inserted row's created_at is its now).
--
-- $1 ids, $2 fingerprints, $3 nows, $4 lease_expires_ats, $5 expires_ats:
-- arrays of one element per claim, sorted by id (the order rows are locked
-- in, the same in every batch, so two batches never deadlock), ids
-- distinct (ON CONFLICT DO UPDATE cannot touch one row twice).
WITH input AS (
    SELECT *
    FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[])
         WITH ORDINALITY AS i (id, fingerprint, now, lease_expires_at, expires_at, n)
),
cur AS (
    -- The records as this statement's snapshot sees them.
    SELECT i.n, r.fingerprint, r.fence, r.state, r.created_at, r.expires_at,
           r.lease_expires_at, r.completed_at, r.status, r.headers, r.body, r.body_kept
    FROM input AS i
    JOIN {records} AS r ON r.id = i.id
),
claimed AS (
    INSERT INTO {records} AS r
        (id, fingerprint, fence, state, created_at, expires_at, lease_expires_at, takeovers)
    SELECT i.id, i.fingerprint, nextval('{fence_seq}'), 'in_flight',
           i.now, i.expires_at, i.lease_expires_at, 0
    FROM input AS i
    -- Only the rows whose snapshot says "execute", as in claim.sql.
    WHERE NOT EXISTS (
        SELECT 1 FROM cur
        WHERE cur.n = i.n
          AND cur.expires_at > i.now
          AND NOT (cur.fingerprint = i.fingerprint
                   AND cur.state = 'in_flight'
                   AND cur.lease_expires_at <= i.now)
    )
    ORDER BY i.id
    ON CONFLICT (id) DO UPDATE SET
        fingerprint      = excluded.fingerprint,
        fence            = nextval('{fence_seq}'),
        state            = 'in_flight',
        created_at       = CASE WHEN r.expires_at <= excluded.created_at THEN excluded.created_at
                                ELSE r.created_at END,
        takeovers        = CASE WHEN r.expires_at <= excluded.created_at THEN 0
                                ELSE LEAST(r.takeovers, 2147483646) + 1 END,
        expires_at       = excluded.expires_at,
        lease_expires_at = excluded.lease_expires_at,
        completed_at     = NULL,
        status           = NULL,
        headers          = NULL,
        body             = NULL,
        body_kept        = NULL
    -- claim.sql's decision under the row's lock, with the row's own now.
    WHERE r.expires_at <= excluded.created_at
       OR (r.fingerprint = excluded.fingerprint
           AND r.state = 'in_flight'
           AND r.lease_expires_at <= excluded.created_at)
    RETURNING r.id, r.fence, r.takeovers
)
-- One row per claim, in input order (n counts from 1): the fence written,
-- or else the snapshot's record.
SELECT i.n,
       c.fence     AS claimed_fence,
       c.takeovers AS claimed_takeovers,
       cur.fingerprint, cur.fence, cur.state, cur.created_at, cur.expires_at,
       cur.lease_expires_at, cur.completed_at, cur.status, cur.headers, cur.body,
       cur.body_kept
FROM input AS i
LEFT JOIN claimed AS c ON c.id = i.id
LEFT JOIN cur ON cur.n = i.n AND c.fence IS NULL
ORDER BY i.n
