-- Schema version 1: the records table, the fence sequence and the expiry
-- index. See docs/stores-postgres.md for what every column means.

-- Fences come from one sequence per store. CACHE 1 (the default, written
-- out because it matters): with a per-session cache, two sessions would hand
-- out values out of order, and a later claim could get a smaller fence.
CREATE SEQUENCE {fence_seq} AS BIGINT MINVALUE 1 START WITH 1 CACHE 1 NO CYCLE;

CREATE TABLE {records} (
    -- SHA-256 of principal, route and key (idem_core::RecordId).
    id               BYTEA   NOT NULL PRIMARY KEY CHECK (octet_length(id) = 32),
    -- SHA-256 request fingerprint.
    fingerprint      BYTEA   NOT NULL CHECK (octet_length(fingerprint) = 32),
    -- The current (or last) holder's fencing token, from {fence_seq}.
    fence            BIGINT  NOT NULL CHECK (fence > 0),
    state            TEXT    NOT NULL CHECK (state IN ('in_flight', 'completed')),
    -- Times are milliseconds since the Unix epoch, always the caller's
    -- clock (idem_core::Timestamp), never the server's.
    created_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    lease_expires_at BIGINT,
    completed_at     BIGINT,
    -- How often the lease was taken over since the record was created: a
    -- sign of a crashing or hanging holder for operators, and how the claim
    -- statement tells a takeover from a fresh claim in its RETURNING.
    takeovers        INTEGER NOT NULL DEFAULT 0 CHECK (takeovers >= 0),
    -- The stored response (completed records only).
    status           INTEGER CHECK (status BETWEEN 0 AND 65535),
    -- Header names and values, in order, in the binary encoding of codec.rs.
    headers          BYTEA,
    -- The body; NULL when it was too large to keep (body_kept = false). An
    -- empty kept body is an empty BYTEA, never NULL.
    body             BYTEA,
    body_kept        BOOLEAN,
    CONSTRAINT state_fields CHECK (
        (state = 'in_flight'
            AND lease_expires_at IS NOT NULL AND completed_at IS NULL
            AND status IS NULL AND headers IS NULL AND body IS NULL AND body_kept IS NULL)
        OR
        (state = 'completed'
            AND lease_expires_at IS NULL AND completed_at IS NOT NULL
            AND status IS NOT NULL AND headers IS NOT NULL AND body_kept IS NOT NULL
            AND (body IS NOT NULL) = body_kept)
    )
);

-- The sweeper's index: purge reads expired rows in expiry order, a bounded
-- batch at a time.
CREATE INDEX {expires_index} ON {records} (expires_at);

-- The operator's listing of in-flight records, in id order: a partial index,
-- so that a page costs the in-flight records it reads, not a walk past
-- every completed one (which could outlast the statement timeout).
CREATE INDEX {in_flight_index} ON {records} (id) WHERE state = 'in_flight';
