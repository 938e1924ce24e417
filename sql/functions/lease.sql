-- Admission leases (quota.admission = "lease"; see 015_leases.sql): the
-- settlement of requests admitted from a lease, the renewal and release of
-- leases, and the reaping of the leases of dead processes.
--
-- Money rules: a lease's spend is held in its project's reserved amount
-- until a request admitted from it is settled (its cost moves from the
-- lease, and from reserved, to spent) or the lease is released (what is
-- left goes back) or reaped (all of it is charged: the dead process may
-- have admitted requests up to it, and their costs are unknown).
--
-- Lock order, as admission's: the projects' counter rows (project order),
-- then the leases (id order).  Renewal locks only leases.

-- Settles a batch of requests admitted from leases: p_rows is a JSON array
-- of the elements mg_settle_batch takes, each with what admission would
-- have stored in its pending row: {"L": the lease, "pid", "kid": project
-- and key, "m": model, "e": endpoint, "s": stream, "rv": reserved,
-- "rt": reserved tokens, "pe": prompt estimate, "ap", "ac": the prices it
-- was admitted at, "at": when it was admitted, "gb": it was lent tight
-- (see mg_admit_batch), so it gives back its whole reservation and its
-- unused tokens to the project, as a pending row's settlement does}.
-- Each becomes its usage
-- row, settled, charged as mg_settle_batch charges; a request id recorded
-- already (a batch sent twice) is left as it is.  Returns how many were
-- recorded (settled), their ids and costs, and each lease touched as it
-- is now (lease_ids, lease_spends, lease_seqs).  A request of a lease
-- reaped meanwhile is recorded with its cost, which is moved out of the
-- lease's reaped charge (and only what passes that charge is added to the
-- spend).
-- p_rows is json, not jsonb: it is read once, and json_to_recordset
-- over the text costs less than jsonb's parse and then its extraction
-- (7 µs a row less, 16% of a batch of 256).  The jsonb version it
-- replaces is dropped: responders of an earlier release cannot settle
-- leased requests once it is gone, so restart them after the migration.
DROP FUNCTION IF EXISTS mg_settle_lease_batch(jsonb);
CREATE OR REPLACE FUNCTION mg_settle_lease_batch(p_rows json, OUT settled integer,
    OUT ids text[], OUT costs numeric[], OUT lease_ids bigint[], OUT lease_spends numeric[],
    OUT lease_seqs bigint[])
LANGUAGE plpgsql
SET enable_seqscan = off   -- see mg_admit_batch
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_now  timestamptz := clock_timestamp();
    v_sync text;
    a_lid  bigint[];
    a_at   timestamptz[];
    a_pid  bigint[];
    a_give numeric[];
    a_unused integer[];
    c      record;
BEGIN
    -- asynchronous commit, as mg_settle_batch: a settlement lost in a
    -- Postgres crash leaves its cost in the lease, which is charged whole
    -- if its process dies too
    v_sync := set_config('synchronous_commit', 'off', true);
    -- the rows first, without a lock on the counters (admissions of the
    -- same projects wait on those only while they change, below)
    WITH x AS (
        SELECT x.*,
               CASE WHEN x.g THEN x.pp ELSE coalesce(um.prompt_price, x.pp) END AS spp,
               CASE WHEN x.g THEN x.cp ELSE coalesce(um.completion_price, x.cp) END AS scp
          FROM json_to_recordset(p_rows) AS x(id text, "L" bigint, pid bigint, kid bigint,
               m text, e text, s boolean, rv numeric, rt integer, pe integer, ap numeric,
               ac numeric, at timestamptz, st integer, et text, pt integer, ct integer,
               tt integer, c numeric, b boolean, u text, pv text, l integer, f integer,
               r boolean, up text, tr jsonb, sm text, pp numeric, cp numeric, g boolean,
               nr boolean, gb boolean)
          LEFT JOIN upstream_models um ON um.upstream = x.up AND um.id = x.sm
    ), y AS (
        SELECT x.*,
               CASE WHEN x.c IS NOT NULL THEN x.c
                    WHEN x.b THEN coalesce(x.pt, x.pe) * coalesce(x.spp, x.ap)
                                  + coalesce(x.ct, 0) * coalesce(x.scp, x.ac)
                    ELSE 0 END AS cost,
               CASE WHEN x.c IS NOT NULL THEN 'upstream'
                    WHEN x.b THEN 'catalog' END AS source
          FROM x
    ), s AS (
        INSERT INTO usage_events (request_id, project_id, key_id, model, provider, endpoint,
               stream, status, error_type, prompt_tokens, completion_tokens, total_tokens,
               cost, cost_source, upstream_id, latency_ms, created_at, reserved,
               reserved_tokens, prompt_estimate, prompt_price, completion_price, ttft_ms,
               settled_at, upstream, attempts, recon_state)
        SELECT y.id, y.pid, y.kid, y.m, y.pv, y.e, y.s, y.st, y.et, y.pt, y.ct, y.tt,
               y.cost, y.source, y.u, y.l, y.at, y.rv, y.rt, y.pe,
               coalesce(y.spp, y.ap), coalesce(y.scp, y.ac), y.f, v_now, y.up, y.tr,
               CASE WHEN y.nr THEN 'unsupported' ELSE mg_recon_state(y.u) END
          FROM y
        ON CONFLICT (request_id, created_at) DO NOTHING
        RETURNING request_id, created_at
    ), t AS (
        SELECT y.*, CASE WHEN NOT coalesce(y.nr, false)
                         THEN mg_recon_first_at(y.u, y.source, y.r, v_now) END AS first_at
          FROM y JOIN s ON s.request_id = y.id AND s.created_at = y.at
    ), q AS (
        INSERT INTO recon_queue (due_at, request_ids, created_ats)
        SELECT min(t.first_at), array_agg(t.id) FILTER (WHERE t.first_at IS NOT NULL),
               array_agg(t.at) FILTER (WHERE t.first_at IS NOT NULL)
          FROM t
        HAVING count(t.first_at) > 0
    ), r AS (
        INSERT INTO usage_rollup_pending (deltas)
        SELECT array_agg(ROW(t.at, t.pid, t.kid, t.m, t.e, t.st, 1, t.pt, t.ct, t.tt,
                             t.cost, t.l, t.f)::mg_usage_delta)
          FROM t
        HAVING count(*) > 0
    )
    SELECT array_agg(t.id), array_agg(t.cost), array_agg(t."L"), array_agg(t.at),
           array_agg(t.pid),
           -- what each gives up of its lease: its cost, or, lent tight,
           -- its whole reservation (at least its cost)
           array_agg(CASE WHEN t.gb THEN greatest(t.rv, t.cost) ELSE t.cost END),
           array_agg(CASE WHEN t.gb THEN greatest(t.rt - CASE WHEN t.b
                                                      THEN coalesce(t.tt, t.pt + t.ct, t.rt)
                                                      ELSE 0 END, 0)
                          ELSE 0 END)
      INTO ids, costs, a_lid, a_at, a_pid, a_give, a_unused
      FROM t;
    settled := coalesce(cardinality(ids), 0);
    IF settled = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM project_quota q
      WHERE q.project_id = ANY (a_pid)
      ORDER BY q.project_id
        FOR UPDATE;
    PERFORM 1 FROM leases l
      WHERE l.id = ANY (a_lid)
      ORDER BY l.id
        FOR UPDATE;

    -- each live lease gives up what its requests cost (at most what it
    -- holds), the project's reserved amount with it; the cost counts in
    -- the period each was admitted in
    WITH a AS (
        SELECT t.lid, t.pid, sum(t.give) AS cost, sum(t.unused) AS unused,
               coalesce(sum(t.cost) FILTER (WHERE t.at >= pq.period_start), 0) AS pcost
          FROM unnest(a_lid, a_pid, a_at, costs, a_give, a_unused)
                   AS t(lid, pid, at, cost, give, unused)
          JOIN project_quota pq ON pq.project_id = t.pid
         GROUP BY t.lid, t.pid
    ), o AS (
        -- by the primary key, as locked above: a join with a let the
        -- planner walk every live lease
        SELECT l.id, l.spend FROM leases l WHERE l.id = ANY (a_lid) AND l.reaped_at IS NULL
    ), l AS (
        UPDATE leases l
           SET spend = greatest(o.spend - a.cost, 0), seq = l.seq + 1, renewed_at = v_now
          FROM o JOIN a ON a.lid = o.id
         WHERE l.id = o.id
        RETURNING l.id, l.project_id, l.spend, l.seq, o.spend - l.spend AS took, a.pcost,
                  a.unused
    ), w AS (
        UPDATE project_quota q
           SET reserved = greatest(q.reserved - k.took, 0), spent = q.spent + k.pcost,
               tok_level = CASE WHEN q.tok_level IS NULL OR p.tpm IS NULL THEN q.tok_level
                                ELSE least(p.tpm, q.tok_level + k.unused) END
          FROM (SELECT l.project_id, sum(l.took) AS took, sum(l.pcost) AS pcost,
                       sum(l.unused) AS unused
                  FROM l GROUP BY l.project_id) k, projects p
         WHERE q.project_id = k.project_id AND p.id = q.project_id
    )
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.spend ORDER BY l.id),
           array_agg(l.seq ORDER BY l.id)
      INTO lease_ids, lease_spends, lease_seqs
      FROM l;

    -- the requests of leases reaped meanwhile (or gone): their costs move
    -- out of the reaped charge, which the spend holds already.  The live
    -- leases are those just updated (locked since), so this looks up
    -- nothing: a lookup in leases a request took 3 ms a batch of 256
    -- with 100 projects
    FOR c IN SELECT t.lid, sum(t.cost) AS cost, min(t.pid) AS pid
               FROM unnest(a_lid, a_pid, costs) AS t(lid, pid, cost)
              WHERE NOT t.lid = ANY (coalesce(lease_ids, '{}'))
              GROUP BY t.lid
    LOOP
        PERFORM mg_lease_unreap(c.lid, c.pid, c.cost);
    END LOOP;
END
$$;

-- Moves p_cost, what requests of the reaped lease p_lease were found to
-- cost, out of the usage row that charged the lease: that row's cost goes
-- down by as much (not below 0), and the project's spend goes up only by
-- what passes it.  A lease unknown (reaped and forgotten long ago) adds
-- p_cost to the spend.
CREATE OR REPLACE FUNCTION mg_lease_unreap(p_lease bigint, p_project bigint, p_cost numeric)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_at   timestamptz;
    v_took numeric := 0;
    u      usage_events;
BEGIN
    SELECT l.reaped_at INTO v_at FROM leases l WHERE l.id = p_lease;
    IF v_at IS NOT NULL THEN
        SELECT * INTO u FROM usage_events e
         WHERE e.request_id = 'lease_' || p_lease AND e.created_at = v_at;
        IF FOUND THEN
            v_took := least(u.cost, p_cost);
            UPDATE usage_events e SET cost = e.cost - v_took
             WHERE e.request_id = u.request_id AND e.created_at = u.created_at;
            PERFORM mg_rollup_add(ARRAY[ROW(u.created_at, u.project_id, u.key_id, u.model,
                u.endpoint, u.status, 0, NULL, NULL, NULL, -v_took, NULL,
                NULL)::mg_usage_delta]);
        END IF;
    END IF;
    IF p_cost > v_took THEN
        UPDATE project_quota q SET spent = q.spent + (p_cost - v_took)
         WHERE q.project_id = p_project;
    END IF;
END
$$;

-- Renews the live leases among p_ids (their process is alive); returns
-- those still live: a lease missing from the answer was reaped, and
-- nothing more may be admitted from it.
CREATE OR REPLACE FUNCTION mg_lease_renew(p_ids bigint[])
RETURNS bigint[]
LANGUAGE sql AS $$
    WITH l AS (
        UPDATE leases l SET renewed_at = clock_timestamp()
         WHERE l.id = ANY (p_ids) AND l.reaped_at IS NULL
        RETURNING l.id
    )
    SELECT coalesce(array_agg(l.id), '{}') FROM l
$$;

-- Releases a lease whose requests are all settled: its spend goes back to
-- the project's reserved amount, and p_requests and p_tokens, what its
-- process had not used of its slices, back to the buckets (never above
-- the limits).  Returns false, changing nothing, when the lease is not
-- live (reaped), or has changed since p_seq (a lease element lent more
-- meanwhile: its process holds that, and will release it later).
CREATE OR REPLACE FUNCTION mg_lease_release(p_id bigint, p_seq bigint, p_requests integer,
    p_tokens integer)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_pid bigint;
    v_now timestamptz;
    v_l   leases;
BEGIN
    SELECT l.project_id INTO v_pid FROM leases l WHERE l.id = p_id AND l.reaped_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM project_quota q WHERE q.project_id = v_pid FOR UPDATE;
    DELETE FROM leases d WHERE d.id = p_id AND d.seq = p_seq AND d.reaped_at IS NULL
    RETURNING * INTO v_l;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    v_now := clock_timestamp();
    UPDATE project_quota q
       SET reserved = greatest(q.reserved - v_l.spend, 0),
           req_level = CASE WHEN p.rpm IS NULL OR coalesce(p_requests, 0) <= 0 THEN q.req_level
                            ELSE least(p.rpm, mg_bucket_refill(p.rpm, q.req_level,
                                          v_now - q.level_at) + p_requests) END,
           tok_level = CASE WHEN p.tpm IS NULL OR coalesce(p_tokens, 0) <= 0 THEN q.tok_level
                            ELSE least(p.tpm, mg_bucket_refill(p.tpm, q.tok_level,
                                          v_now - q.level_at) + p_tokens) END,
           level_at = CASE WHEN (p.rpm IS NULL OR coalesce(p_requests, 0) <= 0)
                                AND (p.tpm IS NULL OR coalesce(p_tokens, 0) <= 0)
                           THEN q.level_at ELSE greatest(v_now, coalesce(q.level_at, v_now)) END
      FROM projects p
     WHERE q.project_id = v_pid AND p.id = v_pid;
    RETURN true;
END
$$;

-- Reaps the leases not renewed for p_timeout seconds before p_now (NULL:
-- the database's clock): their process died.  Nothing is reaped while
-- Postgres has been up for less than p_timeout: a lease not renewed
-- across a restart says nothing of its process, which could not reach
-- the database (it renews within half a second once it can).  Each is
-- charged its whole
-- spend, in the period now, as one usage row ("lease_" and its id,
-- status 502, error_type 'reaped', cost_source 'reserved'), and is kept,
-- marked reaped, for a day, for the settlements that may still come for
-- it.  Safe to run from many places at once.  Returns how many were
-- reaped and the sum charged (USD).
CREATE OR REPLACE FUNCTION mg_reap_leases(p_timeout integer, p_now timestamptz DEFAULT NULL,
    OUT reaped integer, OUT charged numeric)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
    c     record;
    v_l   leases;
BEGIN
    reaped := 0;
    charged := 0;
    IF pg_postmaster_start_time() > v_now - make_interval(secs => p_timeout) THEN
        RETURN;
    END IF;
    FOR c IN SELECT x.id, x.project_id FROM leases x
              WHERE x.reaped_at IS NULL
                AND x.renewed_at < v_now - make_interval(secs => p_timeout)
              ORDER BY x.project_id, x.id
              LIMIT 1000
    LOOP
        PERFORM 1 FROM project_quota q WHERE q.project_id = c.project_id FOR UPDATE;
        SELECT * INTO v_l FROM leases x
         WHERE x.id = c.id AND x.reaped_at IS NULL
           AND x.renewed_at < v_now - make_interval(secs => p_timeout)
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        UPDATE leases x SET reaped_at = v_now WHERE x.id = v_l.id;
        UPDATE project_quota q
           SET reserved = greatest(q.reserved - v_l.spend, 0), spent = q.spent + v_l.spend
         WHERE q.project_id = v_l.project_id;
        INSERT INTO usage_events (request_id, project_id, endpoint, status, error_type, cost,
               cost_source, created_at, settled_at, reserved, recon_state)
        VALUES ('lease_' || v_l.id, v_l.project_id, 'chat.completions', 502, 'reaped', v_l.spend,
                'reserved', v_now, v_now, v_l.spend, 'no_id');
        PERFORM mg_rollup_add(ARRAY[ROW(v_now, v_l.project_id, NULL, NULL, 'chat.completions',
            502, 1, NULL, NULL, NULL, v_l.spend, NULL, NULL)::mg_usage_delta]);
        reaped := reaped + 1;
        charged := charged + v_l.spend;
    END LOOP;
    DELETE FROM leases x WHERE x.reaped_at < v_now - interval '1 day';
END
$$;

-- The count of admission changes (see 016_admission_changes.sql), moved
-- by every change to what mg_admit_batch reads of projects, api_keys,
-- models and upstream_models, in the changing transaction.
CREATE OR REPLACE FUNCTION mg_admission_changed()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE admission_changes SET n = n + 1;
    RETURN NULL;
END
$$;

-- The count as it is now: a responder in lease mode reads it a few times
-- a second, and uses the answers it keeps only while it has not moved.
CREATE OR REPLACE FUNCTION mg_admission_changes()
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT n FROM admission_changes
$$;

-- Projects: every column admission reads; keys: which project, revoked or
-- not, the hash, the prefix; models: what admission prices and routes
-- with.  New projects and keys change no answer kept (only admitted
-- keys' are).
CREATE OR REPLACE TRIGGER projects_admission_changed
    AFTER UPDATE ON projects FOR EACH ROW
    WHEN ((OLD.name, OLD.rpm, OLD.tpm, OLD.spend_cap, OLD.cap_period, OLD.allowed_models)
          IS DISTINCT FROM
          (NEW.name, NEW.rpm, NEW.tpm, NEW.spend_cap, NEW.cap_period, NEW.allowed_models))
    EXECUTE FUNCTION mg_admission_changed();
CREATE OR REPLACE TRIGGER projects_admission_deleted
    AFTER DELETE ON projects FOR EACH ROW EXECUTE FUNCTION mg_admission_changed();

CREATE OR REPLACE TRIGGER api_keys_admission_changed
    AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN ((OLD.project_id, OLD.key_hash, OLD.revoked_at, OLD.prefix)
          IS DISTINCT FROM (NEW.project_id, NEW.key_hash, NEW.revoked_at, NEW.prefix))
    EXECUTE FUNCTION mg_admission_changed();
CREATE OR REPLACE TRIGGER api_keys_admission_deleted
    AFTER DELETE ON api_keys FOR EACH ROW EXECUTE FUNCTION mg_admission_changed();

-- A model added or deleted changes answers: added into an empty catalog
-- (every model was allowed, at the fallback prices), or as an upstream's
-- price for a fallback call.
CREATE OR REPLACE TRIGGER models_admission_rows
    AFTER INSERT OR DELETE ON models FOR EACH ROW EXECUTE FUNCTION mg_admission_changed();
CREATE OR REPLACE TRIGGER models_admission_changed
    AFTER UPDATE ON models FOR EACH ROW
    WHEN ((OLD.id, OLD.kind, OLD.context_length, OLD.prompt_price, OLD.completion_price,
           OLD.upstream)
          IS DISTINCT FROM
          (NEW.id, NEW.kind, NEW.context_length, NEW.prompt_price, NEW.completion_price,
           NEW.upstream))
    EXECUTE FUNCTION mg_admission_changed();

CREATE OR REPLACE TRIGGER upstream_models_admission_rows
    AFTER INSERT OR DELETE ON upstream_models FOR EACH ROW
    EXECUTE FUNCTION mg_admission_changed();
CREATE OR REPLACE TRIGGER upstream_models_admission_changed
    AFTER UPDATE ON upstream_models FOR EACH ROW
    WHEN ((OLD.upstream, OLD.id, OLD.kind, OLD.context_length, OLD.prompt_price,
           OLD.completion_price, OLD.routed)
          IS DISTINCT FROM
          (NEW.upstream, NEW.id, NEW.kind, NEW.context_length, NEW.prompt_price,
           NEW.completion_price, NEW.routed))
    EXECUTE FUNCTION mg_admission_changed();

CREATE OR REPLACE TRIGGER projects_admission_truncated
    AFTER TRUNCATE ON projects FOR EACH STATEMENT EXECUTE FUNCTION mg_admission_changed();
CREATE OR REPLACE TRIGGER api_keys_admission_truncated
    AFTER TRUNCATE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION mg_admission_changed();
CREATE OR REPLACE TRIGGER models_admission_truncated
    AFTER TRUNCATE ON models FOR EACH STATEMENT EXECUTE FUNCTION mg_admission_changed();
CREATE OR REPLACE TRIGGER upstream_models_admission_truncated
    AFTER TRUNCATE ON upstream_models FOR EACH STATEMENT
    EXECUTE FUNCTION mg_admission_changed();
