-- Settlement: completes a pending usage row with the actual tokens and
-- cost, releases its reservation and adds the cost to the spend of the
-- period it was admitted in, one statement per batch; and the usage row of
-- a request that was never admitted.
--
-- Money rules: what a request costs is the upstream's cost when the
-- answer carried one; else, when the upstream did work, its tokens at the
-- prices it was admitted at; else nothing.  The cost counts in the period
-- the request was admitted in; a request settled after the reaper charged
-- it changes nothing.

-- mg_settle_batch returned only how many it settled before it returned
-- what it charged: a function's result type cannot be replaced, so that
-- one is dropped (once: this one is left as it is).  Responders of an
-- earlier release cannot settle once it is gone: restart them after the
-- migration.
DO $$
BEGIN
    IF (SELECT p.prorettype FROM pg_proc p
         WHERE p.oid = to_regprocedure('mg_settle_batch(jsonb)')) = 'integer'::regtype THEN
        DROP FUNCTION mg_settle_batch(jsonb);
    END IF;
END
$$;

-- Settles a batch: p_rows is a JSON array of
-- {"id", "st": status, "et": error type, "pt", "ct", "tt": tokens,
--  "c": cost (decimal text) or null, "b": billable, "u": upstream id,
--  "pv": provider, "l": latency ms, "f": time to first token ms,
--  "r": look the generation up even though the answer carried a cost (an
--  aborted or drained stream, reconcile.verify = "all"),
--  "up": the upstream that served it, "tr": its upstream calls (see
--  014_upstreams.sql; absent when its one call served it), "sm": the
--  model that served, "pp", "cp": that upstream's prices where
--  upstream_models has none ("g": those win; absent when the request
--  could make no other call, and the admission's prices are its),
--  "nr": its generations are not looked up (not the reconciled account)}.
-- With "up", tokens are charged at the prices of the upstream and model
-- that served (a fallback may be cheaper than the reservation's).
-- Each completes its pending usage row, releases its reservation and
-- charges its cost to the period it was admitted in.  The cost is "c" when
-- the upstream reported one ('upstream'); else, when the upstream did work
-- ("b"), tokens at the row's prices ('catalog'; the prompt estimate stands
-- in for unknown prompt tokens); else nothing.  Tokens reserved but not
-- used go back to the project's tokens-per-minute bucket (all of them when
-- the upstream did no work).  Returns how many were settled (settled), and
-- the request ids (ids) and what each was charged (costs, in the same
-- order) of those rows, for the responders' metrics: a row settled already
-- (by the reaper) is left as it is, and is not among them.
CREATE OR REPLACE FUNCTION mg_settle_batch(p_rows jsonb, OUT settled integer,
    OUT ids text[], OUT costs numeric[])
LANGUAGE plpgsql
SET enable_seqscan = off   -- see mg_admit_batch
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_ids  text[];
    v_ats  timestamptz[];
    v_lo   timestamptz;
    v_hi   timestamptz;
    v_sync text;
    -- the rows settled here
    a_pid  bigint[];
    a_res  numeric[];
    a_rtok integer[];
    a_at   timestamptz[];
    a_used integer[];
BEGIN
    -- committed asynchronously: a settlement lost in a Postgres crash
    -- leaves its request pending, and the reaper charges the reservation.
    -- The reservations name the rows' partitions (created_at).  (Each
    -- statement of this function costs a round of the executor: there are
    -- as few as the lock order allows.)
    WITH x AS (
        SELECT x.id FROM jsonb_to_recordset(p_rows) AS x(id text)
    ), d AS (
        DELETE FROM reservations rs USING x
         WHERE rs.request_id = x.id
        RETURNING rs.request_id, rs.created_at
    )
    SELECT array_agg(d.request_id), array_agg(d.created_at), min(d.created_at),
           max(d.created_at), set_config('synchronous_commit', 'off', true)
      INTO v_ids, v_ats, v_lo, v_hi, v_sync
      FROM d;
    IF v_ids IS NULL THEN
        settled := 0;   -- every one settled already (by the reaper)
        RETURN;
    END IF;
    WITH x AS (
        SELECT x.*, k.at,
               CASE WHEN x.g THEN x.pp ELSE coalesce(um.prompt_price, x.pp) END AS spp,
               CASE WHEN x.g THEN x.cp ELSE coalesce(um.completion_price, x.cp) END AS scp
          FROM jsonb_to_recordset(p_rows) AS x(id text, st integer, et text,
               pt integer, ct integer, tt integer, c numeric, b boolean,
               u text, pv text, l integer, f integer, r boolean,
               up text, tr jsonb, sm text, pp numeric, cp numeric, g boolean, nr boolean)
          JOIN unnest(v_ids, v_ats) AS k(id, at) ON k.id = x.id
          LEFT JOIN upstream_models um ON um.upstream = x.up AND um.id = x.sm
    ), s AS (
        UPDATE usage_events u
           SET status = x.st, error_type = x.et,
               prompt_tokens = x.pt, completion_tokens = x.ct, total_tokens = x.tt,
               cost = CASE WHEN x.c IS NOT NULL THEN x.c
                           WHEN x.b THEN coalesce(x.pt, u.prompt_estimate)
                                         * coalesce(x.spp, u.prompt_price)
                                         + coalesce(x.ct, 0) * coalesce(x.scp, u.completion_price)
                           ELSE 0 END,
               prompt_price = coalesce(x.spp, u.prompt_price),
               completion_price = coalesce(x.scp, u.completion_price),
               upstream = x.up, attempts = x.tr,
               cost_source = CASE WHEN x.c IS NOT NULL THEN 'upstream'
                                  WHEN x.b THEN 'catalog' END,
               -- an id kept while the answer ran (mg_recon_note_ids) stays
               upstream_id = coalesce(x.u, u.upstream_id),
               provider = x.pv, latency_ms = x.l, ttft_ms = x.f,
               settled_at = clock_timestamp(),
               recon_state = CASE WHEN x.nr THEN 'unsupported'
                                  ELSE mg_recon_state(coalesce(x.u, u.upstream_id)) END
          FROM x
         WHERE u.created_at >= v_lo AND u.created_at <= v_hi
           AND u.request_id = x.id AND u.created_at = x.at AND u.settled_at IS NULL
        -- only the columns read below: the whole row would be copied
        -- into the CTE's store and read three times
        RETURNING u.request_id, u.created_at, u.project_id, u.key_id, u.model, u.endpoint,
                  u.status, u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cost,
                  u.latency_ms, u.ttft_ms, u.reserved, u.reserved_tokens,
                  CASE WHEN x.b THEN coalesce(x.tt, x.pt + x.ct) ELSE 0 END AS used,
                  CASE WHEN NOT coalesce(x.nr, false)
                       THEN mg_recon_first_at(u.upstream_id, u.cost_source, x.r,
                                              clock_timestamp()) END AS first_at
    ), q AS (
        -- the rows to look up, as one row of the queue (see
        -- 012_recon_queue.sql): recon_next_at, which an index covers, is
        -- left as it is, so that every row's update stays HOT
        INSERT INTO recon_queue (due_at, request_ids, created_ats)
        SELECT min(s.first_at), array_agg(s.request_id) FILTER (WHERE s.first_at IS NOT NULL),
               array_agg(s.created_at) FILTER (WHERE s.first_at IS NOT NULL)
          FROM s
        HAVING count(s.first_at) > 0
    ), r AS (
        -- the rollups (see mg_rollup_add in rollup.sql): the batch's
        -- increments as one pending row, in this same statement
        INSERT INTO usage_rollup_pending (deltas)
        SELECT array_agg(ROW(s.created_at, s.project_id, s.key_id, s.model, s.endpoint,
                             s.status, 1, s.prompt_tokens, s.completion_tokens,
                             s.total_tokens, s.cost, s.latency_ms, s.ttft_ms)::mg_usage_delta)
          FROM s
        HAVING count(*) > 0
    )
    SELECT array_agg(s.project_id), array_agg(s.reserved), array_agg(s.reserved_tokens),
           array_agg(s.created_at), array_agg(s.request_id), array_agg(s.cost),
           array_agg(s.used)
      INTO a_pid, a_res, a_rtok, a_at, ids, costs, a_used
      FROM s;
    settled := coalesce(cardinality(a_pid), 0);
    IF settled = 0 THEN
        RETURN;
    END IF;

    PERFORM 1 FROM project_quota q
      WHERE q.project_id = ANY (a_pid)
      ORDER BY q.project_id
        FOR UPDATE;
    -- the rows are ours now, so this statement sees their period as it is
    UPDATE project_quota q
       SET reserved = q.reserved - a.reserved,
           spent = q.spent + a.cost,
           tok_level = CASE WHEN q.tok_level IS NULL OR p.tpm IS NULL THEN q.tok_level
                            ELSE least(p.tpm, q.tok_level + a.unused) END
      FROM (SELECT t.pid, sum(t.res) AS reserved,
                   coalesce(sum(t.cost) FILTER (WHERE t.at >= pq.period_start), 0) AS cost,
                   sum(greatest(t.rtok - coalesce(t.used, t.rtok), 0)) AS unused
              FROM unnest(a_pid, a_res, a_rtok, a_at, costs, a_used)
                       AS t(pid, res, rtok, at, cost, used)
              JOIN project_quota pq ON pq.project_id = t.pid
             GROUP BY t.pid) a,
           projects p
     WHERE q.project_id = a.pid AND p.id = q.project_id;
END
$$;

-- Settles one request (see mg_settle_batch).  Returns false when the row
-- was already settled (by the reaper), and then changes nothing.
CREATE OR REPLACE FUNCTION mg_settle(
    p_request_id text, p_status integer, p_error_type text,
    p_prompt_tokens integer, p_completion_tokens integer,
    p_total_tokens integer, p_cost numeric, p_billable boolean,
    p_upstream_id text, p_provider text, p_latency_ms integer,
    p_ttft_ms integer)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT b.settled FROM mg_settle_batch(jsonb_build_array(jsonb_build_object(
               'id', p_request_id, 'st', p_status, 'et', p_error_type,
               'pt', p_prompt_tokens, 'ct', p_completion_tokens, 'tt', p_total_tokens,
               'c', p_cost, 'b', p_billable, 'u', p_upstream_id, 'pv', p_provider,
               'l', p_latency_ms, 'f', p_ttft_ms))) AS b) = 1;
END
$$;

-- Records how a request that was never admitted ended, and counts it in
-- the rollups.  A request id is recorded once: a repeated call with the
-- same id (a retry, within the hour) changes nothing and returns NULL.
CREATE OR REPLACE FUNCTION mg_record_usage(
    p_request_id text, p_project_id bigint, p_key_id bigint, p_model text,
    p_provider text, p_endpoint text, p_stream boolean, p_status integer,
    p_error_type text, p_prompt_tokens integer, p_completion_tokens integer,
    p_total_tokens integer, p_cost numeric, p_cost_source text,
    p_upstream_id text, p_latency_ms integer)
RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := now();
    u     usage_events;
BEGIN
    IF EXISTS (SELECT 1 FROM usage_events e
                WHERE e.request_id = p_request_id
                  AND e.created_at >= v_now - interval '1 hour'
                  AND e.created_at <= v_now) THEN
        RETURN NULL;
    END IF;
    INSERT INTO usage_events (request_id, project_id, key_id, model, provider,
           endpoint, stream, status, error_type, prompt_tokens,
           completion_tokens, total_tokens, cost, cost_source, upstream_id,
           latency_ms, created_at, recon_state, recon_next_at)
    SELECT p_request_id, p_project_id, p_key_id, p_model, p_provider,
           p_endpoint, p_stream, p_status, p_error_type, p_prompt_tokens,
           p_completion_tokens, p_total_tokens, p_cost, p_cost_source,
           p_upstream_id, p_latency_ms, v_now, mg_recon_state(p_upstream_id),
           mg_recon_first_at(p_upstream_id, p_cost_source, false, clock_timestamp())
    ON CONFLICT (request_id, created_at) DO NOTHING
    RETURNING * INTO u;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM mg_rollup_add(ARRAY[mg_usage_delta_of(u)]);
    RETURN u.id;
END
$$;
