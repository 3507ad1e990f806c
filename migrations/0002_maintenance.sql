-- The scheduler's maintenance tasks (key_expiry, result_retention, metrics_rollup): what they
-- record and the indexes that keep their batches cheap.

-- api_keys.disabled_at: when the scheduler's key_expiry task found the key past expires_at.
-- The key stops working at expires_at anyway; this makes the state visible and starts the
-- retention clock after which the key row is deleted (as for revoked_at).
ALTER TABLE api_keys ADD COLUMN disabled_at TIMESTAMPTZ;

-- result_retention deletes archived jobs by finish time, 1000 rows per statement.
CREATE INDEX jobs_finished_idx ON jobs (finished_at);
-- metrics_rollup finds the jobs archived (or re-archived) since its last run.
CREATE INDEX jobs_archived_idx ON jobs (archived_at);

-- usage_hourly: per tenant, kind and UTC hour of finished_at, what the archived jobs of that
-- hour did. Written only by the metrics_rollup task, which recomputes every hour that gained
-- or changed a job since its last run (an idempotent upsert); read by GET /v1/admin/usage.
-- Kept when result_retention deletes the jobs themselves. Latencies are finished_at -
-- created_at of the hour's succeeded jobs, in seconds (NULL when none succeeded).
CREATE TABLE usage_hourly (
    tenant            TEXT             NOT NULL,
    kind              TEXT             NOT NULL,
    hour              TIMESTAMPTZ      NOT NULL,
    jobs              BIGINT           NOT NULL,
    succeeded         BIGINT           NOT NULL,
    failed            BIGINT           NOT NULL,
    cancelled         BIGINT           NOT NULL,
    attempts          BIGINT           NOT NULL,
    latency_p50_secs  DOUBLE PRECISION,
    latency_p95_secs  DOUBLE PRECISION,
    latency_p99_secs  DOUBLE PRECISION,
    prompt_tokens     BIGINT           NOT NULL,
    completion_tokens BIGINT           NOT NULL,
    total_tokens      BIGINT           NOT NULL,
    cache_hits        BIGINT           NOT NULL,
    updated_at        TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, kind, hour)
);
COMMENT ON TABLE usage_hourly IS
    'Hourly usage per tenant and kind. Written only by the scheduler''s metrics_rollup task (idempotent upsert).';
CREATE INDEX usage_hourly_hour_idx ON usage_hourly (hour);

-- usage_rollup_state: one row, the archived_at up to which metrics_rollup has looked.
-- Written only by metrics_rollup, under a row lock, so two rollups never interleave.
CREATE TABLE usage_rollup_state (
    singleton BOOLEAN     PRIMARY KEY DEFAULT true CHECK (singleton),
    watermark TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE usage_rollup_state IS
    'The archived_at watermark of the metrics_rollup task. Written only by it.';
