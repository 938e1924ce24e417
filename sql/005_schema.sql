-- modelgate schema: tables, types and indexes.  Functions, and the
-- triggers that call them, are not here: they live in sql/functions/, one
-- file per concern, and `modelgate db migrate` applies them every time,
-- after the numbered files, in the same advisory-locked transaction.
--
-- This file is the state that versions 1 to 5 reached one by one; a
-- database already at version 5 skips it.  New numbered files change the
-- schema from here (006_…); they hold no function bodies.

-- Projects and their limits.  NULL means unlimited.  spend_cap is in USD;
-- cap_period says whether it applies per calendar month (UTC) or to all
-- time.  An empty allowed_models means every model.
CREATE TABLE projects (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE
                    CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    rpm             integer CHECK (rpm > 0),
    tpm             integer CHECK (tpm > 0),
    spend_cap       numeric CHECK (spend_cap >= 0),
    cap_period      text NOT NULL DEFAULT 'month'
                    CHECK (cap_period IN ('month', 'total')),
    allowed_models  text[] NOT NULL DEFAULT '{}'
);

-- Client keys are stored only as the SHA-256 of the whole key; prefix is
-- the public part shown in listings and used to revoke a key.
CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id),
    prefix      text NOT NULL,
    key_hash    bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_prefix_idx ON api_keys (prefix);
CREATE INDEX api_keys_project_idx ON api_keys (project_id);

-- One row per authenticated chat or embeddings request, successful or not.
-- cost is exact (numeric, USD); cost_source says where it came from.
-- Usage rows of admitted requests are written at admission, pending
-- (settled_at NULL, status NULL), with the reservation they hold and the
-- prices they are charged at; settlement or the reaper completes them.
--
-- No foreign keys: checking them made Postgres lock the project and key
-- rows that every request of a project shares (two more row writes and
-- their WAL per admission).  Those rows are never deleted (keys are
-- revoked, projects kept); the trigger mg_keep_usage_refs
-- (sql/functions/admin.sql) refuses a deletion or truncation that would
-- leave a usage row naming nothing.
--
-- fillfactor 70 leaves room on every page for the settled version of a
-- row: settling then rewrites no index entry (a HOT update).
CREATE TABLE usage_events (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id         text NOT NULL UNIQUE,
    project_id         bigint NOT NULL,
    key_id             bigint,
    model              text,
    provider           text,
    endpoint           text NOT NULL
                       CHECK (endpoint IN ('chat.completions', 'embeddings')),
    stream             boolean NOT NULL DEFAULT false,
    status             integer,
    error_type         text,
    prompt_tokens      integer CHECK (prompt_tokens >= 0),
    completion_tokens  integer CHECK (completion_tokens >= 0),
    total_tokens       integer CHECK (total_tokens >= 0),
    cost               numeric CHECK (cost >= 0),
    cost_source        text CHECK (cost_source IN ('upstream', 'catalog', 'reserved')),
    upstream_id        text,
    latency_ms         integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    reserved           numeric NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    reserved_tokens    integer,
    prompt_estimate    integer,
    prompt_price       numeric,
    completion_price   numeric,
    ttft_ms            integer,
    settled_at         timestamptz DEFAULT now()
) WITH (fillfactor = 70);
CREATE INDEX usage_events_project_time_idx ON usage_events (project_id, created_at);

-- One row per project: the hot counters.  spent is the settled cost of the
-- requests admitted since period_start; reserved is the sum of the
-- reservations of requests not settled yet (of any period).  The two token
-- buckets (requests and tokens per minute) hold their level as of
-- level_at; NULL means full.  The counters change only inside the admit,
-- settle and reap functions, by row-level updates under this row's lock,
-- so any number of responders on any number of hosts see one state.
CREATE TABLE project_quota (
    project_id    bigint PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    period_start  timestamptz NOT NULL,
    spent         numeric NOT NULL DEFAULT 0,
    reserved      numeric NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    req_level     double precision,
    tok_level     double precision,
    level_at      timestamptz
);

-- The requests admitted and not settled yet, for the reaper: a small table
-- (a row lives from admission to settlement), so the usage rows need no
-- index on their settled state.
CREATE TABLE reservations (
    request_id  text PRIMARY KEY,
    project_id  bigint NOT NULL,
    created_at  timestamptz NOT NULL
);

-- The model catalog: the upstream's models with exact prices (USD per
-- token; NULL where the upstream gives none) and the OpenAI-style object
-- served at /v1/models.
CREATE TABLE models (
    id                text PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('chat', 'embedding')),
    name              text,
    context_length    integer,
    prompt_price      numeric CHECK (prompt_price >= 0),
    completion_price  numeric CHECK (completion_price >= 0),
    object            jsonb NOT NULL,
    synced_at         timestamptz NOT NULL
);

-- When the catalog was last synced, and which responder claimed the next
-- sync (one row).
CREATE TABLE catalog_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    synced_at   timestamptz,
    claimed_at  timestamptz,
    models      integer NOT NULL DEFAULT 0
);
INSERT INTO catalog_state DEFAULT VALUES;

-- The answer to one admission (mg_admit_batch): i is the request's position
-- in its batch (from 1); outcome is ok, invalid_key, model_not_allowed,
-- model_not_found, spend_cap, tokens_too_many (more than the
-- tokens-per-minute limit), requests or tokens (a rate limit); the rest are
-- what the 429 and the x-ratelimit-* headers tell.
CREATE TYPE mg_admission AS (i integer, outcome text, key_id bigint, project_id bigint,
    project_name text, key_prefix text, reserved numeric, prompt_price numeric,
    completion_price numeric, rpm integer, rpm_remaining integer, rpm_reset_ms bigint,
    tpm integer, tpm_remaining integer, tpm_reset_ms bigint, retry_after_ms bigint,
    spend_cap numeric, spent numeric, need_tokens integer);
