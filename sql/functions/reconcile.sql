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

-- The upstream billed p_billed (USD) for the generation of the usage row
-- (p_request_id, p_created_at).  Equal to what the row is charged:
-- confirmed.  Different: an adjustment of the difference is appended, the
-- project's spent and the rollups change with it, and the row is
-- adjusted.  A row in a final state already is left as it is (another
-- process got there first).  Returns the row's state afterwards, NULL when
-- there is no such row.
CREATE OR REPLACE FUNCTION mg_recon_apply(p_request_id text, p_created_at timestamptz,
    p_billed numeric, p_now timestamptz DEFAULT NULL)
RETURNS text
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
        RETURN NULL;
    END IF;
    IF u.settled_at IS NULL OR u.recon_state <> 'recorded' THEN
        RETURN u.recon_state;
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
    RETURN CASE WHEN v_diff = 0 THEN 'confirmed' ELSE 'adjusted' END;
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
