-- modelgate schema, version 1: projects, their API keys, and one usage row
-- per request.  Applied once by `modelgate db migrate`, inside a transaction.

CREATE TABLE projects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE
                CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
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
CREATE TABLE usage_events (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id         text NOT NULL UNIQUE,
    project_id         bigint NOT NULL REFERENCES projects (id),
    key_id             bigint REFERENCES api_keys (id),
    model              text,
    provider           text,
    endpoint           text NOT NULL
                       CHECK (endpoint IN ('chat.completions', 'embeddings')),
    stream             boolean NOT NULL DEFAULT false,
    status             integer NOT NULL,
    error_type         text,
    prompt_tokens      integer CHECK (prompt_tokens >= 0),
    completion_tokens  integer CHECK (completion_tokens >= 0),
    total_tokens       integer CHECK (total_tokens >= 0),
    cost               numeric CHECK (cost >= 0),
    cost_source        text CHECK (cost_source IN ('upstream', 'catalog', 'reserved')),
    upstream_id        text,
    latency_ms         integer,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_events_project_time_idx ON usage_events (project_id, created_at);

-- Key hash -> key and project, for keys that are not revoked.
CREATE FUNCTION mg_authenticate(p_key_hash bytea)
RETURNS TABLE (key_id bigint, project_id bigint, project_name text, key_prefix text)
LANGUAGE sql STABLE AS $$
    SELECT k.id, k.project_id, p.name, k.prefix
      FROM api_keys k JOIN projects p ON p.id = k.project_id
     WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
$$;

-- Records how a request ended.  A request id is recorded once: a repeated
-- call with the same id changes nothing and returns NULL.
CREATE FUNCTION mg_record_usage(
    p_request_id text, p_project_id bigint, p_key_id bigint, p_model text,
    p_provider text, p_endpoint text, p_stream boolean, p_status integer,
    p_error_type text, p_prompt_tokens integer, p_completion_tokens integer,
    p_total_tokens integer, p_cost numeric, p_cost_source text,
    p_upstream_id text, p_latency_ms integer)
RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO usage_events (request_id, project_id, key_id, model, provider,
           endpoint, stream, status, error_type, prompt_tokens,
           completion_tokens, total_tokens, cost, cost_source, upstream_id,
           latency_ms)
    VALUES (p_request_id, p_project_id, p_key_id, p_model, p_provider,
           p_endpoint, p_stream, p_status, p_error_type, p_prompt_tokens,
           p_completion_tokens, p_total_tokens, p_cost, p_cost_source,
           p_upstream_id, p_latency_ms)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING id
$$;
