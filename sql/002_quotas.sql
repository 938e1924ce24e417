-- modelgate schema, version 2: per-project limits and the state that
-- enforces them, admission and settlement of requests, the reaper, and the
-- model catalog.
--
-- How a request is accounted (see README, "Limits and spend caps"):
--   mg_admit   one statement, one transaction: key -> project, model
--              checks, rate limits and the spend reservation, all under the
--              lock of the project's project_quota row; inserts the request's
--              usage row as pending (settled_at IS NULL) holding its
--              reservation.
--   mg_settle  one statement, one transaction: completes the pending row
--              with the actual tokens and cost, releases the reservation and
--              adds the cost to the period's spend.
--   mg_reap    settles pending rows older than a grace period (their
--              responder died) at their reserved amount.
-- The counters change only inside these functions, by row-level updates
-- under the row lock, so any number of responders on any number of hosts
-- see one consistent state.

-- Limits.  NULL means unlimited.  spend_cap is in USD; cap_period says
-- whether it applies per calendar month (UTC) or to all time.  An empty
-- allowed_models means every model.
ALTER TABLE projects
    ADD COLUMN rpm            integer CHECK (rpm > 0),
    ADD COLUMN tpm            integer CHECK (tpm > 0),
    ADD COLUMN spend_cap      numeric CHECK (spend_cap >= 0),
    ADD COLUMN cap_period     text NOT NULL DEFAULT 'month'
                              CHECK (cap_period IN ('month', 'total')),
    ADD COLUMN allowed_models text[] NOT NULL DEFAULT '{}';

-- The start of the spend period that contains p_now.
CREATE FUNCTION mg_period_start(p_period text, p_now timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE p_period
           WHEN 'month' THEN date_trunc('month', p_now AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           ELSE timestamptz '1970-01-01 00:00:00+00' END
$$;

-- One row per project: the hot counters.  spent is the settled cost of the
-- requests admitted since period_start; reserved is the sum of the
-- reservations of requests not settled yet (of any period).  The two token
-- buckets (requests and tokens per minute) hold their level as of
-- level_at; NULL means full.
CREATE TABLE project_quota (
    project_id    bigint PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    period_start  timestamptz NOT NULL,
    spent         numeric NOT NULL DEFAULT 0,
    reserved      numeric NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    req_level     double precision,
    tok_level     double precision,
    level_at      timestamptz
);

INSERT INTO project_quota (project_id, period_start, spent)
SELECT p.id, mg_period_start(p.cap_period, now()),
       coalesce((SELECT sum(u.cost) FROM usage_events u
                  WHERE u.project_id = p.id
                    AND u.created_at >= mg_period_start(p.cap_period, now())), 0)
  FROM projects p;

CREATE FUNCTION mg_project_quota_row() RETURNS trigger
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    INSERT INTO project_quota (project_id, period_start)
    VALUES (NEW.id, mg_period_start(NEW.cap_period, now()));
    RETURN NEW;
END
$$;

CREATE TRIGGER projects_quota_row AFTER INSERT ON projects
    FOR EACH ROW EXECUTE FUNCTION mg_project_quota_row();

-- Changes a project's spend period: the period starts again where the new
-- kind of period starts, and its spend is recomputed from the usage rows.
CREATE FUNCTION mg_set_period(p_project_id bigint, p_period text)
RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_start timestamptz := mg_period_start(p_period, now());
BEGIN
    UPDATE projects SET cap_period = p_period WHERE id = p_project_id;
    UPDATE project_quota q
       SET period_start = v_start,
           spent = coalesce((SELECT sum(u.cost) FROM usage_events u
                              WHERE u.project_id = p_project_id
                                AND u.settled_at IS NOT NULL
                                AND u.created_at >= v_start), 0)
     WHERE q.project_id = p_project_id;
END
$$;

-- Usage rows of admitted requests are written at admission, pending
-- (settled_at NULL, status NULL), with the reservation they hold and the
-- prices they are charged at; mg_settle or mg_reap completes them.
ALTER TABLE usage_events
    ALTER COLUMN status DROP NOT NULL,
    ADD COLUMN reserved          numeric NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    ADD COLUMN reserved_tokens   integer,
    ADD COLUMN prompt_estimate   integer,
    ADD COLUMN prompt_price      numeric,
    ADD COLUMN completion_price  numeric,
    ADD COLUMN ttft_ms           integer,
    ADD COLUMN settled_at        timestamptz DEFAULT now();
UPDATE usage_events SET settled_at = created_at;
-- Room on every page for the settled version of a row: settling then
-- rewrites no index entry (a HOT update), as no indexed column changes.
ALTER TABLE usage_events SET (fillfactor = 70);

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

CREATE TABLE catalog_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    synced_at   timestamptz,
    claimed_at  timestamptz,
    models      integer NOT NULL DEFAULT 0
);
INSERT INTO catalog_state DEFAULT VALUES;

-- Replaces the catalog with p_models, a JSON array of
-- {id, kind, name, context_length, prompt_price, completion_price, object}
-- (prices as decimal strings or null).  Returns the number of models.
CREATE FUNCTION mg_catalog_replace(p_models jsonb)
RETURNS integer
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_at timestamptz := clock_timestamp();
    v_n integer;
BEGIN
    IF jsonb_typeof(p_models) IS DISTINCT FROM 'array' OR jsonb_array_length(p_models) = 0 THEN
        RAISE EXCEPTION 'the model list is empty';
    END IF;
    INSERT INTO models AS m (id, kind, name, context_length, prompt_price,
                             completion_price, object, synced_at)
    SELECT DISTINCT ON (e->>'id')
           e->>'id', e->>'kind', e->>'name', (e->>'context_length')::integer,
           (e->>'prompt_price')::numeric, (e->>'completion_price')::numeric,
           e->'object', v_at
      FROM jsonb_array_elements(p_models) e
     WHERE e->>'id' IS NOT NULL
     ORDER BY e->>'id'
    ON CONFLICT (id) DO UPDATE
       SET kind = EXCLUDED.kind, name = EXCLUDED.name,
           context_length = EXCLUDED.context_length,
           prompt_price = EXCLUDED.prompt_price,
           completion_price = EXCLUDED.completion_price,
           object = EXCLUDED.object, synced_at = EXCLUDED.synced_at;
    DELETE FROM models WHERE synced_at < v_at;
    SELECT count(*) INTO v_n FROM models;
    UPDATE catalog_state SET synced_at = v_at, claimed_at = NULL, models = v_n;
    RETURN v_n;
END
$$;

-- A responder asks whether it should refresh the catalog now: true for one
-- caller when the last sync is older than p_interval seconds (and nobody
-- else claimed the refresh in the last p_interval seconds or 5 minutes).
CREATE FUNCTION mg_catalog_claim(p_interval integer)
RETURNS boolean
LANGUAGE sql AS $$
    WITH c AS (
        UPDATE catalog_state SET claimed_at = clock_timestamp()
         WHERE (synced_at IS NULL
                OR synced_at < clock_timestamp() - make_interval(secs => p_interval))
           AND (claimed_at IS NULL
                OR claimed_at < clock_timestamp() - make_interval(secs => least(p_interval, 300)))
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM c)
$$;

-- The /v1/models list for a project: NULL when the catalog is empty (the
-- responder then asks the upstream), and the project's allowed models as
-- a JSON array (empty: all).
CREATE FUNCTION mg_model_list(p_project_id bigint)
RETURNS TABLE (list text, allowed text)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM models) THEN NULL
           ELSE json_build_object('object', 'list', 'data',
                coalesce((SELECT json_agg(m.object ORDER BY m.id) FROM models m
                           WHERE cardinality(p.allowed_models) = 0
                              OR m.id = ANY (p.allowed_models)), '[]'::json))::text
           END,
           array_to_json(p.allowed_models)::text
      FROM projects p WHERE p.id = p_project_id
$$;

-- Admission of one request, in one transaction.
--   p_prompt_estimate  the prompt's size in tokens, estimated from above
--   p_max_output       the client's max_tokens / max_completion_tokens
--                      (NULL: p_default_output is reserved)
--   p_fallback_*       prices (USD per token) for models the catalog does
--                      not price
--   p_now              the clock (NULL: the database's); tests pass one
-- outcome is one of: ok, invalid_key, model_not_allowed, model_not_found,
-- spend_cap, requests, tokens, tokens_too_many.  reserved is the request's
-- maximum cost (reserved when admitted).  The rate-limit columns
-- describe the project's buckets after the decision (NULL: no limit);
-- retry_after_ms says when a refused request could pass (NULL: waiting
-- does not help within this period).
CREATE FUNCTION mg_admit(
    p_key_hash bytea, p_request_id text, p_model text, p_endpoint text,
    p_stream boolean, p_prompt_estimate integer, p_max_output integer,
    p_default_output integer, p_fallback_prompt numeric,
    p_fallback_completion numeric, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (outcome text, key_id bigint, project_id bigint,
               project_name text, key_prefix text, reserved numeric,
               prompt_price numeric, completion_price numeric,
               rpm integer, rpm_remaining integer, rpm_reset_ms bigint,
               tpm integer, tpm_remaining integer, tpm_reset_ms bigint,
               retry_after_ms bigint, spend_cap numeric, spent numeric,
               need_tokens integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now     timestamptz := coalesce(p_now, clock_timestamp());
    k         record;
    q         record;
    v_ctx     integer;
    v_out     integer;
    v_cost    numeric;
    v_start   timestamptz;
    v_spent   numeric;
    v_elapsed double precision;
    v_req     double precision;
    v_tok     double precision;
BEGIN
    SELECT ak.id AS kid, ak.prefix, p.id AS pid, p.name, p.rpm AS p_rpm,
           p.tpm AS p_tpm, p.spend_cap AS cap, p.cap_period, p.allowed_models
      INTO k
      FROM api_keys ak JOIN projects p ON p.id = ak.project_id
     WHERE ak.key_hash = p_key_hash AND ak.revoked_at IS NULL;
    IF NOT FOUND THEN
        outcome := 'invalid_key';
        RETURN NEXT;
        RETURN;
    END IF;
    key_id := k.kid;
    project_id := k.pid;
    project_name := k.name;
    key_prefix := k.prefix;
    rpm := k.p_rpm;
    tpm := k.p_tpm;
    spend_cap := k.cap;

    IF cardinality(k.allowed_models) > 0 AND NOT (p_model = ANY (k.allowed_models)) THEN
        outcome := 'model_not_allowed';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT m.prompt_price, m.completion_price, m.context_length
      INTO prompt_price, completion_price, v_ctx
      FROM models m WHERE m.id = p_model;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM models) THEN
        outcome := 'model_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    prompt_price := coalesce(prompt_price, p_fallback_prompt);
    completion_price := coalesce(completion_price, p_fallback_completion);
    v_out := coalesce(p_max_output, p_default_output);
    IF v_ctx IS NOT NULL AND v_out > v_ctx THEN
        v_out := v_ctx;   -- no model writes more than its context
    END IF;
    need_tokens := p_prompt_estimate + v_out;
    v_cost := p_prompt_estimate * prompt_price + v_out * completion_price;
    reserved := v_cost;

    SELECT * INTO q FROM project_quota pq WHERE pq.project_id = k.pid FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO project_quota (project_id, period_start)
        VALUES (k.pid, mg_period_start(k.cap_period, v_now))
        ON CONFLICT DO NOTHING;
        SELECT * INTO q FROM project_quota pq WHERE pq.project_id = k.pid FOR UPDATE;
    END IF;

    v_start := mg_period_start(k.cap_period, v_now);
    IF v_start > q.period_start THEN
        v_spent := 0;          -- a new period has begun
    ELSE
        v_start := q.period_start;
        v_spent := q.spent;
    END IF;
    spent := v_spent;

    v_elapsed := greatest(coalesce(extract(epoch FROM v_now - q.level_at), 0), 0);
    IF k.p_rpm IS NOT NULL THEN
        v_req := least(k.p_rpm, coalesce(q.req_level, k.p_rpm) + v_elapsed * k.p_rpm / 60.0);
    END IF;
    IF k.p_tpm IS NOT NULL THEN
        v_tok := least(k.p_tpm, coalesce(q.tok_level, k.p_tpm) + v_elapsed * k.p_tpm / 60.0);
    END IF;

    IF k.cap IS NOT NULL AND v_spent + q.reserved + v_cost > k.cap THEN
        outcome := 'spend_cap';
        IF k.cap_period = 'month' THEN
            retry_after_ms := ceil(1000 * extract(epoch FROM
                (v_start AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC' - v_now));
        END IF;
    ELSIF k.p_tpm IS NOT NULL AND need_tokens > k.p_tpm THEN
        outcome := 'tokens_too_many';   -- waiting would not help
    ELSIF k.p_rpm IS NOT NULL AND v_req < 1 THEN
        outcome := 'requests';
        retry_after_ms := ceil((1 - v_req) * 60000.0 / k.p_rpm);
    ELSIF k.p_tpm IS NOT NULL AND v_tok < need_tokens THEN
        outcome := 'tokens';
        retry_after_ms := ceil((need_tokens - v_tok) * 60000.0 / k.p_tpm);
    ELSE
        outcome := 'ok';
        v_req := v_req - 1;
        v_tok := v_tok - need_tokens;
        UPDATE project_quota pq
           SET period_start = v_start, spent = v_spent,
               reserved = pq.reserved + v_cost,
               req_level = v_req, tok_level = v_tok,
               level_at = greatest(v_now, coalesce(pq.level_at, v_now))
         WHERE pq.project_id = k.pid;
        INSERT INTO usage_events (request_id, project_id, key_id, model, endpoint,
               stream, status, reserved, reserved_tokens, prompt_estimate,
               prompt_price, completion_price, created_at, settled_at)
        VALUES (p_request_id, k.pid, k.kid, p_model, p_endpoint, p_stream, NULL,
               v_cost, need_tokens, p_prompt_estimate, prompt_price,
               completion_price, v_now, NULL);
        INSERT INTO reservations (request_id, project_id, created_at)
        VALUES (p_request_id, k.pid, v_now);
    END IF;

    IF k.p_rpm IS NOT NULL THEN
        rpm_remaining := greatest(floor(v_req), 0);
        rpm_reset_ms := ceil((k.p_rpm - v_req) * 60000.0 / k.p_rpm);
    END IF;
    IF k.p_tpm IS NOT NULL THEN
        tpm_remaining := greatest(floor(v_tok), 0);
        tpm_reset_ms := ceil((k.p_tpm - v_tok) * 60000.0 / k.p_tpm);
    END IF;
    RETURN NEXT;
END
$$;

-- Settles an admitted request: completes its pending usage row, releases
-- its reservation and charges its cost to the period it was admitted in.
-- The cost is p_cost when the upstream reported one ('upstream'); else,
-- when the upstream did work (p_billable), tokens at the row's prices
-- ('catalog'; the prompt estimate stands in for unknown prompt tokens);
-- else nothing.  Tokens the request reserved but did not use go back to
-- the project's tokens-per-minute bucket (all of them when the upstream
-- did no work).  Returns false when the row was already settled (by the
-- reaper), and then changes nothing.
CREATE FUNCTION mg_settle(
    p_request_id text, p_status integer, p_error_type text,
    p_prompt_tokens integer, p_completion_tokens integer,
    p_total_tokens integer, p_cost numeric, p_billable boolean,
    p_upstream_id text, p_provider text, p_latency_ms integer,
    p_ttft_ms integer)
RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r record;
BEGIN
    -- committed asynchronously: a settlement lost in a Postgres crash
    -- leaves its request pending, and the reaper charges the reservation
    PERFORM set_config('synchronous_commit', 'off', true);
    DELETE FROM reservations WHERE request_id = p_request_id;
    UPDATE usage_events u
       SET status = p_status, error_type = p_error_type,
           prompt_tokens = p_prompt_tokens,
           completion_tokens = p_completion_tokens,
           total_tokens = p_total_tokens,
           cost = CASE WHEN p_cost IS NOT NULL THEN p_cost
                       WHEN p_billable THEN
                            coalesce(p_prompt_tokens, u.prompt_estimate) * u.prompt_price
                            + coalesce(p_completion_tokens, 0) * u.completion_price
                       ELSE 0 END,
           cost_source = CASE WHEN p_cost IS NOT NULL THEN 'upstream'
                              WHEN p_billable THEN 'catalog' END,
           upstream_id = p_upstream_id, provider = p_provider,
           latency_ms = p_latency_ms, ttft_ms = p_ttft_ms,
           settled_at = clock_timestamp()
     WHERE u.request_id = p_request_id AND u.settled_at IS NULL
    RETURNING u.project_id, u.reserved, u.reserved_tokens, u.created_at, u.cost,
              CASE WHEN p_billable
                   THEN coalesce(u.total_tokens, u.prompt_tokens + u.completion_tokens)
                   ELSE 0 END AS used
      INTO r;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE project_quota q
       SET reserved = q.reserved - r.reserved,
           spent = q.spent + CASE WHEN r.created_at >= q.period_start THEN r.cost ELSE 0 END,
           tok_level = CASE WHEN q.tok_level IS NULL OR p.tpm IS NULL THEN q.tok_level
                            ELSE least(p.tpm, q.tok_level
                                 + greatest(r.reserved_tokens - coalesce(r.used, r.reserved_tokens), 0))
                       END
      FROM projects p
     WHERE q.project_id = r.project_id AND p.id = q.project_id;
    RETURN true;
END
$$;

-- Settles, at their reserved amount, the pending rows admitted more than
-- p_grace seconds before p_now (NULL: the database's clock): their
-- responder died.  Safe to run from many places at once.  Returns the
-- number of rows settled.
CREATE FUNCTION mg_reap(p_grace integer, p_now timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
    v_n   integer := 0;
    c     record;
    r     record;
BEGIN
    FOR c IN SELECT rs.request_id FROM reservations rs
              WHERE rs.created_at < v_now - make_interval(secs => p_grace)
              ORDER BY rs.project_id, rs.created_at
              LIMIT 1000
              FOR UPDATE SKIP LOCKED
    LOOP
        DELETE FROM reservations WHERE request_id = c.request_id;
        UPDATE usage_events u
           SET status = 502, error_type = 'reaped', cost = u.reserved,
               cost_source = 'reserved', settled_at = v_now
         WHERE u.request_id = c.request_id AND u.settled_at IS NULL
        RETURNING u.project_id, u.reserved, u.created_at INTO r;
        CONTINUE WHEN NOT FOUND;
        UPDATE project_quota q
           SET reserved = q.reserved - r.reserved,
               spent = q.spent + CASE WHEN r.created_at >= q.period_start THEN r.reserved ELSE 0 END
         WHERE q.project_id = r.project_id;
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;
