-- 006: usage rows partitioned by month, the rollups that reports read,
-- and admin keys.
--
-- The usage rows of version 5 are moved into the partitioned table; the
-- rollups of the settled ones are counted once, by the function file
-- sql/functions/rollup.sql, at the end of this same migration.

ALTER TABLE usage_events RENAME TO usage_events_v5;
ALTER INDEX usage_events_pkey RENAME TO usage_events_v5_pkey;
ALTER INDEX usage_events_request_id_key RENAME TO usage_events_v5_request_id_key;
ALTER INDEX usage_events_project_time_idx RENAME TO usage_events_v5_project_time_idx;
ALTER SEQUENCE usage_events_id_seq RENAME TO usage_events_v5_id_seq;

-- One row per authenticated chat or embeddings request, successful or not
-- (see 005 for the columns), in one partition per calendar month (UTC) of
-- created_at: usage_events_YYYYMM, made ahead of time by
-- mg_usage_partitions (sql/functions/rollup.sql); usage_events_default
-- catches a row of a month that has none yet.
--
-- A request id is unique: the gateway makes it from 96 random bits, and
-- the row of a request is written once, at its created_at (admission, or
-- the refusal), which the key (request_id, created_at) then names.  The
-- statements that look a request up by id give its created_at too, so
-- they read one partition.
CREATE TABLE usage_events (
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    request_id         text NOT NULL,
    project_id         bigint NOT NULL,
    key_id             bigint,
    model              text,
    provider           text,
    endpoint           text NOT NULL CONSTRAINT usage_events_endpoint_check
                       CHECK (endpoint IN ('chat.completions', 'embeddings')),
    stream             boolean NOT NULL DEFAULT false,
    status             integer,
    error_type         text,
    prompt_tokens      integer CONSTRAINT usage_events_prompt_tokens_check
                       CHECK (prompt_tokens >= 0),
    completion_tokens  integer CONSTRAINT usage_events_completion_tokens_check
                       CHECK (completion_tokens >= 0),
    total_tokens       integer CONSTRAINT usage_events_total_tokens_check
                       CHECK (total_tokens >= 0),
    cost               numeric CONSTRAINT usage_events_cost_check CHECK (cost >= 0),
    cost_source        text CONSTRAINT usage_events_cost_source_check
                       CHECK (cost_source IN ('upstream', 'catalog', 'reserved')),
    upstream_id        text,
    latency_ms         integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    reserved           numeric NOT NULL DEFAULT 0 CONSTRAINT usage_events_reserved_check
                       CHECK (reserved >= 0),
    reserved_tokens    integer,
    prompt_estimate    integer,
    prompt_price       numeric,
    completion_price   numeric,
    ttft_ms            integer,
    settled_at         timestamptz DEFAULT now(),
    PRIMARY KEY (created_at, id),
    UNIQUE (request_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX usage_events_project_time_idx ON usage_events (project_id, created_at, id);

-- The partitions: the months of the rows kept, this month and the next
-- two (fillfactor 70: see 005).
DO $$
DECLARE
    m timestamptz;
BEGIN
    FOR m IN SELECT DISTINCT date_trunc('month', created_at, 'UTC') FROM usage_events_v5
             UNION
             SELECT date_trunc('month', now(), 'UTC') + make_interval(months => i)
               FROM generate_series(0, 2) AS i
             ORDER BY 1
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF usage_events
                            FOR VALUES FROM (%L) TO (%L) WITH (fillfactor = 70)',
                       'usage_events_' || to_char(m AT TIME ZONE 'UTC', 'YYYYMM'),
                       m, (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC');
    END LOOP;
END
$$;
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT WITH (fillfactor = 70);

INSERT INTO usage_events (id, request_id, project_id, key_id, model, provider, endpoint,
       stream, status, error_type, prompt_tokens, completion_tokens, total_tokens, cost,
       cost_source, upstream_id, latency_ms, created_at, reserved, reserved_tokens,
       prompt_estimate, prompt_price, completion_price, ttft_ms, settled_at)
OVERRIDING SYSTEM VALUE
SELECT id, request_id, project_id, key_id, model, provider, endpoint, stream, status,
       error_type, prompt_tokens, completion_tokens, total_tokens, cost, cost_source,
       upstream_id, latency_ms, created_at, reserved, reserved_tokens, prompt_estimate,
       prompt_price, completion_price, ttft_ms, settled_at
  FROM usage_events_v5;
SELECT setval(pg_get_serial_sequence('usage_events', 'id'),
              coalesce((SELECT max(id) FROM usage_events_v5), 0) + 1, false);
DROP TABLE usage_events_v5;

-- The rollups: the settled usage rows counted per bucket of time and per
-- (project, key, model, endpoint, status class), changed in the same
-- transaction as the rows they count (settlement, refusals, the reaper,
-- cost adjustments) by mg_rollup_add.  Reports read these, never the
-- usage rows.
--
-- grain is the length of bucket: 'q' a quarter of an hour (so that every
-- local midnight and hour of every time zone in use, +05:30 and +05:45
-- included, is the edge of a bucket), 'h' an hour, 'd' a UTC day, 'm' a
-- UTC calendar month; a report adds and subtracts the fewest buckets that make its
-- period exactly.  project_id 0 (key_id 0) is every project together.
-- key_id 0 is no key, model '' no model, status_class the HTTP status
-- divided by 100.
--
-- A project's 'q' rows count every settled row.  The coarser rows (its
-- 'h', 'd' and 'm' rows, and all of project 0) count only the rows before
-- usage_state.compacted_until: mg_rollup_compact folds the quarters
-- behind that frontier into them, a few times an hour, so settlement
-- writes one row per group instead of six.
--
-- Latency and time to first token are kept as sums, counts and a
-- histogram: l0..l15 (t0..t15) count the requests whose milliseconds
-- fall in bucket i of mg_hist_bounds() (width_bucket of them).
CREATE TABLE usage_rollup (
    project_id         bigint NOT NULL,
    grain              "char" NOT NULL CHECK (grain IN ('q', 'h', 'd', 'm')),
    bucket             timestamptz NOT NULL,
    key_id             bigint NOT NULL,
    model              text NOT NULL,
    endpoint           text NOT NULL,
    status_class       smallint NOT NULL,
    requests           bigint NOT NULL,
    prompt_tokens      bigint NOT NULL,
    completion_tokens  bigint NOT NULL,
    total_tokens       bigint NOT NULL,
    cost               numeric NOT NULL,
    latency_n          bigint NOT NULL,
    latency_ms         bigint NOT NULL,
    ttft_n             bigint NOT NULL,
    ttft_ms            bigint NOT NULL,
    l0 bigint NOT NULL, l1 bigint NOT NULL, l2 bigint NOT NULL, l3 bigint NOT NULL,
    l4 bigint NOT NULL, l5 bigint NOT NULL, l6 bigint NOT NULL, l7 bigint NOT NULL,
    l8 bigint NOT NULL, l9 bigint NOT NULL, l10 bigint NOT NULL, l11 bigint NOT NULL,
    l12 bigint NOT NULL, l13 bigint NOT NULL, l14 bigint NOT NULL, l15 bigint NOT NULL,
    t0 bigint NOT NULL, t1 bigint NOT NULL, t2 bigint NOT NULL, t3 bigint NOT NULL,
    t4 bigint NOT NULL, t5 bigint NOT NULL, t6 bigint NOT NULL, t7 bigint NOT NULL,
    t8 bigint NOT NULL, t9 bigint NOT NULL, t10 bigint NOT NULL, t11 bigint NOT NULL,
    t12 bigint NOT NULL, t13 bigint NOT NULL, t14 bigint NOT NULL, t15 bigint NOT NULL,
    PRIMARY KEY (project_id, grain, bucket, key_id, model, endpoint, status_class)
) WITH (fillfactor = 80);

-- The quarters of all projects, for compaction and the reports' newest
-- quarters.
CREATE INDEX usage_rollup_quarter_idx ON usage_rollup (bucket)
    WHERE grain = 'q' AND project_id <> 0;

-- One row: the rollups still to be counted from the usage rows of an
-- upgrade, the months of usage rows pruned, and the compaction frontier
-- (NULL: nothing compacted yet).
CREATE TABLE usage_state (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    backfill         boolean NOT NULL DEFAULT false,
    pruned_before    timestamptz,
    compacted_until  timestamptz
);
INSERT INTO usage_state (backfill)
SELECT EXISTS (SELECT 1 FROM usage_events WHERE settled_at IS NOT NULL);

-- A change to the rollups: one usage row (requests 1) or a later change
-- of its cost (requests 0), at the time of the request.
CREATE TYPE mg_usage_delta AS (at timestamptz, project_id bigint, key_id bigint,
    model text, endpoint text, status integer, requests integer, prompt_tokens integer,
    completion_tokens integer, total_tokens integer, cost numeric, latency_ms integer,
    ttft_ms integer);

-- Admin keys: read usage of every project, never call a model.  Stored as
-- the SHA-256 of the whole key, like api_keys.
CREATE TABLE admin_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prefix      text NOT NULL,
    key_hash    bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX admin_keys_prefix_idx ON admin_keys (prefix);
