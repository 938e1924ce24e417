-- Admission: key -> project, model checks, the rate limits (token
-- buckets of requests and tokens per minute) and the spend reservation, all
-- under the lock of the project's project_quota row, in one statement and
-- one transaction per batch.  An admitted request's usage row is inserted
-- pending (settled_at IS NULL) holding its reservation, with a row in
-- reservations for the reaper.
--
-- Money rules: a request is admitted only if the period's spend plus every
-- reservation held plus its own reservation stays within the spend cap;
-- its reservation is its prompt estimate and its maximum output priced at
-- the model's catalog prices (the fallback prices where the catalog has
-- none).  All money is numeric.
--
-- Lock order, which keeps batches of different processes (and the reaper)
-- free of deadlocks: an admission batch first locks the counter rows of
-- all its projects, in project order; a settlement batch first deletes its
-- reservations, then updates its usage rows, then locks counter rows in
-- project order; the reaper skips locked reservations, then takes counter
-- rows one at a time, in project order.

-- The token buckets.  A project's limit of p_limit per minute is a bucket
-- of p_limit that refills at p_limit / 60 per second; its level as stored
-- (NULL: full) is p_level, p_since ago.  mg_bucket_refill gives the level
-- now; mg_bucket_window gives what the x-ratelimit-* headers tell about a
-- level: the whole requests or tokens left (mg_bucket_remaining), and the
-- milliseconds until the bucket is full again (mg_bucket_reset_ms).
-- Timing, not money: double precision is right here.  The two scalar ones
-- are what mg_admit_batch calls: plpgsql evaluates a scalar SQL function
-- inline, where a record result costs a query of its own (about 7 µs a
-- call, against 0.5 µs).
CREATE OR REPLACE FUNCTION mg_bucket_refill(p_limit integer, p_level double precision,
    p_since interval)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(p_limit, coalesce(p_level, p_limit)
           + greatest(coalesce(extract(epoch FROM p_since), 0), 0) * p_limit / 60.0)
$$;

CREATE OR REPLACE FUNCTION mg_bucket_remaining(p_level double precision)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT greatest(floor(p_level), 0)::integer
$$;

CREATE OR REPLACE FUNCTION mg_bucket_reset_ms(p_limit integer, p_level double precision)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ceil((p_limit - p_level) * 60000.0 / p_limit)::bigint
$$;

CREATE OR REPLACE FUNCTION mg_bucket_window(p_limit integer, p_level double precision,
    OUT remaining integer, OUT reset_ms bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT mg_bucket_remaining(p_level), mg_bucket_reset_ms(p_limit, p_level)
$$;

-- Admits a batch: p_reqs is a JSON array of
-- {"k": key hash (hex), "id": request id, "m": model, "e": endpoint,
--  "s": stream, "p": prompt estimate, "o": max output or null,
--  "c": the upstream calls it may make, or absent: an array of
--       {"u": upstream, "m": model, "pp", "cp": the upstream's prices
--        where upstream_models has none, "g": those prices win},
--  "lh": a lease element, the holder (see 015_leases.sql), or absent,
--  "lr", "lt", "ls": the requests, tokens and spend it would borrow,
--  "lf": true for a refresh: a lease element of no request}.
-- With "c", every model a call names must be allowed, and the
-- reservation is that of the dearest call (the prices stored with the
-- row are its); without it, the model's catalog prices.  The gateway
-- leaves "c" out when the one call is to the upstream the model routes
-- to, at its catalog's prices: the same answer, without a query a request.
-- A lease element is decided as a request is, and when admitted it
-- borrows a slice for its holder's lease instead of a usage row and a
-- reservation: at least what the request needs, at most what it asks
-- and an eighth of what the project has left (of its requests and tokens
-- buckets and of its spend cap), so that busy processes share what is
-- left.  Near a limit (less than 16 requests' worth left of any) the
-- grant is tight: the request's own share only, which its settlement
-- gives back as a pending row's would be, so that near its limits a
-- project is admitted exactly as in strict mode.  A refresh is decided
-- as the request it describes (the holder's last of that key and model)
-- would be, and lends what it asks and no more than an eighth of what is
-- left, nothing when that is near a limit: the holder asks so that the
-- answer it keeps for the key and model, and its slice, are renewed
-- before a request has to wait for them.  Its answer gives the
-- lease after the grant; the x-ratelimit-* values are the buckets'
-- without the slice.
-- Returns one row per element, i being its position (from 1); elements of
-- one project are decided in the order they come in the array.  p_now
-- replaces the clock (for tests).
CREATE OR REPLACE FUNCTION mg_admit_batch(p_reqs jsonb, p_default_output integer,
    p_fallback_prompt numeric, p_fallback_completion numeric,
    p_now timestamptz DEFAULT NULL)
RETURNS SETOF mg_admission
LANGUAGE plpgsql
-- Every table is reached by index: the plans are made once per connection,
-- and a plan made while a table was small (a new install) would otherwise
-- go on reading all of it after it has grown.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    r          mg_admission;
    e          record;
    v_now      timestamptz;
    -- a project's counter row as the batch found it
    q_start    timestamptz;
    q_spent    numeric;
    q_reserved numeric;
    q_req      double precision;
    q_tok      double precision;
    q_at       timestamptz;
    v_pid      bigint;     -- the project of the elements being decided
    v_start    timestamptz;
    v_spent    numeric;
    v_reserved numeric;
    v_req      double precision;
    v_tok      double precision;
    v_dirty    boolean := false;
    v_out      integer;
    v_cost     numeric;
    v_avail    numeric;
    -- the counters of the projects that admitted requests, written at the end
    w_pid      bigint[] := '{}';
    w_start    timestamptz[] := '{}';
    w_spent    numeric[] := '{}';
    w_res      numeric[] := '{}';
    w_req      double precision[] := '{}';
    w_tok      double precision[] := '{}';
    -- the admitted requests, inserted together at the end
    a_id       text[] := '{}';
    a_pid      bigint[] := '{}';
    a_kid      bigint[] := '{}';
    a_model    text[] := '{}';
    a_endpoint text[] := '{}';
    a_stream   boolean[] := '{}';
    a_cost     numeric[] := '{}';
    a_need     integer[] := '{}';
    a_est      integer[] := '{}';
    a_pp       numeric[] := '{}';
    a_cp       numeric[] := '{}';
BEGIN
    -- the counter rows of every project in the batch, locked in project
    -- order; the statements below see them as they are now
    PERFORM 1 FROM project_quota pq
      WHERE pq.project_id IN (
                SELECT ak.project_id FROM jsonb_to_recordset(p_reqs) AS x(k text)
                  JOIN api_keys ak ON ak.key_hash = decode(x.k, 'hex'))
      ORDER BY pq.project_id
        FOR UPDATE;
    -- read once the rows are ours: the buckets' clock never goes back
    v_now := coalesce(p_now, clock_timestamp());

    FOR e IN SELECT x.n::integer AS n, x.id, x.m, x.e, x.s, x.p, x.o, x.lh, x.lr, x.lt, x.ls,
                    coalesce(x.lf, false) AS lf,
                    cand.pp AS c_pp, cand.cp AS c_cp, coalesce(cand.disallowed, false) AS c_bad,
                    ak.id AS kid, ak.prefix, pr.id AS pid, pr.name, pr.rpm AS p_rpm,
                    pr.tpm AS p_tpm, pr.spend_cap AS cap, pr.cap_period,
                    pr.allowed_models, md.id IS NOT NULL AS known,
                    md.prompt_price AS pp, md.completion_price AS cp,
                    md.context_length AS ctx, pq.project_id IS NOT NULL AS counted,
                    -- with an empty catalog every model is allowed
                    EXISTS (SELECT 1 FROM models) AS catalog,
                    pq.period_start AS q_start, pq.spent AS q_spent,
                    pq.reserved AS q_reserved, pq.req_level AS q_req,
                    pq.tok_level AS q_tok, pq.level_at AS q_at
               FROM ROWS FROM (jsonb_to_recordset(p_reqs)
                        AS (k text, id text, m text, e text, s boolean, p integer, o integer,
                            c jsonb, lh text, lr integer, lt integer, ls numeric,
                            lf boolean))
                    WITH ORDINALITY AS x(k, id, m, e, s, p, o, c, lh, lr, lt, ls, lf, n)
               -- one index lookup per element ("OFFSET 0" keeps the
               -- planner from making hash joins of them)
               LEFT JOIN LATERAL (
                    SELECT ak.id, ak.prefix, ak.project_id
                      FROM api_keys ak
                     WHERE ak.key_hash = decode(x.k, 'hex') AND ak.revoked_at IS NULL
                    OFFSET 0) ak ON true
               LEFT JOIN LATERAL (
                    SELECT p.* FROM projects p WHERE p.id = ak.project_id OFFSET 0) pr ON true
               LEFT JOIN LATERAL (
                    SELECT m.id, m.prompt_price, m.completion_price, m.context_length
                      FROM models m WHERE m.id = x.m OFFSET 0) md ON true
               LEFT JOIN LATERAL (
                    SELECT c.* FROM project_quota c WHERE c.project_id = pr.id OFFSET 0) pq ON true
               -- the dearest of the calls it may make, and whether one
               -- names a model the project may not use
               LEFT JOIN LATERAL (
                    SELECT k.pp, k.cp,
                           bool_or(cardinality(pr.allowed_models) > 0
                                   AND NOT (k.m = ANY (pr.allowed_models))) OVER () AS disallowed
                      FROM (SELECT c.m,
                                   CASE WHEN c.g THEN c.pp
                                        ELSE coalesce(um.prompt_price, c.pp) END AS pp,
                                   CASE WHEN c.g THEN c.cp
                                        ELSE coalesce(um.completion_price, c.cp) END AS cp
                              FROM jsonb_to_recordset(x.c)
                                   AS c(u text, m text, pp numeric, cp numeric, g boolean)
                              LEFT JOIN upstream_models um ON um.upstream = c.u AND um.id = c.m
                           ) k
                     ORDER BY x.p * k.pp + coalesce(x.o, p_default_output) * k.cp DESC
                     LIMIT 1) cand ON true
              ORDER BY pr.id NULLS FIRST, x.n
    LOOP
        -- this element's answer: what is known now, the rest below
        r.i := e.n;  r.outcome := NULL;  r.key_id := e.kid;  r.project_id := e.pid;
        r.project_name := e.name;  r.key_prefix := e.prefix;  r.rpm := e.p_rpm;
        r.tpm := e.p_tpm;  r.spend_cap := e.cap;  r.reserved := NULL;  r.spent := NULL;
        r.prompt_price := NULL;  r.completion_price := NULL;  r.need_tokens := NULL;
        r.rpm_remaining := NULL;  r.rpm_reset_ms := NULL;  r.tpm_remaining := NULL;
        r.tpm_reset_ms := NULL;  r.retry_after_ms := NULL;  r.lease_id := NULL;
        r.lease_spend := NULL;  r.lease_seq := NULL;  r.lease_requests := NULL;
        r.lease_tokens := NULL;  r.lease_tight := NULL;  r.context_length := e.ctx;

        IF e.pid IS NULL THEN
            r.outcome := 'invalid_key';
            RETURN NEXT r;
            CONTINUE;
        END IF;
        IF (cardinality(e.allowed_models) > 0 AND NOT (e.m = ANY (e.allowed_models)))
           OR e.c_bad THEN
            r.outcome := 'model_not_allowed';
            RETURN NEXT r;
            CONTINUE;
        END IF;
        IF NOT e.known AND e.catalog THEN
            r.outcome := 'model_not_found';
            RETURN NEXT r;
            CONTINUE;
        END IF;
        r.prompt_price := coalesce(e.c_pp, e.pp, p_fallback_prompt);
        r.completion_price := coalesce(e.c_cp, e.cp, p_fallback_completion);
        v_out := coalesce(e.o, p_default_output);
        IF e.ctx IS NOT NULL AND v_out > e.ctx THEN
            v_out := e.ctx;   -- no model writes more than its context
        END IF;
        r.need_tokens := e.p + v_out;
        v_cost := e.p * r.prompt_price + v_out * r.completion_price;
        r.reserved := v_cost;

        IF v_pid IS DISTINCT FROM e.pid THEN
            -- the first element of a project: its counters as the row has them
            IF v_dirty THEN
                w_pid := w_pid || v_pid;  w_start := w_start || v_start;
                w_spent := w_spent || v_spent;  w_res := w_res || v_reserved;
                w_req := w_req || v_req;  w_tok := w_tok || v_tok;
                v_dirty := false;
            END IF;
            v_pid := e.pid;
            q_start := e.q_start;  q_spent := e.q_spent;  q_reserved := e.q_reserved;
            q_req := e.q_req;  q_tok := e.q_tok;  q_at := e.q_at;
            IF NOT e.counted THEN
                -- a project without its counter row (the row is made
                -- with the project; this repairs a deleted one)
                INSERT INTO project_quota (project_id, period_start)
                VALUES (v_pid, mg_period_start(e.cap_period, v_now))
                ON CONFLICT DO NOTHING;
                SELECT pq.period_start, pq.spent, pq.reserved, pq.req_level,
                       pq.tok_level, pq.level_at
                  INTO q_start, q_spent, q_reserved, q_req, q_tok, q_at
                  FROM project_quota pq WHERE pq.project_id = v_pid FOR UPDATE;
            END IF;
            v_start := mg_period_start(e.cap_period, v_now);
            IF v_start > q_start THEN
                v_spent := 0;          -- a new period has begun
            ELSE
                v_start := q_start;
                v_spent := q_spent;
            END IF;
            v_reserved := q_reserved;
            v_req := NULL;
            v_tok := NULL;
            IF e.p_rpm IS NOT NULL THEN
                v_req := mg_bucket_refill(e.p_rpm, q_req, v_now - q_at);
            END IF;
            IF e.p_tpm IS NOT NULL THEN
                v_tok := mg_bucket_refill(e.p_tpm, q_tok, v_now - q_at);
            END IF;
        END IF;
        r.spent := v_spent;

        IF e.cap IS NOT NULL AND v_spent + v_reserved + v_cost > e.cap THEN
            r.outcome := 'spend_cap';
            IF e.cap_period = 'month' THEN
                r.retry_after_ms := ceil(1000 * extract(epoch FROM
                    (v_start AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC' - v_now));
            END IF;
        ELSIF e.p_tpm IS NOT NULL AND r.need_tokens > e.p_tpm THEN
            r.outcome := 'tokens_too_many';   -- waiting would not help
        ELSIF e.p_rpm IS NOT NULL AND v_req < 1 THEN
            r.outcome := 'requests';
            r.retry_after_ms := ceil((1 - v_req) * 60000.0 / e.p_rpm);
        ELSIF e.p_tpm IS NOT NULL AND v_tok < r.need_tokens THEN
            r.outcome := 'tokens';
            r.retry_after_ms := ceil((r.need_tokens - v_tok) * 60000.0 / e.p_tpm);
        ELSIF e.lh IS NOT NULL THEN
            -- a lease: the slice, at least this request's need
            r.outcome := 'ok';
            r.lease_tight := (e.p_rpm IS NOT NULL AND v_req < 16)
                             OR (e.p_tpm IS NOT NULL AND v_tok < 16 * r.need_tokens)
                             OR (e.cap IS NOT NULL
                                 AND e.cap - v_spent - v_reserved < 16 * v_cost);
            IF e.p_rpm IS NOT NULL THEN
                r.lease_requests := CASE
                    WHEN e.lf THEN CASE WHEN r.lease_tight THEN 0
                        ELSE greatest(0, least(coalesce(e.lr, 0), floor(v_req / 8))) END
                    WHEN r.lease_tight THEN 1 ELSE least(floor(v_req),
                    greatest(1, least(coalesce(e.lr, 1), floor(v_req / 8)))) END;
                v_req := v_req - r.lease_requests;
            END IF;
            IF e.p_tpm IS NOT NULL THEN
                r.lease_tokens := CASE
                    WHEN e.lf THEN CASE WHEN r.lease_tight THEN 0
                        ELSE greatest(0, least(coalesce(e.lt, 0), floor(v_tok / 8))) END
                    WHEN r.lease_tight THEN r.need_tokens
                    ELSE least(floor(v_tok), greatest(r.need_tokens,
                        least(coalesce(e.lt, r.need_tokens), floor(v_tok / 8)))) END;
                v_tok := v_tok - r.lease_tokens;
            END IF;
            v_avail := 0;
            IF e.cap IS NOT NULL THEN
                v_avail := e.cap - v_spent - v_reserved;
                v_avail := CASE
                    WHEN e.lf THEN CASE WHEN r.lease_tight THEN 0
                        ELSE greatest(0, least(coalesce(e.ls, 0), trunc(v_avail / 8, 9))) END
                    WHEN r.lease_tight THEN v_cost
                    ELSE least(v_avail, greatest(v_cost, least(coalesce(e.ls, v_cost),
                                                               trunc(v_avail / 8, 9)))) END;
                v_reserved := v_reserved + v_avail;
            END IF;
            v_dirty := true;
            INSERT INTO leases AS l (project_id, holder, spend, created_at, renewed_at)
            VALUES (e.pid, e.lh, v_avail, v_now, v_now)
            ON CONFLICT (project_id, holder) WHERE reaped_at IS NULL DO UPDATE
               SET spend = l.spend + excluded.spend, seq = l.seq + 1,
                   renewed_at = excluded.renewed_at
            RETURNING l.id, l.spend, l.seq INTO r.lease_id, r.lease_spend, r.lease_seq;
        ELSE
            r.outcome := 'ok';
            v_req := v_req - 1;
            v_tok := v_tok - r.need_tokens;
            v_reserved := v_reserved + v_cost;
            v_dirty := true;
            a_id := a_id || e.id;
            a_pid := a_pid || e.pid;
            a_kid := a_kid || e.kid;
            a_model := a_model || e.m;
            a_endpoint := a_endpoint || e.e;
            a_stream := a_stream || e.s;
            a_cost := a_cost || v_cost;
            a_need := a_need || r.need_tokens;
            a_est := a_est || e.p;
            a_pp := a_pp || r.prompt_price;
            a_cp := a_cp || r.completion_price;
        END IF;

        IF e.p_rpm IS NOT NULL THEN
            r.rpm_remaining := mg_bucket_remaining(v_req);
            r.rpm_reset_ms := mg_bucket_reset_ms(e.p_rpm, v_req);
        END IF;
        IF e.p_tpm IS NOT NULL THEN
            r.tpm_remaining := mg_bucket_remaining(v_tok);
            r.tpm_reset_ms := mg_bucket_reset_ms(e.p_tpm, v_tok);
        END IF;
        RETURN NEXT r;
    END LOOP;
    IF v_dirty THEN
        w_pid := w_pid || v_pid;  w_start := w_start || v_start;
        w_spent := w_spent || v_spent;  w_res := w_res || v_reserved;
        w_req := w_req || v_req;  w_tok := w_tok || v_tok;
    END IF;

    IF cardinality(w_pid) > 0 THEN
        -- one statement: the counters, the usage rows, the reservations
        -- (none when the batch only lent slices)
        WITH c AS (
            UPDATE project_quota pq
               SET period_start = w.start, spent = w.spent, reserved = w.res,
                   req_level = w.req, tok_level = w.tok,
                   level_at = greatest(v_now, coalesce(pq.level_at, v_now))
              FROM unnest(w_pid, w_start, w_spent, w_res, w_req, w_tok)
                   AS w(pid, start, spent, res, req, tok)
             WHERE pq.project_id = w.pid
        ), u AS (
            INSERT INTO usage_events (request_id, project_id, key_id, model, endpoint,
                   stream, status, reserved, reserved_tokens, prompt_estimate,
                   prompt_price, completion_price, created_at, settled_at)
            SELECT a.id, a.pid, a.kid, a.model, a.endpoint, a.stream, NULL, a.cost,
                   a.need, a.est, a.pp, a.cp, v_now, NULL
              FROM unnest(a_id, a_pid, a_kid, a_model, a_endpoint, a_stream, a_cost,
                          a_need, a_est, a_pp, a_cp)
                   AS a(id, pid, kid, model, endpoint, stream, cost, need, est, pp, cp)
        )
        INSERT INTO reservations (request_id, project_id, created_at)
        SELECT a.id, a.pid, v_now FROM unnest(a_id, a_pid) AS a(id, pid);
    END IF;
END
$$;

-- Admits one request (see mg_admit_batch).
CREATE OR REPLACE FUNCTION mg_admit(
    p_key_hash bytea, p_request_id text, p_model text, p_endpoint text,
    p_stream boolean, p_prompt_estimate integer, p_max_output integer,
    p_default_output integer, p_fallback_prompt numeric,
    p_fallback_completion numeric, p_now timestamptz DEFAULT NULL)
RETURNS SETOF mg_admission
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    SELECT * FROM mg_admit_batch(
               jsonb_build_array(jsonb_build_object(
                   'k', encode(p_key_hash, 'hex'), 'id', p_request_id,
                   'm', p_model, 'e', p_endpoint, 's', p_stream,
                   'p', p_prompt_estimate, 'o', p_max_output)),
               p_default_output, p_fallback_prompt, p_fallback_completion, p_now);
END
$$;
