-- longhaul's durable side. Redis holds live jobs; Postgres keeps what must outlive them:
-- who may call the API (tenants, API keys) and the history of finished jobs.

-- tenants: every tenant that has ever held an API key. Written by the admin path
-- (`Archive::ensure_tenant`, called when a key is created); never deleted by longhaul.
CREATE TABLE tenants (
    name       TEXT        PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE tenants IS
    'Tenants that hold API keys. Written by the admin path (Archive::ensure_tenant).';

-- api_keys: one row per issued API key. Only the visible prefix and the SHA-256 of the
-- secret are stored, never the secret. Written by the admin path (create, revoke) and by
-- the API on each authenticated request (last_used_at).
CREATE TABLE api_keys (
    id           UUID        PRIMARY KEY,
    tenant       TEXT        NOT NULL REFERENCES tenants (name),
    prefix       TEXT        NOT NULL,
    key_hash     BYTEA       NOT NULL UNIQUE,
    scopes       TEXT[]      NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
COMMENT ON TABLE api_keys IS
    'Issued API keys: prefix and SHA-256 of the secret only. Written by the admin path and by the API (last_used_at).';

-- Listing a tenant's keys (admin).
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant, created_at);

-- jobs: the archive of jobs that reached a terminal status, one row per job, as the Redis
-- state machine last reported it. Written only by the archiver (`Archive::upsert_jobs`,
-- an idempotent upsert fed from the Redis archive stream); read by the API once a job has
-- left Redis. `kind` and `max_attempts` repeat fields of `spec` so they can be filtered on.
CREATE TABLE jobs (
    id           UUID        PRIMARY KEY,
    tenant       TEXT        NOT NULL,
    kind         TEXT        NOT NULL,
    status       TEXT        NOT NULL,
    attempts     INT         NOT NULL,
    max_attempts INT         NOT NULL,
    spec         JSONB       NOT NULL,
    result       JSONB,
    error        JSONB,
    usage        JSONB,
    cached       BOOLEAN     NOT NULL DEFAULT false,
    created_at   TIMESTAMPTZ NOT NULL,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    archived_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE jobs IS
    'History of finished jobs, one row per job. Written only by the archiver (idempotent upsert from the Redis archive stream).';

-- A tenant's jobs, newest first, with a (created_at, id) keyset cursor.
CREATE INDEX jobs_tenant_created_idx ON jobs (tenant, created_at DESC, id DESC);
-- The same, filtered by status.
CREATE INDEX jobs_tenant_status_created_idx ON jobs (tenant, status, created_at DESC);
