-- tests/bench/usage.sql -- the helpers of `tests/bench/run --usage`, in the
-- schema bench of a throwaway database migrated by `modelgate db migrate`
-- (the fill and the report timings) or by the previous release's SQL (the
-- settlement runs use bench.make_projects only).  Not part of the
-- gateway's schema.
--
-- The usage rows are made with generate_series and random() (setseed
-- first, so the same size gives the same rows) and counted into the
-- rollups by mg_rollup_add, the function settlement calls, in the same
-- transaction: bench.fill_chunk is one INSERT ... SELECT of settled rows,
-- one mg_rollup_add of their deltas, and the fold of that pending row
-- (mg_rollup_fold, as the responders' upkeep runs it every minute).

CREATE SCHEMA IF NOT EXISTS bench;

CREATE TABLE IF NOT EXISTS bench.keys (
    n           integer NOT NULL,
    slot        integer NOT NULL,
    project_id  bigint NOT NULL,
    key_id      bigint NOT NULL,
    hash        text NOT NULL,
    PRIMARY KEY (n, slot)
);

-- The projects bench-1 .. bench-p_n, each with 1 to 3 keys (1 + n % 3;
-- p_keys_max caps it), made by the gateway's own admin functions; every
-- project gets p_limits.  The keys are mg- and 32 characters derived from
-- the project's number and the key's, so that two databases get the same
-- keys.  bench.keys: (project number, key number, ids, hash as hex).
CREATE OR REPLACE FUNCTION bench.make_projects(p_n integer, p_limits jsonb,
    p_keys_max integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    i  integer;
    j  integer;
    k  text;
BEGIN
    FOR i IN 1 .. p_n LOOP
        PERFORM mg_project_create('bench-' || i, p_limits);
        FOR j IN 1 .. least(1 + i % 3, p_keys_max) LOOP
            k := 'mg-' || left(md5('modelgate bench key ' || i || '/' || j), 32);
            PERFORM mg_key_create('bench-' || i, left(k, 11), sha256(convert_to(k, 'UTF8')),
                                  'bench ' || j);
            INSERT INTO bench.keys (n, slot, project_id, key_id, hash)
            SELECT i, j, ak.project_id, ak.id, encode(ak.key_hash, 'hex')
              FROM api_keys ak WHERE ak.key_hash = sha256(convert_to(k, 'UTF8'));
        END LOOP;
    END LOOP;
    RETURN p_n;
END
$$;

-- The models of the fill: chat 90 %, embeddings 10 %, skewed; prices in
-- USD per token (exact numerics), and the upper bound of each one's share
-- of random() (cumulative).
CREATE TABLE IF NOT EXISTS bench.models (
    i                 integer PRIMARY KEY,
    model             text NOT NULL,
    endpoint          text NOT NULL,
    provider          text NOT NULL,
    prompt_price      numeric NOT NULL,
    completion_price  numeric NOT NULL,
    upto              double precision NOT NULL
);
INSERT INTO bench.models VALUES
    (1, 'openai/gpt-4o-mini', 'chat.completions', 'OpenAI', 0.00000015, 0.0000006, 0.40),
    (2, 'openai/gpt-4o', 'chat.completions', 'OpenAI', 0.0000025, 0.00001, 0.55),
    (3, 'anthropic/claude-3.5-sonnet', 'chat.completions', 'Anthropic', 0.000003, 0.000015, 0.67),
    (4, 'anthropic/claude-3-haiku', 'chat.completions', 'Anthropic', 0.00000025, 0.00000125, 0.75),
    (5, 'google/gemini-1.5-flash', 'chat.completions', 'Google', 0.000000075, 0.0000003, 0.83),
    (6, 'meta-llama/llama-3.1-70b-instruct', 'chat.completions', 'DeepInfra', 0.00000052,
     0.00000075, 0.87),
    (7, 'mistralai/mistral-large', 'chat.completions', 'Mistral', 0.000002, 0.000006, 0.90),
    (8, 'openai/text-embedding-3-small', 'embeddings', 'OpenAI', 0.00000002, 0, 0.98),
    (9, 'openai/text-embedding-3-large', 'embeddings', 'OpenAI', 0.00000013, 0, 1.00)
ON CONFLICT DO NOTHING;

-- The projects as arrays (bench.keys by project number), for the fill.
CREATE OR REPLACE FUNCTION bench.project_keys()
RETURNS TABLE (n integer, project_id bigint, key_ids bigint[])
LANGUAGE sql STABLE AS $$
    SELECT k.n, min(k.project_id), array_agg(k.key_id ORDER BY k.slot)
      FROM bench.keys k GROUP BY k.n
$$;

-- Inserts p_n settled usage rows admitted in [p_lo, p_hi) and counts
-- them into the rollups with mg_rollup_add, then folds them
-- (mg_rollup_fold: a day's pending row is a large one), in this
-- transaction.
-- p_diurnal: [p_lo, p_hi) is one whole UTC day and the rows follow a
-- day's curve (three times as many at 12:00 UTC as at midnight).
-- Project number k is drawn with weight falling as 1/sqrt(k) (the busiest,
-- bench-1, gets about 3 %); its first key carries 70 % of its rows.
-- Status: 95.5 % 200, 2 % 429 (refused by the gateway, never admitted),
-- 1 % 400, 0.5 % 500, 0.7 % 502, 0.3 % 504.  40 % of chats stream (and
-- have a time to first token); 70 % of costs came from the upstream, the
-- rest from the catalog.  Returns p_n.
CREATE OR REPLACE FUNCTION bench.fill_chunk(p_lo timestamptz, p_hi timestamptz,
    p_n integer, p_diurnal boolean)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_projects integer := (SELECT count(DISTINCT n) FROM bench.keys);
    v_deltas   mg_usage_delta[];
BEGIN
    IF p_n <= 0 THEN
        RETURN 0;
    END IF;
    WITH g AS (
        SELECT random() AS rt, random() AS rp, random() AS rk, random() AS rm,
               random() AS rs, random() AS r1, random() AS r2, random() AS rl,
               random() AS rf, random() AS rq, random() AS rc
          FROM generate_series(1, p_n)
    ), a AS (
        SELECT g.*,
               p_lo + (p_hi - p_lo) * CASE WHEN p_diurnal
                   THEN g.rt + 0.5 * sin(2 * pi() * g.rt) / (2 * pi()) ELSE g.rt END AS at,
               least(1 + floor(v_projects * g.rp * g.rp)::integer, v_projects) AS pn,
               1 + width_bucket(g.rm, ARRAY[0.40, 0.55, 0.67, 0.75, 0.83, 0.87, 0.90, 0.98]
                                      ::double precision[]) AS mi,
               CASE WHEN g.rs < 0.955 THEN 200 WHEN g.rs < 0.975 THEN 429
                    WHEN g.rs < 0.985 THEN 400 WHEN g.rs < 0.990 THEN 500
                    WHEN g.rs < 0.997 THEN 502 ELSE 504 END AS st
          FROM g
    ), b AS (
        SELECT a.at, pk.project_id,
               pk.key_ids[CASE WHEN a.rk < 0.7 OR cardinality(pk.key_ids) = 1 THEN 1
                               WHEN a.rk < 0.9 OR cardinality(pk.key_ids) = 2 THEN 2
                               ELSE 3 END] AS key_id,
               m.model, m.endpoint, m.provider, m.prompt_price AS pp,
               m.completion_price AS cp, a.st,
               m.endpoint = 'chat.completions' AND a.rq < 0.4 AS stream,
               CASE WHEN a.st <> 200 THEN NULL
                    WHEN m.endpoint = 'embeddings' THEN 5 + floor(500 * a.r1 * a.r1)::integer
                    ELSE 20 + floor(3000 * a.r1 * a.r1 * a.r1)::integer END AS pt,
               CASE WHEN a.st <> 200 THEN NULL
                    WHEN m.endpoint = 'embeddings' THEN 0
                    ELSE 1 + floor(1200 * a.r2 * a.r2)::integer END AS ct,
               a.rl, a.rf, a.rc
          FROM a
          JOIN bench.project_keys() pk ON pk.n = a.pn
          JOIN bench.models m ON m.i = a.mi
    ), c AS (
        SELECT b.*,
               CASE WHEN b.st = 200 AND b.endpoint = 'embeddings'
                        THEN 15 + floor(250 * b.rl * b.rl)::integer
                    WHEN b.st = 200 THEN floor(120 + b.ct * (5 + 25 * b.rl) + 300 * b.rl)::integer
                    WHEN b.st = 429 THEN 1 + floor(5 * b.rl)::integer
                    WHEN b.st = 504 THEN 30000 + floor(30000 * b.rl)::integer
                    ELSE floor(50 + 5000 * b.rl * b.rl)::integer END AS lat
          FROM b
    ), ins AS (
        INSERT INTO usage_events (request_id, project_id, key_id, model, provider, endpoint,
               stream, status, error_type, prompt_tokens, completion_tokens, total_tokens,
               cost, cost_source, upstream_id, latency_ms, created_at, reserved,
               reserved_tokens, prompt_estimate, prompt_price, completion_price, ttft_ms,
               settled_at)
        SELECT 'req_' || left(md5(random()::text), 24), c.project_id, c.key_id, c.model,
               CASE WHEN c.st <> 429 THEN c.provider END, c.endpoint, c.stream, c.st,
               CASE c.st WHEN 200 THEN NULL WHEN 429 THEN 'rate_limit_exceeded'
                         WHEN 400 THEN 'invalid_request_error' ELSE 'upstream_error' END,
               c.pt, c.ct, c.pt + c.ct,
               CASE WHEN c.st = 200 THEN c.pt * c.pp + c.ct * c.cp ELSE 0 END,
               CASE WHEN c.st <> 200 THEN NULL WHEN c.rc < 0.7 THEN 'upstream'
                    ELSE 'catalog' END,
               CASE WHEN c.st = 200 THEN 'gen-' || left(md5(random()::text), 20) END,
               c.lat, c.at,
               CASE WHEN c.st = 429 THEN 0
                    ELSE coalesce(c.pt, 100) * c.pp + 4096 * c.cp END,
               CASE WHEN c.st <> 429 THEN coalesce(c.pt, 100) + 4096 END,
               CASE WHEN c.st <> 429 THEN coalesce(c.pt, 100) END,
               CASE WHEN c.st <> 429 THEN c.pp END, CASE WHEN c.st <> 429 THEN c.cp END,
               CASE WHEN c.st = 200 AND c.stream
                    THEN least(80 + floor(1500 * c.rf * c.rf)::integer, c.lat) END,
               c.at + c.lat * interval '1 millisecond'
          FROM c
         ORDER BY c.at
        RETURNING created_at, project_id, key_id, model, endpoint, status, prompt_tokens,
                  completion_tokens, total_tokens, cost, latency_ms, ttft_ms
    )
    SELECT array_agg(ROW(ins.created_at, ins.project_id, ins.key_id, ins.model, ins.endpoint,
                         ins.status, 1, ins.prompt_tokens, ins.completion_tokens,
                         ins.total_tokens, ins.cost, ins.latency_ms, ins.ttft_ms)::mg_usage_delta)
      INTO v_deltas
      FROM ins;
    PERFORM mg_rollup_add(v_deltas);
    PERFORM mg_rollup_fold();
    RETURN cardinality(v_deltas);
END
$$;

-- The chunks of a fill of p_rows rows over the p_days days before p_now:
-- one a UTC day (the first and last ones partial), each with its share
-- of the rows (exactly p_rows together), as the statements that fill
-- them.  Partitions are made for each.
CREATE OR REPLACE FUNCTION bench.fill_plan(p_now timestamptz, p_days integer, p_rows bigint)
RETURNS TABLE (i integer, lo timestamptz, hi timestamptz, n integer, diurnal boolean)
LANGUAGE sql STABLE AS $$
    WITH e AS (
        SELECT p_now - make_interval(days => p_days) AS s,
               p_days * 86400.0 AS span
    ), b AS (
        SELECT greatest(d, e.s) AS lo, least(d + interval '24 hours', p_now) AS hi,
               d >= e.s AND d + interval '24 hours' <= p_now AS diurnal, e.s, e.span
          FROM e, generate_series(date_trunc('day', e.s, 'UTC'), p_now,
                                  interval '24 hours') AS d
         WHERE d < p_now
    )
    SELECT row_number() OVER (ORDER BY b.lo)::integer, b.lo, b.hi,
           (floor(p_rows * extract(epoch FROM b.hi - b.s) / b.span)
            - floor(p_rows * extract(epoch FROM b.lo - b.s) / b.span))::integer,
           b.diurnal
      FROM b
$$;

-- The statement of the report p_name of the timings (day, model, key:
-- the totals of last month grouped so; requests: the latest 50) in the
-- time zone p_tz, of the project p_project (NULL: all), as the gateway's
-- faces call it (report.max_days 731, the default).
CREATE OR REPLACE FUNCTION bench.report_sql(p_name text, p_tz text, p_project text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_name
        WHEN 'requests' THEN
            format('SELECT mg_usage_requests(%L, NULL, NULL, NULL, NULL, NULL, %L, 50, NULL, 731)',
                   p_project, p_tz)
        ELSE
            format('SELECT mg_usage_report(%L, NULL, NULL, %L, %L, %L, %L, 731)',
                   p_project, 'last-month', 'this-month', p_tz, ARRAY[p_name])
        END
$$;

-- Runs the statement p_sql (one value) once to warm up, then p_n times,
-- or fewer when the warm-up took long: as many as fit in p_budget_ms,
-- at least 3.  Returns the milliseconds of each run, the warm-up's, and
-- the length of the last answer as text.
CREATE OR REPLACE FUNCTION bench.time_calls(p_sql text, p_n integer, p_budget_ms integer,
    OUT ms double precision[], OUT warm_ms double precision, OUT bytes integer)
LANGUAGE plpgsql AS $$
DECLARE
    t0  timestamptz;
    v   text;
BEGIN
    ms := '{}';
    t0 := clock_timestamp();
    EXECUTE p_sql INTO v;
    warm_ms := 1000 * extract(epoch FROM clock_timestamp() - t0)::double precision;
    FOR i IN 1 .. least(p_n, greatest(3, floor(p_budget_ms / greatest(warm_ms, 0.001)))::integer)
    LOOP
        t0 := clock_timestamp();
        EXECUTE p_sql INTO v;
        ms := ms || 1000 * extract(epoch FROM clock_timestamp() - t0)::double precision;
    END LOOP;
    bytes := octet_length(v);
END
$$;

-- Times the report p_name (see bench.report_sql) p_n times after one
-- warm-up (fewer when it is slow: bench.time_calls with 20 s); one JSON
-- line for tests/bench/report.cjs, with the median (p50), p95 and max in
-- milliseconds (nearest rank) and whether the median is under
-- p_target_ms.
CREATE OR REPLACE FUNCTION bench.time_report(p_name text, p_tz text, p_project text,
    p_n integer, p_target_ms integer)
RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    t   record;
    q   double precision[];
    n   integer;
BEGIN
    t := bench.time_calls(bench.report_sql(p_name, p_tz, p_project), p_n, 20000);
    t.ms := (SELECT array_agg(round(x::numeric, 3)::double precision) FROM unnest(t.ms) AS x);
    SELECT array_agg(x ORDER BY x) INTO q FROM unnest(t.ms) AS x;
    n := cardinality(q);
    RETURN json_build_object('kind', 'report', 'report', p_name, 'tz', p_tz,
        'project', p_project, 'n', n, 'ms', t.ms, 'warm_ms', round(t.warm_ms::numeric, 3),
        'p50', q[ceil(0.50 * n)::integer], 'p95', q[ceil(0.95 * n)::integer],
        'max', q[n], 'bytes', t.bytes, 'target_ms', p_target_ms,
        'ok', q[ceil(0.50 * n)::integer] < p_target_ms);
END
$$;
