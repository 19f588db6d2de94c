-- replayguard idempotency store, schema version 1.
--
-- The store applies this file at start (unless configured WithoutMigrate)
-- inside one transaction holding the advisory lock
-- pg_advisory_xact_lock(hashtextextended('replayguard.schema', 0)), so that
-- gateway instances starting together do not race. Every statement is
-- idempotent; a DBA may also apply it by hand:
--
--     psql "$DSN" -v ON_ERROR_STOP=1 --single-transaction -f schema.sql
--
-- A store configured with another table name applies this file with every
-- occurrence of replayguard_idempotency replaced by that name.

-- One row per schema component; later migrations read version and bring
-- the component up from there.
CREATE TABLE IF NOT EXISTS replayguard_schema_version (
    name       text        PRIMARY KEY,
    version    integer     NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per idempotency key. Deduplication rests on the primary key:
-- a claim is INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE <takeover>.
CREATE TABLE IF NOT EXISTS replayguard_idempotency (
    -- The key scoped by principal, as raw bytes (a scoped key holds a NUL
    -- separator, which text cannot store).
    key         bytea       PRIMARY KEY,
    -- SHA-256 of the request the key was first used with.
    fingerprint bytea       NOT NULL CHECK (octet_length(fingerprint) = 32),
    -- 1 in progress, 2 completed. A released record is deleted.
    state       smallint    NOT NULL CHECK (state IN (1, 2)),
    -- Fencing token of the in-progress holder; NULL once completed.
    token       text,
    -- End of the holder's lease; NULL once completed.
    lease_until timestamptz,
    -- After this instant the record is dead: any request may replace it and
    -- the janitor deletes it.
    expires_at  timestamptz NOT NULL,
    -- The stored response, set once completed.
    status      integer,
    -- HTTP header in a lossless binary encoding (see below).
    headers     bytea,
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE replayguard_idempotency IS
    'replayguard idempotency records, one per scoped Idempotency-Key';
COMMENT ON COLUMN replayguard_idempotency.headers IS
    'format byte 0x01, then per header name in ascending order: uvarint length, name, uvarint value count, then per value: uvarint length, value';

-- The janitor deletes expired rows in batches, oldest first, through this
-- index.
CREATE INDEX IF NOT EXISTS replayguard_idempotency_expires_at_idx
    ON replayguard_idempotency (expires_at);

INSERT INTO replayguard_schema_version (name, version)
VALUES ('replayguard_idempotency', 1)
ON CONFLICT (name) DO NOTHING;
