-- The schema version table: one row per migration applied, so that a later
-- release can tell what it finds and migrate it. Created before any
-- migration runs, under the migration's advisory lock.
CREATE TABLE IF NOT EXISTS {versions} (
    version     INTEGER     PRIMARY KEY CHECK (version > 0),
    description TEXT        NOT NULL,
    -- Informational only: when the migration ran, by the server's clock.
    -- No record logic ever reads the server's clock.
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
