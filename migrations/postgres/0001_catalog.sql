-- etcd-audit catalog, PostgreSQL schema version 1 (src/catalog/postgres.rs).
-- Applied once, in a transaction, by the first sweep that connects; the
-- version is recorded in etcd_audit_migrations. Never edit a released
-- migration: add the next file.

-- Content SHA-256 (hex) -> the backup record (the JSON the redb file holds).
CREATE TABLE etcd_audit_backups (
    sha256 text PRIMARY KEY,
    record jsonb NOT NULL
);

-- Source (path or URL) -> its last sighting: the content it held, ETag or
-- mtime, keyring and tool version (what incremental sweeps compare).
CREATE TABLE etcd_audit_sources (
    source text PRIMARY KEY,
    sighting jsonb NOT NULL
);

-- Objects being audited now: one live claim per source; an expired claim
-- belongs to a worker that died, and is taken over by the next.
CREATE TABLE etcd_audit_claims (
    source text PRIMARY KEY,
    worker text NOT NULL,
    claimed_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX etcd_audit_claims_worker ON etcd_audit_claims (worker);

-- Every recorded audit, appended: which worker audited which source (and
-- content), when it claimed it and when it recorded it.
CREATE TABLE etcd_audit_audits (
    id bigserial PRIMARY KEY,
    source text NOT NULL,
    sha256 text NOT NULL,
    worker text NOT NULL,
    claimed_at timestamptz,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX etcd_audit_audits_source ON etcd_audit_audits (source);
