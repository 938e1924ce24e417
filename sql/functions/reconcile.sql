-- Reconciliation: each usage row's cost checked against what the upstream
-- billed for its generation (the responders' upkeep looks the ids up, see
-- lib/reconcile.c), the differences appended as adjustments, and the
-- daily close against the upstream's activity.  States: see
-- 009_reconciliation.sql.
--
-- Money rule: what a request is charged is its recorded cost plus its
-- adjustments (exact numeric); an adjustment counts in its project's
-- spent for the period the request was admitted in, as its cost did.
--
-- Lock order: a usage row, then its project's counter row, as settlement.

-- The lookups of a generation that found nothing wait this long before
-- the next one (1 s, 10 s, 1 min, 10 min, 1 h); after the last, the row is
-- missing_upstream.
CREATE OR REPLACE FUNCTION mg_recon_backoff()
RETURNS interval[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT '{1 second, 10 seconds, 1 minute, 10 minutes, 1 hour}'::interval[]
$$;

-- The state of a usage row settled now with the generation id
-- p_upstream_id: no id, no_id; else recorded.
CREATE OR REPLACE FUNCTION mg_recon_state(p_upstream_id text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_upstream_id IS NULL THEN 'no_id' ELSE 'recorded' END
$$;

-- When a usage row settled at p_now with the generation id
-- p_upstream_id and cost source p_source is first looked up (after the
-- first delay): when its cost was not the upstream's own (the catalog's,
-- the reservation's, none) or when the caller asks (p_check: an aborted
-- or drained stream, or reconcile.verify = "all"); else NULL, never.
-- Scalar and STABLE (as timestamptz + interval is), so that the planner
-- inlines it into settlement's statement: called as a function, it took
-- 0.2 ms of a settlement of 16.
CREATE OR REPLACE FUNCTION mg_recon_first_at(p_upstream_id text, p_source text,
    p_check boolean, p_now timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_upstream_id IS NOT NULL
                     AND (coalesce(p_check, false) OR p_source IS DISTINCT FROM 'upstream')
                THEN p_now + (mg_recon_backoff())[1] END
$$;

-- Replaced by the two above.
DROP FUNCTION IF EXISTS mg_recon_initial(text, text, boolean, timestamptz);

-- Moves the rows settlement queued for a lookup (see 012_recon_queue.sql)
-- into their recon_next_at, where mg_recon_claim finds them: every queue
-- row no other transaction is taking.  A row that is no longer waiting
-- for its first lookup (pruned, or in a final state) is left as it is.
-- Returns how many rows it scheduled.
CREATE OR REPLACE FUNCTION mg_recon_dequeue()
RETURNS integer
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_ids  text[];
    v_ats  timestamptz[];
    v_due  timestamptz[];
    v_lo   timestamptz;
    v_hi   timestamptz;
    n      integer;
BEGIN
    WITH q AS (
        DELETE FROM recon_queue q
         WHERE q.ctid = ANY (ARRAY(SELECT c.ctid FROM recon_queue c FOR UPDATE SKIP LOCKED))
        RETURNING q.*
    )
    SELECT array_agg(x.id), array_agg(x.at), array_agg(q.due_at), min(x.at), max(x.at)
      INTO v_ids, v_ats, v_due, v_lo, v_hi
      FROM q, unnest(q.request_ids, q.created_ats) AS x(id, at);
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    -- the partitions of [v_lo, v_hi] only, pruned as the statement starts
    UPDATE usage_events u SET recon_next_at = x.due
      FROM unnest(v_ids, v_ats, v_due) AS x(id, at, due)
     WHERE u.created_at >= v_lo AND u.created_at <= v_hi
       AND u.request_id = x.id AND u.created_at = x.at
       AND u.recon_state = 'recorded' AND u.recon_next_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- How many usage rows wait for a lookup: queued, or with a recon_next_at.
CREATE OR REPLACE FUNCTION mg_recon_waiting()
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM usage_events u WHERE u.recon_next_at IS NOT NULL)
           + coalesce((SELECT sum(cardinality(q.request_ids)) FROM recon_queue q), 0)
$$;

-- Takes up to p_limit usage rows due for a lookup, oldest first, and
-- leases them for p_lease (another process takes them only after that:
-- this one died).  Rows another transaction holds are skipped, so any
-- number of responders on any number of hosts share the work and look
-- each row up once.
CREATE OR REPLACE FUNCTION mg_recon_claim(p_limit integer, p_lease interval,
    p_now timestamptz DEFAULT NULL)
RETURNS TABLE (request_id text, created_at timestamptz, upstream_id text, tries integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
    PERFORM mg_recon_dequeue();
    RETURN QUERY
    WITH c AS (
        SELECT u.request_id, u.created_at FROM usage_events u
         WHERE u.recon_next_at <= v_now
         ORDER BY u.recon_next_at
         LIMIT greatest(p_limit, 0)
           FOR UPDATE SKIP LOCKED
    )
    UPDATE usage_events u SET recon_next_at = v_now + p_lease
      FROM c
     WHERE u.request_id = c.request_id AND u.created_at = c.created_at
    RETURNING u.request_id, u.created_at, u.upstream_id, u.recon_tries::integer;
END
$$;

-- mg_recon_apply returned only the row's state before it returned the
-- adjustment too: that one is dropped (see mg_settle_batch).
DO $$
BEGIN
    IF (SELECT p.prorettype FROM pg_proc p
         WHERE p.oid = to_regprocedure('mg_recon_apply(text, timestamptz, numeric, timestamptz)'))
       = 'text'::regtype THEN
        DROP FUNCTION mg_recon_apply(text, timestamptz, numeric, timestamptz);
    END IF;
END
$$;

-- The upstream billed p_billed (USD) for the generation of the usage row
-- (p_request_id, p_created_at).  Equal to what the row is charged:
-- confirmed.  Different: an adjustment of the difference is appended, the
-- project's spent and the rollups change with it, and the row is
-- adjusted.  A row in a final state already is left as it is (another
-- process got there first).  Returns the row's state afterwards (state,
-- NULL when there is no such row) and the adjustment appended (amount,
-- USD: negative when the charge went down; NULL when none was).
CREATE OR REPLACE FUNCTION mg_recon_apply(p_request_id text, p_created_at timestamptz,
    p_billed numeric, p_now timestamptz DEFAULT NULL, OUT state text, OUT amount numeric)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now     timestamptz := coalesce(p_now, clock_timestamp());
    u         usage_events;
    v_charged numeric;
    v_diff    numeric;
BEGIN
    IF p_billed IS NULL OR p_billed < 0 THEN
        RAISE EXCEPTION 'a billed cost is a number of USD, 0 or more'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO u FROM usage_events e
     WHERE e.request_id = p_request_id AND e.created_at = p_created_at
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF u.settled_at IS NULL OR u.recon_state <> 'recorded' THEN
        state := u.recon_state;
        RETURN;
    END IF;
    v_charged := coalesce(u.cost, 0) + coalesce((SELECT sum(a.amount) FROM usage_adjustments a
                                                   WHERE a.request_id = u.request_id
                                                     AND a.created_at = u.created_at), 0);
    v_diff := p_billed - v_charged;
    IF v_diff <> 0 THEN
        INSERT INTO usage_adjustments (request_id, created_at, project_id, model, recorded,
               upstream, amount, source, made_at)
        VALUES (u.request_id, u.created_at, u.project_id, u.model, v_charged, p_billed,
               v_diff, 'generation', v_now);
        UPDATE project_quota q
           SET spent = q.spent + CASE WHEN u.created_at >= q.period_start THEN v_diff ELSE 0 END
         WHERE q.project_id = u.project_id;
        -- a change of cost only: no request, no tokens, no latency
        PERFORM mg_rollup_add(ARRAY[ROW(u.created_at, u.project_id, u.key_id, u.model,
                                        u.endpoint, u.status, 0, NULL, NULL, NULL, v_diff,
                                        NULL, NULL)::mg_usage_delta]);
    END IF;
    UPDATE usage_events e
       SET recon_state = CASE WHEN v_diff = 0 THEN 'confirmed' ELSE 'adjusted' END,
           upstream_cost = p_billed, recon_next_at = NULL
     WHERE e.request_id = u.request_id AND e.created_at = u.created_at;
    state := CASE WHEN v_diff = 0 THEN 'confirmed' ELSE 'adjusted' END;
    amount := nullif(v_diff, 0);
END
$$;

-- The upstream did not know the generation of the usage row yet: the
-- next lookup after the next delay of mg_recon_backoff(), or, after the
-- last, missing_upstream.  Returns the row's state afterwards.
CREATE OR REPLACE FUNCTION mg_recon_retry(p_request_id text, p_created_at timestamptz,
    p_now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now   timestamptz := coalesce(p_now, clock_timestamp());
    v_b     constant interval[] := mg_recon_backoff();
    v_state text;
BEGIN
    UPDATE usage_events e
       SET recon_tries = e.recon_tries + 1,
           recon_state = CASE WHEN e.recon_tries + 1 >= cardinality(v_b)
                              THEN 'missing_upstream' ELSE e.recon_state END,
           recon_next_at = CASE WHEN e.recon_tries + 1 >= cardinality(v_b) THEN NULL
                                ELSE v_now + v_b[e.recon_tries + 2] END
     WHERE e.request_id = p_request_id AND e.created_at = p_created_at
       AND e.recon_state = 'recorded' AND e.recon_next_at IS NOT NULL
    RETURNING e.recon_state INTO v_state;
    RETURN v_state;
END
$$;

-- The upstream has no per-generation API: every row waiting for a lookup
-- becomes unsupported, at once.  Returns how many.
CREATE OR REPLACE FUNCTION mg_recon_unsupported()
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM mg_recon_dequeue();
    UPDATE usage_events e SET recon_state = 'unsupported', recon_next_at = NULL
     WHERE e.recon_next_at IS NOT NULL AND e.recon_state = 'recorded';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Keeps the generation ids seen on answers still running (p_rows: a JSON
-- array of {"id": request id, "u": generation id}), so that a request
-- whose responder dies can still be looked up after the reaper charged
-- it.  An id is kept once; rows settled already keep theirs.  Returns how
-- many were kept.
CREATE OR REPLACE FUNCTION mg_recon_note_ids(p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n integer;
BEGIN
    UPDATE usage_events u SET upstream_id = x.u
      FROM jsonb_to_recordset(p_rows) AS x(id text, u text)
      JOIN reservations r ON r.request_id = x.id
     WHERE u.request_id = x.id AND u.created_at = r.created_at
       AND u.upstream_id IS NULL AND u.settled_at IS NULL
       AND x.u IS NOT NULL AND x.u <> '' AND length(x.u) <= 128;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Rows that no adjustment may change or remove.
CREATE OR REPLACE FUNCTION mg_keep_adjustments() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'usage adjustments are appended only (%)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE TRIGGER usage_adjustments_append_only
    BEFORE UPDATE OR DELETE ON usage_adjustments
    FOR EACH ROW EXECUTE FUNCTION mg_keep_adjustments();
CREATE OR REPLACE TRIGGER usage_adjustments_no_truncate
    BEFORE TRUNCATE ON usage_adjustments
    FOR EACH STATEMENT EXECUTE FUNCTION mg_keep_adjustments();

-- The daily close.  Once the upstream has closed a UTC day (p_after
-- after its end: OpenRouter counts a day's activity by request start and
-- asks for about 30 minutes), the gateway's charge per model for the day
-- is set next to what the upstream's activity says it billed, and the
-- account's all-time usage next to the gateway's all-time charge.

-- The gateway's rows of UTC day p_day per model: generations (rows with
-- a generation id), recorded cost and adjustments.
CREATE OR REPLACE FUNCTION mg_recon_day(p_day date)
RETURNS TABLE (model text, requests bigint, recorded numeric, adjustments numeric)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(u.model, ''), count(*) FILTER (WHERE u.upstream_id IS NOT NULL),
           coalesce(sum(u.cost), 0), coalesce(sum(a.amount), 0)
      FROM usage_events u
      LEFT JOIN usage_adjustments a
             ON a.request_id = u.request_id AND a.created_at = u.created_at
     WHERE u.created_at >= p_day::timestamp AT TIME ZONE 'UTC'
       AND u.created_at < (p_day + 1)::timestamp AT TIME ZONE 'UTC'
       AND u.settled_at IS NOT NULL
     GROUP BY 1
$$;

-- The reconciled-through watermark: the creation time of the oldest
-- request not in a final state (pending, or waiting for a lookup); NULL
-- when there is none.
CREATE OR REPLACE FUNCTION mg_recon_watermark()
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT least((SELECT min(r.created_at) FROM reservations r),
                 (SELECT min(u.created_at) FROM usage_events u
                   WHERE u.recon_next_at IS NOT NULL),
                 (SELECT min(a) FROM recon_queue q, unnest(q.created_ats) AS a))
$$;

-- The UTC days due for a close at p_now, oldest first: ended p_after ago
-- or more, at most 30 days ago (the upstream's activity reaches no
-- further), not before the first day the gateway counted, not closed and
-- not being closed.  A day whose requests are still waiting for their
-- lookups (the reconciled-through watermark is inside it) waits for them
-- up to two hours more, so that the close compares reconciled rows.
CREATE OR REPLACE FUNCTION mg_recon_close_due(p_after interval, p_now timestamptz)
RETURNS SETOF date
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_today date := (p_now AT TIME ZONE 'UTC')::date;
    v_first date;
    v_mark  timestamptz;
BEGIN
    SELECT (min(r.bucket) AT TIME ZONE 'UTC')::date INTO v_first
      FROM usage_rollup r WHERE r.grain = 'M';
    IF v_first IS NULL THEN
        RETURN;
    END IF;
    v_mark := mg_recon_watermark();
    RETURN QUERY
    SELECT d::date FROM generate_series(greatest(v_first, v_today - 30), v_today - 1,
                                        interval '1 day') AS d
     WHERE (d::date + 1)::timestamp AT TIME ZONE 'UTC' + p_after <= p_now
       AND (v_mark IS NULL OR v_mark >= (d::date + 1)::timestamp AT TIME ZONE 'UTC'
            OR (d::date + 1)::timestamp AT TIME ZONE 'UTC' + p_after + interval '2 hours'
               <= p_now)
       AND NOT EXISTS (SELECT 1 FROM recon_close_runs c
                        WHERE c.day = d::date
                          AND (c.closed_at IS NOT NULL OR c.lease_until > p_now))
     ORDER BY 1;
END
$$;

-- Takes the oldest day due for a close and leases it for p_lease: NULL
-- when there is none, or when another process took it first.
CREATE OR REPLACE FUNCTION mg_recon_close_claim(p_after interval, p_lease interval,
    p_now timestamptz DEFAULT NULL)
RETURNS date
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
    v_day date;
    v_got date;
BEGIN
    FOR v_day IN SELECT d FROM mg_recon_close_due(p_after, v_now) AS d LOOP
        INSERT INTO recon_close_runs AS c (day, lease_until, tries)
        VALUES (v_day, v_now + p_lease, 1)
        ON CONFLICT (day) DO UPDATE
           SET lease_until = excluded.lease_until, tries = c.tries + 1
         WHERE c.closed_at IS NULL AND (c.lease_until IS NULL OR c.lease_until <= v_now)
        RETURNING c.day INTO v_got;
        IF v_got IS NOT NULL THEN
            RETURN v_got;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Records the close of UTC day p_day: p_activity is the upstream's
-- activity of the day, a JSON array of {"model", "requests", "usage"
-- (USD, a decimal string)}, any number per model; p_credits the
-- account's all-time usage (USD), or NULL when not known.  One row per
-- model either side counted (the gateway's charge, its adjustments, what
-- the upstream billed, the difference upstream - charge) and, with
-- p_credits, one for the account (model ''), then the day is closed.
-- Returns the close as JSON.
CREATE OR REPLACE FUNCTION mg_recon_close_record(p_day date, p_activity jsonb,
    p_credits numeric, p_now timestamptz DEFAULT NULL)
RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_now   timestamptz := coalesce(p_now, clock_timestamp());
    v_total numeric;
    v_reqs  bigint;
    v_out   json;
BEGIN
    IF p_day IS NULL OR p_activity IS NULL OR jsonb_typeof(p_activity) <> 'array' THEN
        RAISE EXCEPTION 'a close needs a day and the activity as a JSON array'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO recon_closes (day, model, requests, gateway, adjustments, upstream,
           difference, upstream_requests, closed_at)
    SELECT p_day, coalesce(g.model, a.model), coalesce(g.requests, 0),
           coalesce(g.recorded, 0), coalesce(g.adjustments, 0), coalesce(a.usage, 0),
           coalesce(a.usage, 0) - (coalesce(g.recorded, 0) + coalesce(g.adjustments, 0)),
           coalesce(a.requests, 0), v_now
      FROM mg_recon_day(p_day) AS g
      FULL JOIN (SELECT x.model, sum(x.requests)::bigint AS requests,
                        sum(x.usage) AS usage
                   FROM jsonb_to_recordset(p_activity)
                        AS x(model text, requests numeric, usage numeric)
                  WHERE x.model IS NOT NULL
                  GROUP BY x.model) AS a ON a.model = g.model;
    IF p_credits IS NOT NULL THEN
        -- everything the gateway ever charged, from the rollups (they
        -- outlive pruned usage rows, and hold the adjustments)
        SELECT (r->'totals'->>'cost')::numeric, (r->'totals'->>'requests')::bigint
          INTO v_total, v_reqs
          FROM mg_usage_report(NULL, NULL, NULL, '2000-01-01', NULL, 'UTC', '{}',
                               1000000, v_now) AS r;
        INSERT INTO recon_closes (day, model, requests, gateway, adjustments, upstream,
               difference, closed_at)
        VALUES (p_day, '', coalesce(v_reqs, 0), coalesce(v_total, 0), 0, p_credits,
                p_credits - coalesce(v_total, 0), v_now);
    END IF;
    INSERT INTO recon_close_runs AS c (day, lease_until, tries, closed_at)
    VALUES (p_day, NULL, 1, v_now)
    ON CONFLICT (day) DO UPDATE SET lease_until = NULL, closed_at = v_now;
    SELECT json_build_object(
        'object', 'reconciliation.close', 'day', to_char(p_day, 'YYYY-MM-DD'),
        'closed_at', mg_report_iso(v_now, 'UTC'),
        'data', coalesce(json_agg(json_build_object(
                    'model', c.model, 'requests', c.requests,
                    'upstream_requests', c.upstream_requests,
                    'recorded', trim_scale(c.gateway)::text,
                    'adjustments', trim_scale(c.adjustments)::text,
                    'charged', trim_scale(c.gateway + c.adjustments)::text,
                    'upstream', trim_scale(c.upstream)::text,
                    'difference', trim_scale(c.difference)::text)
                    ORDER BY c.model) FILTER (WHERE c.model <> ''), '[]'),
        'totals', json_build_object(
                    'requests', coalesce(sum(c.requests) FILTER (WHERE c.model <> ''), 0),
                    'charged', coalesce(trim_scale(sum(c.gateway + c.adjustments)
                                                   FILTER (WHERE c.model <> '')), 0)::text,
                    'upstream', coalesce(trim_scale(sum(c.upstream)
                                                    FILTER (WHERE c.model <> '')), 0)::text,
                    'difference', coalesce(trim_scale(sum(c.difference)
                                                      FILTER (WHERE c.model <> '')), 0)::text),
        'account', (SELECT json_build_object('upstream', trim_scale(k.upstream)::text,
                        'charged', trim_scale(k.gateway)::text,
                        'difference', trim_scale(k.difference)::text)
                      FROM recon_closes k
                     WHERE k.day = p_day AND k.model = '' AND k.closed_at = v_now
                     ORDER BY k.id DESC LIMIT 1))
      INTO v_out
      FROM recon_closes c
     WHERE c.day = p_day AND c.closed_at = v_now;
    RETURN v_out;
END
$$;
