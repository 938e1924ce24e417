-- Reports: the one query layer under every face (the CLI's `modelgate
-- usage` and `modelgate requests`, GET /v1/usage, /v1/usage/requests and
-- /v1/quota, and later the MCP server and the dashboard), called through
-- lib/report.c.  Each returns one JSON object, the same for every face.
--
-- Totals read the rollups (usage_rollup, and the rows of
-- usage_rollup_pending not folded yet), never the usage rows: a period
-- is made of whole buckets, added and subtracted (mg_report_runs), so its
-- totals are exact in any time zone.  Periods of totals start and end on
-- a quarter hour.  The latest requests are read from the usage rows.
--
-- Money rule: costs are summed as numeric and returned as decimal strings.
--
-- Bad input is refused with invalid_parameter_value (22023) and a
-- message a face shows as it is.

-- p_tz when it names a time zone of the tz database (an IANA name such as
-- Europe/Paris, or UTC), else an error.
CREATE OR REPLACE FUNCTION mg_report_zone(p_tz text)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_tz IN ('UTC', 'GMT')
       OR (p_tz ~ '^[A-Za-z][A-Za-z0-9_+-]{0,40}(/[A-Za-z0-9_+-]{1,40}){1,2}$'
           AND p_tz !~ '^(posix|right)/') THEN
        BEGIN
            PERFORM now() AT TIME ZONE p_tz;
            RETURN p_tz;
        EXCEPTION WHEN invalid_parameter_value THEN
            NULL;
        END;
    END IF;
    RAISE EXCEPTION 'unknown time zone "%" (an IANA name such as America/New_York, or UTC)',
        left(p_tz, 64) USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- p_at as ISO 8601 in the time zone p_tz, with its offset there
-- ("2026-03-08T03:00:00-04:00"; "Z" where the offset is 0).
CREATE OR REPLACE FUNCTION mg_report_iso(p_at timestamptz, p_tz text)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(l, 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN o = 0 THEN 'Z'
                   ELSE CASE WHEN o < 0 THEN '-' ELSE '+' END
                        || to_char(abs(o) / 3600, 'FM00') || ':'
                        || to_char(abs(o) % 3600 / 60, 'FM00') END
      FROM (SELECT p_at AT TIME ZONE p_tz AS l,
                   extract(epoch FROM (p_at AT TIME ZONE p_tz) - (p_at AT TIME ZONE 'UTC'))::integer AS o) x
$$;

-- The instant a report's since or until names (p_what says which, for
-- messages), in the time zone p_tz at p_now:
--   ISO 8601: 2026-11-05, 2026-11, 2026-11-05T14:30, with seconds, with Z
--   or an offset (without one, a local time of p_tz);
--   now, today, yesterday, this-month, last-month (local midnights);
--   Nd, Nh: N days (local calendar) or hours before now.
CREATE OR REPLACE FUNCTION mg_report_time(p_text text, p_tz text, p_now timestamptz,
    p_what text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_local timestamp := p_now AT TIME ZONE p_tz;
    v_n     integer;
    v_t     text := lower(btrim(p_text));
BEGIN
    CASE
    WHEN v_t = 'now' THEN
        RETURN p_now;
    WHEN v_t = 'today' THEN
        RETURN date_trunc('day', v_local) AT TIME ZONE p_tz;
    WHEN v_t = 'yesterday' THEN
        RETURN (date_trunc('day', v_local) - interval '1 day') AT TIME ZONE p_tz;
    WHEN v_t = 'this-month' THEN
        RETURN date_trunc('month', v_local) AT TIME ZONE p_tz;
    WHEN v_t = 'last-month' THEN
        RETURN (date_trunc('month', v_local) - interval '1 month') AT TIME ZONE p_tz;
    WHEN v_t ~ '^[0-9]{1,5}[dh]$' THEN
        v_n := left(v_t, -1)::integer;
        IF right(v_t, 1) = 'd' THEN
            RETURN (v_local - make_interval(days => v_n)) AT TIME ZONE p_tz;
        END IF;
        RETURN p_now - make_interval(hours => v_n);
    WHEN v_t ~ '^[0-9]{4}-[0-9]{2}$' THEN
        BEGIN
            RETURN (v_t || '-01')::timestamp AT TIME ZONE p_tz;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
            NULL;
        END;
    WHEN v_t ~ ('^[0-9]{4}-[0-9]{2}-[0-9]{2}'
                '([t ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?'
                '(z|[+-][0-9]{2}(:?[0-9]{2})?)?$') THEN
        BEGIN
            IF v_t ~ '(z|[+-][0-9]{2}(:?[0-9]{2})?)$' AND v_t ~ '[t ]' THEN
                RETURN v_t::timestamptz;
            END IF;
            RETURN v_t::timestamp AT TIME ZONE p_tz;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
            NULL;
        END;
    ELSE
        NULL;
    END CASE;
    RAISE EXCEPTION '% "%" is not a time (ISO 8601 such as 2026-11-05 or '
        '2026-11-05T14:30Z, or today, yesterday, 7d, 24h, this-month, last-month)',
        p_what, left(p_text, 64) USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- A report's period [since, until) from its text (NULL: the defaults,
-- since the start of this month in p_tz, until now), checked: since
-- before until, at most p_max_days long, and, for totals (p_quarters),
-- on quarter hours.  Relative times (now, Nd, Nh) are rounded out to
-- the quarter hour for totals; explicit times must fall on one.
CREATE OR REPLACE FUNCTION mg_report_period(p_since text, p_until text, p_tz text,
    p_now timestamptz, p_quarters boolean, p_max_days integer,
    OUT since timestamptz, OUT until timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    q constant timestamptz := timestamptz '2000-01-01 00:00:00+00';
BEGIN
    IF p_since IS NULL THEN
        since := CASE WHEN p_quarters THEN mg_report_time('this-month', p_tz, p_now, 'since') END;
    ELSE
        since := mg_report_time(p_since, p_tz, p_now, 'since');
    END IF;
    until := mg_report_time(coalesce(p_until, 'now'), p_tz, p_now, 'until');
    IF p_quarters THEN
        IF p_since IS NOT NULL AND lower(btrim(p_since)) ~ '^(now|[0-9]+[dh])$' THEN
            since := date_bin('15 minutes', since, q);
        END IF;
        IF p_until IS NULL OR lower(btrim(p_until)) ~ '^(now|[0-9]+[dh])$' THEN
            IF until <> date_bin('15 minutes', until, q) THEN
                until := date_bin('15 minutes', until, q) + interval '15 minutes';
            END IF;
        END IF;
        IF since <> date_bin('15 minutes', since, q) THEN
            RAISE EXCEPTION 'since % is not on a quarter hour: usage is counted by the '
                'quarter hour (:00, :15, :30, :45)', mg_report_iso(since, p_tz)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF until <> date_bin('15 minutes', until, q) THEN
            RAISE EXCEPTION 'until % is not on a quarter hour: usage is counted by the '
                'quarter hour (:00, :15, :30, :45)', mg_report_iso(until, p_tz)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF since IS NOT NULL AND since >= until THEN
        RAISE EXCEPTION 'since % is not before until %', mg_report_iso(since, p_tz),
            mg_report_iso(until, p_tz) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since IS NOT NULL AND until - since > make_interval(days => p_max_days) THEN
        RAISE EXCEPTION 'the period from % to % is longer than % days (report.max_days)',
            mg_report_iso(since, p_tz), mg_report_iso(until, p_tz), p_max_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- The project named p_project (NULL: every project; then NULL) and the
-- keys whose prefix starts with p_key (NULL: every key; then NULL), of
-- that project when one is named.  Refuses a project or a key prefix that
-- names nothing, and a model id that cannot be one.
CREATE OR REPLACE FUNCTION mg_report_scope(p_project text, p_key text, p_model text,
    OUT project_id bigint, OUT key_ids bigint[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_pid bigint;
BEGIN
    IF p_project IS NOT NULL THEN
        SELECT p.id INTO v_pid FROM projects p WHERE p.name = p_project;
        project_id := v_pid;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no project named "%"', left(p_project, 64)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF p_model IS NOT NULL AND (p_model = '' OR length(p_model) > 256) THEN
        RAISE EXCEPTION 'a model id is 1 to 256 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_key IS NOT NULL THEN
        SELECT array_agg(k.id ORDER BY k.id) INTO key_ids
          FROM api_keys k
         WHERE length(p_key) >= 3
           AND (left(k.prefix, length(p_key)) = p_key OR left(p_key, length(k.prefix)) = k.prefix)
           AND (v_pid IS NULL OR k.project_id = v_pid);
        IF key_ids IS NULL THEN
            RAISE EXCEPTION 'no key starts with "%"%', left(p_key, 16),
                CASE WHEN p_project IS NULL THEN '' ELSE ' in project ' || p_project END
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
END
$$;

-- The runs of rollup buckets whose signed sum is exactly [p_lo, p_hi)
-- (both on quarter hours): the UTC months nearest its ends, corrected by
-- the UTC days up to its ends, then (p_six: reading the keys' totals, which
-- have them) by the six-hour blocks, then by hours, then quarter hours.
-- Each run is the buckets of one grain ('m', 'd', 's', 'h' or 'q') in
-- [lo, hi), counted with sign.
CREATE OR REPLACE FUNCTION mg_report_runs(p_lo timestamptz, p_hi timestamptz,
    p_six boolean, p_sign integer DEFAULT 1, p_level integer DEFAULT 0)
RETURNS TABLE (grain "char", lo timestamptz, hi timestamptz, sign integer)
LANGUAGE plpgsql IMMUTABLE
ROWS 4   -- one to seven runs, not the planner's 1000
AS $$
DECLARE
    a timestamptz;
    b timestamptz;
    v_next integer := p_level + 1;
BEGIN
    IF p_lo >= p_hi THEN
        RETURN;
    END IF;
    IF p_level >= 4 THEN
        grain := 'q';  lo := p_lo;  hi := p_hi;  sign := p_sign;
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_next = 2 AND NOT p_six THEN
        v_next := 3;
    END IF;
    grain := ('{m,d,s,h}'::"char"[])[p_level + 1];
    a := mg_report_nearest(grain, p_lo);
    b := mg_report_nearest(grain, p_hi);
    IF a >= b THEN
        RETURN QUERY SELECT * FROM mg_report_runs(p_lo, p_hi, p_six, p_sign, v_next);
        RETURN;
    END IF;
    lo := a;  hi := b;  sign := p_sign;
    RETURN NEXT;
    IF p_lo < a THEN
        RETURN QUERY SELECT * FROM mg_report_runs(p_lo, a, p_six, p_sign, v_next);
    ELSIF a < p_lo THEN
        RETURN QUERY SELECT * FROM mg_report_runs(a, p_lo, p_six, -p_sign, v_next);
    END IF;
    IF b < p_hi THEN
        RETURN QUERY SELECT * FROM mg_report_runs(b, p_hi, p_six, p_sign, v_next);
    ELSIF p_hi < b THEN
        RETURN QUERY SELECT * FROM mg_report_runs(p_hi, b, p_six, -p_sign, v_next);
    END IF;
END
$$;

-- Runs take p_six since version 11.
DROP FUNCTION IF EXISTS mg_report_runs(timestamptz, timestamptz, integer, integer);

-- The start of the UTC month ('m'), day ('d'), six-hour block ('s': from
-- 00:00, 06:00, 12:00 or 18:00) or hour ('h') nearest p_at (the earlier
-- one on a tie).
CREATE OR REPLACE FUNCTION mg_report_nearest(p_grain "char", p_at timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_at - f <= c - p_at THEN f ELSE c END
      FROM (SELECT f, CASE p_grain
                      WHEN 'm' THEN (f AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC'
                      WHEN 'd' THEN f + interval '24 hours'
                      WHEN 's' THEN f + interval '6 hours'
                      ELSE f + interval '1 hour' END AS c
              FROM (SELECT CASE p_grain
                           WHEN 's' THEN date_bin('6 hours', p_at,
                                                  timestamptz '2000-01-01 00:00:00+00')
                           ELSE date_trunc(CASE p_grain WHEN 'm' THEN 'month'
                                           WHEN 'd' THEN 'day' ELSE 'hour' END, p_at, 'UTC')
                           END AS f) x) y
$$;

-- The upper bounds (milliseconds) of the histogram buckets 0..14; bucket
-- 15 holds the rest.  The rollups' l<i> (t<i>) count the requests of
-- buckets 0 to i (cumulative, so l15 counts them all).
CREATE OR REPLACE FUNCTION mg_hist_bounds()
RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{25,50,100,150,250,400,600,1000,1500,2500,4000,6000,10000,20000,60000}'::integer[]
$$;

-- The value at rank p_want of a cumulative histogram (element i counts
-- the requests of buckets 0 .. i-1, as the rollups keep them): linear
-- within the bucket where it falls, the lower bound of the last bucket
-- when it falls there.  The bucket is the first whose count reaches the
-- rank: a binary search (width_bucket) over the counts, which are
-- integers, for the rank rounded up less one.  Exact: numeric throughout,
-- rounded once.
--
-- One expression with the bounds written in (a CASE over the bucket, from
-- mg_hist_bounds() when this file is applied), so that the planner
-- inlines it into a report: called as a function it cost about 10 us, and
-- a report by key over every project computes 4,000 of them.
DO $do$
DECLARE
    b     constant integer[] := mg_hist_bounds();
    arms  text := '';
BEGIN
    FOR i IN 1 .. cardinality(b) - 1 LOOP
        arms := arms || format(E'\n        WHEN %s THEN %s + %s * (p_want - p_cum[%s]) / (p_cum[%s] - p_cum[%s])',
                               i, b[i], b[i + 1] - b[i], i, i + 1, i);
    END LOOP;
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION mg_hist_at(p_cum numeric[], p_want numeric)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
    SELECT round(CASE width_bucket(ceil(p_want) - 1, p_cum)
        WHEN 0 THEN %s * p_want / p_cum[1]%s
        ELSE %s END)::integer
$body$$f$, b[1], arms, b[cardinality(b)]);
END
$do$;

-- The median and the 95th percentile of a cumulative histogram (see
-- mg_hist_at), as the text of two JSON members: "p50" : <ms>, "p95" : <ms>;
-- null when the histogram is empty.  Exact ranks: a decimal times a count,
-- no binary fraction.  One expression, inlined like mg_hist_at.
CREATE OR REPLACE FUNCTION mg_hist_p50_p95(p_cum numeric[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_cum[16] IS NULL OR p_cum[16] <= 0 THEN '"p50" : null, "p95" : null'
                ELSE '"p50" : ' || mg_hist_at(p_cum, 0.5 * p_cum[16])::text
                     || ', "p95" : ' || mg_hist_at(p_cum, 0.95 * p_cum[16])::text END
$$;

-- Replaced by mg_hist_p50_p95, which gives both percentiles in one call.
DROP FUNCTION IF EXISTS mg_hist_quantile(double precision, numeric[]);

-- The metrics of a group of rollups as a report shows them (p_lat and
-- p_ttft: the group's cumulative histograms), as the text of the last
-- members of a JSON object and its closing brace: a report joins its
-- items as text.  Built with concat, not json_build_object, which looks
-- up how to write each of its values at every call: a report of 2,000
-- groups took 50 ms less.  LANGUAGE sql, one expression: the planner
-- inlines it into the report.
CREATE OR REPLACE FUNCTION mg_report_metrics_tail(p_requests numeric, p_errors numeric,
    p_prompt numeric, p_completion numeric, p_total numeric, p_cost numeric,
    p_latency_n numeric, p_latency_ms numeric, p_ttft_n numeric, p_ttft_ms numeric,
    p_lat numeric[], p_ttft numeric[])
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT concat('"requests" : ', coalesce(p_requests, 0),
        ', "errors" : ', coalesce(p_errors, 0),
        ', "prompt_tokens" : ', coalesce(p_prompt, 0),
        ', "completion_tokens" : ', coalesce(p_completion, 0),
        ', "total_tokens" : ', coalesce(p_total, 0),
        -- digits, a point and a sign: nothing to escape
        ', "cost" : "', coalesce(trim_scale(p_cost), 0),
        '", "latency_ms" : {"avg" : ',
        coalesce((CASE WHEN p_latency_n > 0 THEN round(p_latency_ms / p_latency_n) END)::text,
                 'null'),
        ', ', mg_hist_p50_p95(p_lat),
        '}, "ttft_ms" : {"avg" : ',
        coalesce((CASE WHEN p_ttft_n > 0 THEN round(p_ttft_ms / p_ttft_n) END)::text, 'null'),
        ', ', mg_hist_p50_p95(p_ttft), '}}')
$$;

-- Reports write their metrics as text since version 8.
DROP FUNCTION IF EXISTS mg_report_metrics(numeric, numeric, numeric, numeric, numeric, numeric,
    numeric, numeric, numeric, numeric, numeric[], numeric[]);

-- "p_name": p_value (a JSON string or null) and a comma, as the text of
-- one member of a JSON object whose last member comes after it.
CREATE OR REPLACE FUNCTION mg_report_member(p_name text, p_value text)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_json(p_name)::text || ': ' || coalesce(to_json(p_value)::text, 'null') || ', '
$$;

-- Reports build their items as text since version 7.
DROP FUNCTION IF EXISTS mg_json_concat(json, json);

-- Usage totals of [since, until) in the time zone p_tz, grouped by the
-- dimensions p_by (any of project, key, model, endpoint, status, day,
-- hour; none: one group), of the project p_project (NULL: all), the keys
-- starting with p_key and the model p_model (NULL: all).  p_now replaces
-- the clock (tests).  Returns
--   {"object": "usage", "timezone", "period": {"since", "until"},
--    "group_by": [...], "filters": {"project", "key", "model"},
--    "data": [{<each dimension of group_by>, <metrics>}...],
-- (grouped by key: "key" is its prefix, "key_name" its name),
--    "totals": {<metrics>}}
-- with metrics requests, errors (status 4xx and 5xx), prompt_tokens,
-- completion_tokens, total_tokens, cost (USD, decimal string), latency_ms
-- and ttft_ms ({"avg", "p50", "p95"}; the percentiles from the histogram
-- buckets).  Groups without requests are left out; data is in time
-- order, then by cost, most first.
CREATE OR REPLACE FUNCTION mg_usage_report(p_project text, p_key text, p_model text,
    p_since text, p_until text, p_tz text, p_by text[], p_max_days integer,
    p_now timestamptz DEFAULT NULL)
RETURNS json
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
-- the planner's guess of mg_report_runs (1000 rows a call) makes every
-- plan look costly enough to compile, which took longer than running it
SET jit = off
AS $$
DECLARE
    v_now    timestamptz := coalesce(p_now, now());
    v_tz     text := mg_report_zone(coalesce(p_tz, 'UTC'));
    v_by     text[] := '{}';
    v_d      text;
    v_p      record;
    v_s      record;
    v_pids   bigint[];
    v_lo     timestamptz[];
    v_hi     timestamptz[];
    v_label  text[];
    v_keys   boolean;
    v_all    boolean;
    v_zero   boolean;
    v_out    json;
BEGIN
    FOREACH v_d IN ARRAY coalesce(p_by, '{}') LOOP
        v_d := lower(btrim(v_d));
        CONTINUE WHEN v_d = '' OR v_d = ANY (v_by);
        IF v_d NOT IN ('project', 'key', 'model', 'endpoint', 'status', 'day', 'hour') THEN
            RAISE EXCEPTION 'cannot group by "%" (by one or more of project, key, model, '
                'endpoint, status, day, hour)', left(v_d, 32)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_by := v_by || v_d;
    END LOOP;
    IF 'day' = ANY (v_by) AND 'hour' = ANY (v_by) THEN
        RAISE EXCEPTION 'group by day or by hour, not both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_p := mg_report_period(p_since, p_until, v_tz, v_now, true, p_max_days);
    v_s := mg_report_scope(p_project, p_key, p_model);
    IF 'hour' = ANY (v_by) AND v_p.until - v_p.since > interval '31 days' THEN
        RAISE EXCEPTION 'by hour, a report covers at most 31 days (group by day for longer)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- without a model or a status in the question, a project's hours,
    -- six-hour blocks, days and months are read from its keys' totals
    -- (grains 'H', 'S', 'D', 'M': one row a key, not one per model and
    -- status; see 011_key_totals.sql)
    v_keys := p_model IS NULL AND NOT ('model' = ANY (v_by) OR 'endpoint' = ANY (v_by)
                                       OR 'status' = ANY (v_by));

    -- the projects to read: one, those of the keys asked for, every one
    -- (v_all: read by bucket, v_pids unused), or all together (project 0:
    -- v_zero).  Never a list of every project: a custom plan holds it as a
    -- constant, and estimating "= ANY" of a thousand values took longer
    -- than the report.
    v_all := false;
    IF v_s.project_id IS NOT NULL THEN
        v_pids := ARRAY[v_s.project_id];
    ELSIF v_s.key_ids IS NOT NULL THEN
        SELECT coalesce(array_agg(DISTINCT k.project_id ORDER BY k.project_id), '{}')
          INTO v_pids
          FROM api_keys k
         WHERE k.id = ANY (v_s.key_ids);
    ELSIF 'project' = ANY (v_by) OR 'key' = ANY (v_by) THEN
        v_all := true;
        v_pids := '{}';
    ELSE
        v_pids := ARRAY[0::bigint];
    END IF;
    v_zero := v_pids = ARRAY[0::bigint];

    -- the intervals grouped: local hours, local days, or the whole period
    IF 'hour' = ANY (v_by) THEN
        SELECT array_agg(greatest(h, v_p.since) ORDER BY h),
               array_agg(least(h + interval '1 hour', v_p.until) ORDER BY h),
               array_agg(mg_report_iso(greatest(h, v_p.since), v_tz) ORDER BY h)
          INTO v_lo, v_hi, v_label
          FROM generate_series(date_trunc('hour', v_p.since AT TIME ZONE v_tz) AT TIME ZONE v_tz,
                               v_p.until - interval '1 microsecond', interval '1 hour') AS h;
    ELSIF 'day' = ANY (v_by) THEN
        SELECT array_agg(greatest(d::timestamp AT TIME ZONE v_tz, v_p.since) ORDER BY d),
               array_agg(least((d + 1)::timestamp AT TIME ZONE v_tz, v_p.until) ORDER BY d),
               array_agg(to_char(d, 'YYYY-MM-DD') ORDER BY d)
          INTO v_lo, v_hi, v_label
          FROM generate_series((v_p.since AT TIME ZONE v_tz)::date,
                               ((v_p.until - interval '1 microsecond') AT TIME ZONE v_tz)::date,
                               interval '1 day') AS g(t),
               LATERAL (SELECT g.t::date AS d) x;
    ELSE
        v_lo := ARRAY[v_p.since];
        v_hi := ARRAY[v_p.until];
        v_label := ARRAY[NULL::text];
    END IF;

    WITH iv AS (
        SELECT i.lo, i.hi, i.label, i.n FROM unnest(v_lo, v_hi, v_label)
               WITH ORDINALITY AS i(lo, hi, label, n)
    ), rn AS (
        SELECT iv.label, iv.n, r.grain, r.lo, r.hi, r.sign
          FROM iv, mg_report_runs(iv.lo, iv.hi, v_keys AND NOT v_zero) AS r
    ), f AS (
        -- the compaction frontier, read in this statement's snapshot (as
        -- one value: joined, it put every row read behind a Materialize)
        SELECT coalesce(s.compacted_until, '-infinity') AS f FROM usage_state s WHERE s.singleton
    ), pend AS MATERIALIZED (
        SELECT r.* FROM usage_rollup_pending p, mg_rollup_rows(p.deltas) AS r
    ), x AS (
        -- before the frontier: the runs of buckets (a project's quarters
        -- are read up to the frontier only, like the coarser rows)
        SELECT rn.label, rn.n, rn.sign, u.*
          FROM rn
          -- one index scan a run, over the projects' ranges of its grain
          -- ("OFFSET 0" keeps the planner from reading every rollup of
          -- the projects and joining the runs to them afterwards) ...
          JOIN LATERAL (
               SELECT * FROM usage_rollup u
                WHERE NOT v_all AND u.project_id = ANY (v_pids)
                  AND u.grain = CASE WHEN v_keys AND NOT v_zero AND rn.grain <> 'q'
                                     THEN upper(rn.grain::text)::"char" ELSE rn.grain END
                  AND u.bucket >= rn.lo AND u.bucket < rn.hi
               OFFSET 0) u ON true
         WHERE (rn.grain <> 'q' OR u.project_id = 0 OR u.bucket < (SELECT f.f FROM f))
           AND (v_s.key_ids IS NULL OR u.key_id = ANY (v_s.key_ids))
           AND (p_model IS NULL OR u.model = p_model)
        UNION ALL
        -- ... or, for every project, one range scan a run over its grain's
        -- buckets (usage_rollup_bucket_idx), not one descent per project
        SELECT rn.label, rn.n, rn.sign, u.*
          FROM rn
          JOIN LATERAL (
               SELECT * FROM usage_rollup u
                WHERE v_all AND u.project_id <> 0
                  AND u.grain = CASE WHEN v_keys AND rn.grain <> 'q'
                                     THEN upper(rn.grain::text)::"char" ELSE rn.grain END
                  AND u.bucket >= rn.lo AND u.bucket < rn.hi
               OFFSET 0) u ON true
         WHERE (rn.grain <> 'q' OR u.bucket < (SELECT f.f FROM f))
           AND (p_model IS NULL OR u.model = p_model)
        UNION ALL
        -- from the frontier on: the projects' quarters
        SELECT iv.label, iv.n, 1, u.*
          FROM iv
          JOIN LATERAL (
               SELECT * FROM usage_rollup u
                WHERE u.grain = 'q' AND u.project_id <> 0
                  AND u.bucket >= greatest(iv.lo, (SELECT f.f FROM f)) AND u.bucket < iv.hi
               OFFSET 0) u ON true
         WHERE iv.hi > (SELECT f.f FROM f) AND (v_zero OR v_all OR u.project_id = ANY (v_pids))
           AND (v_s.key_ids IS NULL OR u.key_id = ANY (v_s.key_ids))
           AND (p_model IS NULL OR u.model = p_model)
        UNION ALL
        -- the pending rows, not folded yet (see 008_rollup_pending.sql),
        -- wherever their quarters are
        SELECT iv.label, iv.n, 1, u.*
          FROM pend u
          JOIN iv ON u.bucket >= iv.lo AND u.bucket < iv.hi
         WHERE (v_zero OR v_all OR u.project_id = ANY (v_pids))
           AND (v_s.key_ids IS NULL OR u.key_id = ANY (v_s.key_ids))
           AND (p_model IS NULL OR u.model = p_model)
    ), g AS (
        -- the groups; none of them is left out here, so that the totals
        -- are their sums
        SELECT CASE WHEN 'project' = ANY (v_by) THEN x.project_id END AS project_id,
               CASE WHEN 'key' = ANY (v_by) THEN x.key_id END AS key_id,
               CASE WHEN 'model' = ANY (v_by) THEN x.model END AS model,
               CASE WHEN 'endpoint' = ANY (v_by) THEN x.endpoint END AS endpoint,
               CASE WHEN 'status' = ANY (v_by) THEN x.status_class END AS status_class,
               x.n, x.label,
               sum(x.sign * x.requests) AS requests,
               sum(x.sign * x.errors) AS errors,
               sum(x.sign * x.prompt_tokens) AS prompt_tokens,
               sum(x.sign * x.completion_tokens) AS completion_tokens,
               sum(x.sign * x.total_tokens) AS total_tokens,
               sum(x.sign * x.cost) AS cost,
               sum(x.sign * x.latency_n) AS latency_n, sum(x.sign * x.latency_ms) AS latency_ms,
               sum(x.sign * x.ttft_n) AS ttft_n, sum(x.sign * x.ttft_ms) AS ttft_ms,
               -- cumulative histograms (see 007_rollup_partitions.sql)
               ARRAY[sum(x.sign * x.l0), sum(x.sign * x.l1), sum(x.sign * x.l2),
                     sum(x.sign * x.l3), sum(x.sign * x.l4), sum(x.sign * x.l5),
                     sum(x.sign * x.l6), sum(x.sign * x.l7), sum(x.sign * x.l8),
                     sum(x.sign * x.l9), sum(x.sign * x.l10), sum(x.sign * x.l11),
                     sum(x.sign * x.l12), sum(x.sign * x.l13), sum(x.sign * x.l14),
                     sum(x.sign * x.l15)]::numeric[] AS lat,
               ARRAY[sum(x.sign * x.t0), sum(x.sign * x.t1), sum(x.sign * x.t2),
                     sum(x.sign * x.t3), sum(x.sign * x.t4), sum(x.sign * x.t5),
                     sum(x.sign * x.t6), sum(x.sign * x.t7), sum(x.sign * x.t8),
                     sum(x.sign * x.t9), sum(x.sign * x.t10), sum(x.sign * x.t11),
                     sum(x.sign * x.t12), sum(x.sign * x.t13), sum(x.sign * x.t14),
                     sum(x.sign * x.t15)]::numeric[] AS ttft
          FROM x
         GROUP BY 1, 2, 3, 4, 5, x.n, x.label
    ), t AS (
        SELECT sum(g.requests) AS requests, sum(g.errors) AS errors,
               sum(g.prompt_tokens) AS prompt_tokens,
               sum(g.completion_tokens) AS completion_tokens,
               sum(g.total_tokens) AS total_tokens, sum(g.cost) AS cost,
               sum(g.latency_n) AS latency_n, sum(g.latency_ms) AS latency_ms,
               sum(g.ttft_n) AS ttft_n, sum(g.ttft_ms) AS ttft_ms,
               ARRAY[sum(g.lat[1]), sum(g.lat[2]), sum(g.lat[3]), sum(g.lat[4]), sum(g.lat[5]), sum(g.lat[6]), sum(g.lat[7]), sum(g.lat[8]), sum(g.lat[9]), sum(g.lat[10]), sum(g.lat[11]), sum(g.lat[12]), sum(g.lat[13]), sum(g.lat[14]), sum(g.lat[15]), sum(g.lat[16])] AS lat,
               ARRAY[sum(g.ttft[1]), sum(g.ttft[2]), sum(g.ttft[3]), sum(g.ttft[4]), sum(g.ttft[5]), sum(g.ttft[6]), sum(g.ttft[7]), sum(g.ttft[8]), sum(g.ttft[9]), sum(g.ttft[10]), sum(g.ttft[11]), sum(g.ttft[12]), sum(g.ttft[13]), sum(g.ttft[14]), sum(g.ttft[15]), sum(g.ttft[16])] AS ttft
          FROM g
    ), d AS (
        -- each group with requests as the members of its dimensions, then
        -- those of its metrics (JSON text: the items are joined as text
        -- and parsed once)
        SELECT g.n, g.cost, g.requests, pr.name, ak.prefix, g.model, g.endpoint,
               g.status_class,
               concat('{',
                   CASE WHEN 'project' = ANY (v_by) THEN mg_report_member('project', pr.name) END,
                   CASE WHEN 'key' = ANY (v_by)
                        THEN mg_report_member('key', ak.prefix)
                             || mg_report_member('key_name', ak.name) END,
                   CASE WHEN 'model' = ANY (v_by)
                        THEN mg_report_member('model', nullif(g.model, '')) END,
                   CASE WHEN 'endpoint' = ANY (v_by)
                        THEN mg_report_member('endpoint', g.endpoint) END,
                   CASE WHEN 'status' = ANY (v_by)
                        THEN mg_report_member('status', nullif(g.status_class, 0) || 'xx') END,
                   CASE WHEN 'day' = ANY (v_by) THEN mg_report_member('day', g.label)
                        WHEN 'hour' = ANY (v_by) THEN mg_report_member('hour', g.label) END,
                   mg_report_metrics_tail(g.requests, g.errors, g.prompt_tokens,
                       g.completion_tokens, g.total_tokens, g.cost, g.latency_n,
                       g.latency_ms, g.ttft_n, g.ttft_ms, g.lat, g.ttft)) AS item
          FROM g
          LEFT JOIN projects pr ON pr.id = g.project_id
          LEFT JOIN api_keys ak ON ak.id = g.key_id
         WHERE g.requests > 0
    )
    SELECT json_build_object(
               'object', 'usage',
               'timezone', v_tz,
               'period', json_build_object('since', mg_report_iso(v_p.since, v_tz),
                                           'until', mg_report_iso(v_p.until, v_tz)),
               'group_by', to_json(v_by),
               'filters', json_build_object('project', p_project, 'key', p_key,
                                            'model', p_model),
               'data', (SELECT coalesce('[' || string_agg(d.item, ', '
                                                   ORDER BY d.n, d.cost DESC, d.requests DESC,
                                                            d.name, d.prefix, d.model, d.endpoint,
                                                            d.status_class) || ']', '[]')::json
                          FROM d),
               'totals', (SELECT ('{' || mg_report_metrics_tail(t.requests, t.errors,
                                     t.prompt_tokens, t.completion_tokens, t.total_tokens,
                                     t.cost, t.latency_n, t.latency_ms, t.ttft_n, t.ttft_ms,
                                     t.lat, t.ttft))::json
                            FROM t))
      INTO v_out;
    RETURN v_out;
END
$$;

-- The latest requests (newest first) of the project p_project (NULL: all),
-- the keys starting with p_key, the model p_model and the status p_status
-- (2xx, 4xx, 5xx, pending, or one code such as 429), admitted in
-- [since, until) (p_since NULL: any time), at most p_limit (1 to 1000) of
-- them, after the cursor p_cursor (the next_cursor of the page before).
-- Returns
--   {"object": "list", "timezone", "period": {"since", "until"},
--    "filters": {...}, "data": [{"id", "created_at", "project", "key",
--    "model", "endpoint", "stream", "status" (NULL while pending), "pending",
--    "error_type", "prompt_tokens",
--    "completion_tokens", "total_tokens", "cost", "cost_source",
--    "latency_ms", "ttft_ms"}...], "has_more", "next_cursor"}
-- Refuses a since before the months pruned.
CREATE OR REPLACE FUNCTION mg_usage_requests(p_project text, p_key text, p_model text,
    p_status text, p_since text, p_until text, p_tz text, p_limit integer,
    p_cursor text, p_max_days integer, p_now timestamptz DEFAULT NULL)
RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_now     timestamptz := coalesce(p_now, now());
    v_tz      text := mg_report_zone(coalesce(p_tz, 'UTC'));
    v_p       record;
    v_s       record;
    v_pruned  timestamptz;
    v_lo      integer;
    v_hi      integer;
    v_cur_at  timestamptz;
    v_cur_id  bigint;
    v_m       text[];
    v_where   text := 'u.created_at < $1';
    v_rows    json;
    v_n       integer;
    v_last_at timestamptz;
    v_last_id bigint;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        RAISE EXCEPTION 'limit must be a whole number from 1 to 1000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_p := mg_report_period(p_since, p_until, v_tz, v_now, false, p_max_days);
    v_s := mg_report_scope(p_project, p_key, p_model);
    SELECT s.pruned_before INTO v_pruned FROM usage_state s WHERE s.singleton;
    IF v_pruned IS NOT NULL AND v_p.since IS NOT NULL AND v_p.since < v_pruned THEN
        RAISE EXCEPTION 'the requests before % were pruned (their totals are kept: see usage)',
            mg_report_iso(v_pruned, v_tz) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_status IS NOT NULL THEN
        CASE
        WHEN p_status ~ '^[1-5]xx$' THEN
            v_lo := left(p_status, 1)::integer * 100;  v_hi := v_lo + 99;
        WHEN p_status ~ '^[1-5][0-9][0-9]$' THEN
            v_lo := p_status::integer;  v_hi := v_lo;
        WHEN p_status = 'pending' THEN
            NULL;
        ELSE
            RAISE EXCEPTION 'status "%" is not 2xx, 4xx, 5xx, pending or a code such as 429',
                left(p_status, 16) USING ERRCODE = 'invalid_parameter_value';
        END CASE;
    END IF;
    IF p_cursor IS NOT NULL THEN
        v_m := regexp_match(p_cursor, '^c([0-9]{1,18})_([0-9]{1,18})$');
        IF v_m IS NULL THEN
            RAISE EXCEPTION 'cursor "%" is not one this gateway gave', left(p_cursor, 48)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_cur_at := timestamptz 'epoch' + v_m[1]::bigint * interval '1 microsecond';
        v_cur_id := v_m[2]::bigint;
    END IF;

    -- only the conditions that apply, so that the plan uses the indexes;
    -- the values are parameters, never text of the statement
    IF v_p.since IS NOT NULL THEN
        v_where := v_where || ' AND u.created_at >= $2';
    END IF;
    IF v_s.project_id IS NOT NULL THEN
        v_where := v_where || ' AND u.project_id = $3';
    END IF;
    IF v_s.key_ids IS NOT NULL THEN
        v_where := v_where || ' AND u.key_id = ANY ($4)';
    END IF;
    IF p_model IS NOT NULL THEN
        v_where := v_where || ' AND u.model = $5';
    END IF;
    IF p_status = 'pending' THEN
        v_where := v_where || ' AND u.settled_at IS NULL';
    ELSIF p_status IS NOT NULL THEN
        v_where := v_where || ' AND u.status BETWEEN $6 AND $7';
    END IF;
    IF v_cur_at IS NOT NULL THEN
        v_where := v_where || ' AND (u.created_at, u.id) < ($8, $9)';
    END IF;

    EXECUTE format($q$
        SELECT json_agg(json_build_object(
                   'id', r.request_id, 'created_at', mg_report_iso(r.created_at, $10),
                   'project', p.name, 'key', k.prefix, 'model', r.model,
                   'endpoint', r.endpoint, 'stream', r.stream,
                   'status', r.status, 'pending', r.settled_at IS NULL,
                   'error_type', r.error_type, 'prompt_tokens', r.prompt_tokens,
                   'completion_tokens', r.completion_tokens, 'total_tokens', r.total_tokens,
                   'cost', trim_scale(r.cost)::text, 'cost_source', r.cost_source,
                   'latency_ms', r.latency_ms, 'ttft_ms', r.ttft_ms)
                   ORDER BY r.created_at DESC, r.id DESC) FILTER (WHERE r.n <= $11),
               count(*),
               (array_agg(r.created_at ORDER BY r.created_at DESC, r.id DESC)
                    FILTER (WHERE r.n = $11))[1],
               (array_agg(r.id ORDER BY r.created_at DESC, r.id DESC)
                    FILTER (WHERE r.n = $11))[1]
          FROM (SELECT u.*, row_number() OVER (ORDER BY u.created_at DESC, u.id DESC) AS n
                  FROM (SELECT u.* FROM usage_events u WHERE %s
                         ORDER BY u.created_at DESC, u.id DESC LIMIT $11 + 1) u) r
          LEFT JOIN projects p ON p.id = r.project_id
          LEFT JOIN api_keys k ON k.id = r.key_id $q$, v_where)
      INTO v_rows, v_n, v_last_at, v_last_id
      USING v_p.until, v_p.since, v_s.project_id, v_s.key_ids, p_model, v_lo, v_hi,
            v_cur_at, v_cur_id, v_tz, p_limit;
    RETURN json_build_object(
        'object', 'list', 'timezone', v_tz,
        'period', json_build_object('since', mg_report_iso(v_p.since, v_tz),
                                    'until', mg_report_iso(v_p.until, v_tz)),
        'filters', json_build_object('project', p_project, 'key', p_key, 'model', p_model,
                                     'status', p_status),
        'data', coalesce(v_rows, '[]'),
        'has_more', v_n > p_limit,
        'next_cursor', CASE WHEN v_n > p_limit THEN
            'c' || (extract(epoch FROM v_last_at) * 1000000)::bigint || '_' || v_last_id END);
END
$$;

-- Each project's limits and where it stands now: of p_project (NULL:
-- every project), at p_now.  Returns
--   {"object": "list", "data": [{"project", "period": {"kind", "timezone",
--    "start", "end"}, "spend_cap", "spent", "reserved", "remaining",
--    "rpm": {"limit", "remaining", "reset_ms"}, "tpm": {...},
--    "models"}...]}
-- The spend period is a calendar month in UTC (or all time); spent and
-- reserved are as admission sees them.
CREATE OR REPLACE FUNCTION mg_usage_quota(p_project text, p_now timestamptz DEFAULT NULL)
RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_now  timestamptz := coalesce(p_now, now());
    v_s    record;
    v_out  json;
BEGIN
    v_s := mg_report_scope(p_project, NULL, NULL);
    SELECT json_agg(json_build_object(
               'project', x.name,
               'period', json_build_object('kind', x.cap_period, 'timezone', 'UTC',
                   'start', mg_iso_time(x.start),
                   'end', CASE WHEN x.cap_period = 'month' THEN
                              mg_iso_time((x.start AT TIME ZONE 'UTC' + interval '1 month')
                                          AT TIME ZONE 'UTC') END),
               'spend_cap', trim_scale(x.spend_cap)::text,
               'spent', trim_scale(x.spent)::text,
               'reserved', trim_scale(x.reserved)::text,
               'remaining', CASE WHEN x.spend_cap IS NOT NULL THEN
                   trim_scale(greatest(x.spend_cap - x.spent - x.reserved, 0))::text END,
               'rpm', CASE WHEN x.rpm IS NOT NULL THEN json_build_object('limit', x.rpm,
                          'remaining', (mg_bucket_window(x.rpm, x.req)).remaining,
                          'reset_ms', (mg_bucket_window(x.rpm, x.req)).reset_ms) END,
               'tpm', CASE WHEN x.tpm IS NOT NULL THEN json_build_object('limit', x.tpm,
                          'remaining', (mg_bucket_window(x.tpm, x.tok)).remaining,
                          'reset_ms', (mg_bucket_window(x.tpm, x.tok)).reset_ms) END,
               'models', CASE WHEN cardinality(x.allowed_models) > 0
                              THEN to_json(x.allowed_models) END)
               ORDER BY x.name)
      INTO v_out
      FROM (SELECT p.name, p.cap_period, p.spend_cap, p.rpm, p.tpm, p.allowed_models,
                   greatest(q.period_start, mg_period_start(p.cap_period, v_now)) AS start,
                   CASE WHEN mg_period_start(p.cap_period, v_now) > q.period_start
                        THEN 0 ELSE q.spent END AS spent,
                   q.reserved,
                   mg_bucket_refill(p.rpm, q.req_level, v_now - q.level_at) AS req,
                   mg_bucket_refill(p.tpm, q.tok_level, v_now - q.level_at) AS tok
              FROM projects p JOIN project_quota q ON q.project_id = p.id
             WHERE v_s.project_id IS NULL OR p.id = v_s.project_id) x;
    RETURN json_build_object('object', 'list', 'data', coalesce(v_out, '[]'));
END
$$;

-- The reconciliation of [since, until) (whole UTC days: the upstream's
-- activity counts a request in the UTC day it started), per day and
-- model: requests, what the gateway recorded, the adjustments, what it
-- charged (both), what the upstream billed by the latest daily close,
-- the difference, and the rows by reconciliation state; with the
-- reconciled-through watermark (every row admitted before it is in a
-- final state) and the generations the upstream never knew.  p_now
-- replaces the clock (tests).  Returns
--   {"object": "reconciliation", "timezone": "UTC", "period": {"since", "until"},
--    "reconciled_through", "data": [{"day", "model", "requests", "recorded",
--    "adjustments", "charged", "upstream", "difference", "states": {...}}...],
--    "unmatched": [{"id", "generation_id", "created_at", "model"}...],
--    "totals": {"requests", "recorded", "adjustments", "charged", "upstream",
--    "difference", "states"}}
-- with money as decimal strings (upstream and difference null for a day
-- not closed yet).
CREATE OR REPLACE FUNCTION mg_recon_report(p_since text, p_until text, p_max_days integer,
    p_now timestamptz DEFAULT NULL)
RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_now   timestamptz := coalesce(p_now, now());
    v_p     record;
    v_since timestamptz;
    v_until timestamptz;
    v_mark  timestamptz;
    v_out   json;
BEGIN
    v_p := mg_report_period(coalesce(p_since, '7d'), p_until, 'UTC', v_now, false, p_max_days);
    v_since := date_trunc('day', v_p.since, 'UTC');
    v_until := date_trunc('day', v_p.until, 'UTC');
    IF v_until < v_p.until THEN
        v_until := v_until + interval '1 day';
    END IF;
    v_mark := mg_recon_watermark();
    WITH r AS (
        SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, coalesce(u.model, '') AS model,
               u.recon_state, u.cost, a.amount
          FROM usage_events u
          LEFT JOIN usage_adjustments a
                 ON a.request_id = u.request_id AND a.created_at = u.created_at
         WHERE u.created_at >= v_since AND u.created_at < v_until AND u.settled_at IS NOT NULL
    ), c AS (
        -- the latest close of each day and model
        SELECT DISTINCT ON (c.day, c.model) c.day, c.model, c.upstream
          FROM recon_closes c
         WHERE c.day >= (v_since AT TIME ZONE 'UTC')::date
           AND c.day < (v_until AT TIME ZONE 'UTC')::date AND c.model <> ''
         ORDER BY c.day, c.model, c.closed_at DESC, c.id DESC
    ), g0 AS (
        SELECT r.day, r.model, count(*) AS requests, coalesce(sum(r.cost), 0) AS recorded,
               coalesce(sum(r.amount), 0) AS adjustments,
               count(*) FILTER (WHERE r.recon_state = 'recorded') AS s_recorded,
               count(*) FILTER (WHERE r.recon_state = 'confirmed') AS s_confirmed,
               count(*) FILTER (WHERE r.recon_state = 'adjusted') AS s_adjusted,
               count(*) FILTER (WHERE r.recon_state = 'missing_upstream') AS s_missing,
               count(*) FILTER (WHERE r.recon_state = 'no_id') AS s_no_id,
               count(*) FILTER (WHERE r.recon_state = 'unsupported') AS s_unsupported
          FROM r GROUP BY r.day, r.model
    ), g AS (
        -- a model the upstream billed and the gateway never counted, too
        SELECT coalesce(g0.day, c.day) AS day, coalesce(g0.model, c.model) AS model,
               coalesce(g0.requests, 0) AS requests, coalesce(g0.recorded, 0) AS recorded,
               coalesce(g0.adjustments, 0) AS adjustments,
               coalesce(g0.s_recorded, 0) AS s_recorded,
               coalesce(g0.s_confirmed, 0) AS s_confirmed,
               coalesce(g0.s_adjusted, 0) AS s_adjusted, coalesce(g0.s_missing, 0) AS s_missing,
               coalesce(g0.s_no_id, 0) AS s_no_id,
               coalesce(g0.s_unsupported, 0) AS s_unsupported, c.upstream
          FROM g0 FULL JOIN c ON c.day = g0.day AND c.model = g0.model
    ), d AS (
        SELECT g.*, g.recorded + g.adjustments AS charged,
               g.upstream - (g.recorded + g.adjustments) AS difference
          FROM g
    )
    SELECT json_build_object(
        'object', 'reconciliation', 'timezone', 'UTC',
        'period', json_build_object('since', mg_report_iso(v_since, 'UTC'),
                                    'until', mg_report_iso(v_until, 'UTC')),
        'reconciled_through', mg_report_iso(coalesce(v_mark, v_now), 'UTC'),
        -- the latest close's account row: all the upstream ever billed the
        -- account, next to all the gateway ever charged
        'account', (SELECT json_build_object('day', to_char(k.day, 'YYYY-MM-DD'),
                        'closed_at', mg_report_iso(k.closed_at, 'UTC'),
                        'upstream', trim_scale(k.upstream)::text,
                        'charged', trim_scale(k.gateway)::text,
                        'difference', trim_scale(k.difference)::text)
                      FROM recon_closes k WHERE k.model = ''
                     ORDER BY k.closed_at DESC, k.id DESC LIMIT 1),
        'data', coalesce((SELECT json_agg(json_build_object(
                    'day', to_char(d.day, 'YYYY-MM-DD'), 'model', nullif(d.model, ''),
                    'requests', d.requests, 'recorded', trim_scale(d.recorded)::text,
                    'adjustments', trim_scale(d.adjustments)::text,
                    'charged', trim_scale(d.charged)::text,
                    'upstream', trim_scale(d.upstream)::text,
                    'difference', trim_scale(d.difference)::text,
                    'states', json_build_object('recorded', d.s_recorded,
                        'confirmed', d.s_confirmed, 'adjusted', d.s_adjusted,
                        'missing_upstream', d.s_missing, 'no_id', d.s_no_id,
                        'unsupported', d.s_unsupported))
                    ORDER BY d.day, d.charged DESC, d.model) FROM d), '[]'),
        'unmatched', coalesce((SELECT json_agg(json_build_object(
                    'id', u.request_id, 'generation_id', u.upstream_id,
                    'created_at', mg_report_iso(u.created_at, 'UTC'), 'model', u.model)
                    ORDER BY u.created_at, u.request_id)
                  FROM (SELECT * FROM usage_events u
                         WHERE u.created_at >= v_since AND u.created_at < v_until
                           AND u.recon_state = 'missing_upstream'
                         ORDER BY u.created_at, u.request_id LIMIT 100) u), '[]'),
        'totals', (SELECT json_build_object('requests', coalesce(sum(d.requests), 0),
                    'recorded', coalesce(trim_scale(sum(d.recorded)), 0)::text,
                    'adjustments', coalesce(trim_scale(sum(d.adjustments)), 0)::text,
                    'charged', coalesce(trim_scale(sum(d.charged)), 0)::text,
                    'upstream', trim_scale(sum(d.upstream))::text,
                    'difference', trim_scale(sum(d.difference))::text,
                    'states', json_build_object('recorded', coalesce(sum(d.s_recorded), 0),
                        'confirmed', coalesce(sum(d.s_confirmed), 0),
                        'adjusted', coalesce(sum(d.s_adjusted), 0),
                        'missing_upstream', coalesce(sum(d.s_missing), 0),
                        'no_id', coalesce(sum(d.s_no_id), 0),
                        'unsupported', coalesce(sum(d.s_unsupported), 0)))
                     FROM d))
      INTO v_out;
    RETURN v_out;
END
$$;

-- The models project p_project may use (NULL: the whole catalog), by id,
-- with their prices in USD per token and per million tokens (exact
-- decimal text), grouped by provider (the part of the id before '/').
-- Models the project is allowed but the catalog does not hold are listed
-- without prices.
CREATE OR REPLACE FUNCTION mg_usage_models(p_project text)
RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_s       record;
    v_allowed text[];
    v_out     json;
BEGIN
    v_s := mg_report_scope(p_project, NULL, NULL);
    SELECT p.allowed_models INTO v_allowed FROM projects p WHERE p.id = v_s.project_id;
    IF cardinality(v_allowed) = 0 THEN
        v_allowed := NULL;
    END IF;
    SELECT json_agg(json_build_object(
               'id', x.id, 'provider', split_part(x.id, '/', 1), 'kind', x.kind,
               'name', x.name, 'context_length', x.context_length,
               'prompt_price', trim_scale(x.prompt_price)::text,
               'completion_price', trim_scale(x.completion_price)::text,
               'prompt_per_million', trim_scale(x.prompt_price * 1000000)::text,
               'completion_per_million', trim_scale(x.completion_price * 1000000)::text,
               'in_catalog', x.synced_at IS NOT NULL,
               'synced_at', mg_iso_time(x.synced_at))
               ORDER BY x.id)
      INTO v_out
      FROM (SELECT m.id, m.kind, m.name, m.context_length, m.prompt_price,
                   m.completion_price, m.synced_at
              FROM models m
             WHERE v_allowed IS NULL OR m.id = ANY (v_allowed)
            UNION ALL
            SELECT a.id, NULL, NULL, NULL, NULL, NULL, NULL
              FROM unnest(v_allowed) AS a(id)
             WHERE NOT EXISTS (SELECT 1 FROM models m WHERE m.id = a.id)) x;
    RETURN json_build_object('object', 'list', 'project', p_project,
        'allowed', to_json(v_allowed), 'data', coalesce(v_out, '[]'));
END
$$;

-- Every project: its limits, live keys and when it was made (the
-- operator's view; this period's money is mg_usage_quota's).
CREATE OR REPLACE FUNCTION mg_usage_projects()
RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('object', 'list', 'data', coalesce(json_agg(json_build_object(
               'project', p.name, 'created_at', mg_iso_time(p.created_at),
               'keys', (SELECT count(*) FROM api_keys k
                         WHERE k.project_id = p.id AND k.revoked_at IS NULL),
               'spend_cap', trim_scale(p.spend_cap)::text, 'period', p.cap_period,
               'rpm', p.rpm, 'tpm', p.tpm,
               'models', CASE WHEN cardinality(p.allowed_models) > 0
                              THEN to_json(p.allowed_models) END)
               ORDER BY p.name), '[]'))
      FROM projects p
$$;
