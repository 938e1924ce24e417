-- Rollups and partitions of the usage rows: what keeps usage_rollup equal
-- to the settled usage rows it counts, and the monthly partitions of
-- usage_events (made ahead, pruned on request).
--
-- Money rule: a rollup's cost is the exact sum (numeric) of the costs of
-- the rows it counts, adjustments included.
--
-- Locks: mg_rollup_add appends one row and takes no lock, so settlement
-- never waits for a rollup row.  Every change of usage_rollup rows (the
-- fold of the pending rows, the compaction, the backfill) is made under
-- the compaction lock, taken alone; whoever holds it takes no counter row
-- (project_quota) and no usage row.

-- mg_hist_bounds() and mg_hist_p50_p95 are in report.sql (applied first).

-- The bucket (0 to 15) of p_ms milliseconds; NULL for NULL.
CREATE OR REPLACE FUNCTION mg_hist_bucket(p_ms integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT width_bucket(CASE WHEN p_ms < 0 THEN 0 ELSE p_ms END, mg_hist_bounds())
$$;

-- The rollup rows that a count at p_at of the project p_project, key
-- p_key, model p_model and endpoint p_endpoint goes into, those numbered
-- p_from to p_to of: 0 its project's quarter hour; 1..3 its project's
-- hour, UTC day and month; 4..7 project 0's quarter, hour, day and month;
-- 8..10 its key's totals of the hour, day and month, 11 of the six-hour
-- block (model and endpoint '', every status: see 011_key_totals.sql).
-- Settlement counts into 0 only, compaction folds a quarter into 1..11, a
-- delta behind the frontier goes into 0..11.  LANGUAGE sql, one SELECT:
-- the planner inlines it into its callers' statements.
CREATE OR REPLACE FUNCTION mg_rollup_targets(p_project bigint, p_key bigint, p_model text,
    p_endpoint text, p_at timestamptz, p_from integer, p_to integer)
RETURNS TABLE (pid bigint, kid bigint, grain "char", bucket timestamptz, model text,
               endpoint text)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN k BETWEEN 4 AND 7 THEN 0 ELSE p_project END,
           CASE WHEN k BETWEEN 4 AND 7 THEN 0 ELSE p_key END,
           ('{q,h,d,m,q,h,d,m,H,D,M,S}'::"char"[])[k + 1],
           CASE ('{0,1,2,3,0,1,2,3,1,2,3,4}'::integer[])[k + 1]
                WHEN 0 THEN date_bin('15 minutes', p_at, timestamptz '2000-01-01 00:00:00+00')
                WHEN 4 THEN date_bin('6 hours', p_at, timestamptz '2000-01-01 00:00:00+00')
                WHEN 1 THEN date_trunc('hour', p_at, 'UTC')
                WHEN 2 THEN date_trunc('day', p_at, 'UTC')
                ELSE date_trunc('month', p_at, 'UTC') END,
           CASE WHEN k < 8 THEN p_model ELSE '' END,
           CASE WHEN k < 8 THEN p_endpoint ELSE '' END
      FROM generate_series(p_from, p_to) AS k
$$;

-- Adds rollup rows (whose counts are increments) to usage_rollup: a new
-- key gets the row, an existing one the sums.  Rows are written in time
-- order, bucket by bucket, so that the new rows of one bucket lie together
-- on disk: a report over every project reads an hour of all keys from a
-- few dozen pages, not from one page per row.  Only the holder of the
-- compaction lock merges, so no order of locks is needed.
CREATE OR REPLACE FUNCTION mg_rollup_merge(p_rows usage_rollup[])
RETURNS void
-- plpgsql: the statement is planned once per connection (a LANGUAGE sql
-- function is planned at every call)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_rollup AS r
    SELECT * FROM unnest(p_rows) AS x
     ORDER BY x.grain, x.bucket, x.project_id, x.key_id, x.model, x.endpoint, x.status_class
    ON CONFLICT (project_id, grain, bucket, key_id, model, endpoint, status_class) DO UPDATE
       SET requests = r.requests + excluded.requests,
           prompt_tokens = r.prompt_tokens + excluded.prompt_tokens,
           completion_tokens = r.completion_tokens + excluded.completion_tokens,
           total_tokens = r.total_tokens + excluded.total_tokens,
           cost = r.cost + excluded.cost,
           latency_n = r.latency_n + excluded.latency_n,
           latency_ms = r.latency_ms + excluded.latency_ms,
           ttft_n = r.ttft_n + excluded.ttft_n,
           ttft_ms = r.ttft_ms + excluded.ttft_ms,
           l0 = r.l0 + excluded.l0, l1 = r.l1 + excluded.l1, l2 = r.l2 + excluded.l2,
           l3 = r.l3 + excluded.l3, l4 = r.l4 + excluded.l4, l5 = r.l5 + excluded.l5,
           l6 = r.l6 + excluded.l6, l7 = r.l7 + excluded.l7, l8 = r.l8 + excluded.l8,
           l9 = r.l9 + excluded.l9, l10 = r.l10 + excluded.l10, l11 = r.l11 + excluded.l11,
           l12 = r.l12 + excluded.l12, l13 = r.l13 + excluded.l13,
           l14 = r.l14 + excluded.l14, l15 = r.l15 + excluded.l15,
           t0 = r.t0 + excluded.t0, t1 = r.t1 + excluded.t1, t2 = r.t2 + excluded.t2,
           t3 = r.t3 + excluded.t3, t4 = r.t4 + excluded.t4, t5 = r.t5 + excluded.t5,
           t6 = r.t6 + excluded.t6, t7 = r.t7 + excluded.t7, t8 = r.t8 + excluded.t8,
           t9 = r.t9 + excluded.t9, t10 = r.t10 + excluded.t10, t11 = r.t11 + excluded.t11,
           t12 = r.t12 + excluded.t12, t13 = r.t13 + excluded.t13,
           t14 = r.t14 + excluded.t14, t15 = r.t15 + excluded.t15,
           errors = r.errors + excluded.errors;
END
$$;

-- The rollup row of each delta of p_deltas alone: its project's quarter
-- hour, its status class, its counts, and its latency and time to first
-- token in the cumulative histograms, and whether it is an error (a cost
-- adjustment, requests 0, counts no latency and no error).  LANGUAGE sql, one SELECT: inlined into the fold and
-- into the reports, which read the pending rows through it.
CREATE OR REPLACE FUNCTION mg_rollup_rows(p_deltas mg_usage_delta[])
RETURNS SETOF usage_rollup
LANGUAGE sql IMMUTABLE AS $$
    SELECT d.project_id, 'q'::"char",
           date_bin('15 minutes', d.at, timestamptz '2000-01-01 00:00:00+00'),
           coalesce(d.key_id, 0), coalesce(d.model, ''), d.endpoint,
           coalesce(d.status / 100, 0)::smallint, d.requests::bigint,
           coalesce(d.prompt_tokens, 0)::bigint, coalesce(d.completion_tokens, 0)::bigint,
           coalesce(d.total_tokens, 0)::bigint, coalesce(d.cost, 0),
           (d.requests > 0 AND d.latency_ms IS NOT NULL)::integer::bigint,
           CASE WHEN d.requests > 0 THEN coalesce(d.latency_ms, 0) ELSE 0 END::bigint,
           (d.requests > 0 AND d.ttft_ms IS NOT NULL)::integer::bigint,
           CASE WHEN d.requests > 0 THEN coalesce(d.ttft_ms, 0) ELSE 0 END::bigint,
           (h.lb <= 0)::integer::bigint, (h.lb <= 1)::integer::bigint,
           (h.lb <= 2)::integer::bigint, (h.lb <= 3)::integer::bigint,
           (h.lb <= 4)::integer::bigint, (h.lb <= 5)::integer::bigint,
           (h.lb <= 6)::integer::bigint, (h.lb <= 7)::integer::bigint,
           (h.lb <= 8)::integer::bigint, (h.lb <= 9)::integer::bigint,
           (h.lb <= 10)::integer::bigint, (h.lb <= 11)::integer::bigint,
           (h.lb <= 12)::integer::bigint, (h.lb <= 13)::integer::bigint,
           (h.lb <= 14)::integer::bigint, (h.lb <= 15)::integer::bigint,
           (h.tb <= 0)::integer::bigint, (h.tb <= 1)::integer::bigint,
           (h.tb <= 2)::integer::bigint, (h.tb <= 3)::integer::bigint,
           (h.tb <= 4)::integer::bigint, (h.tb <= 5)::integer::bigint,
           (h.tb <= 6)::integer::bigint, (h.tb <= 7)::integer::bigint,
           (h.tb <= 8)::integer::bigint, (h.tb <= 9)::integer::bigint,
           (h.tb <= 10)::integer::bigint, (h.tb <= 11)::integer::bigint,
           (h.tb <= 12)::integer::bigint, (h.tb <= 13)::integer::bigint,
           (h.tb <= 14)::integer::bigint, (h.tb <= 15)::integer::bigint,
           CASE WHEN d.status >= 400 THEN d.requests ELSE 0 END::bigint
      FROM unnest(p_deltas) AS d
     CROSS JOIN LATERAL (
           -- 16 (no bucket) when there is no latency, or no request
           SELECT CASE WHEN d.requests > 0 THEN coalesce(mg_hist_bucket(d.latency_ms), 16)
                       ELSE 16 END AS lb,
                  CASE WHEN d.requests > 0 THEN coalesce(mg_hist_bucket(d.ttft_ms), 16)
                       ELSE 16 END AS tb) h
$$;

-- The sums of the rollup rows p_rows (quarter hours) in the rows they go
-- into: those numbered p_from to p_to of mg_rollup_targets, and p_from
-- to 11 for a row before p_all_before.  One row per target, for
-- mg_rollup_merge; a key's totals count every status class (-1).
CREATE OR REPLACE FUNCTION mg_rollup_sums(p_rows usage_rollup[], p_from integer,
    p_to integer, p_all_before timestamptz)
RETURNS usage_rollup[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(t::usage_rollup)
      FROM (SELECT g.pid, g.grain, g.bucket, g.kid, g.model, g.endpoint,
                   CASE WHEN g.grain IN ('H', 'S', 'D', 'M') THEN -1 ELSE r.status_class END,
                   sum(r.requests), sum(r.prompt_tokens), sum(r.completion_tokens),
                   sum(r.total_tokens), sum(r.cost), sum(r.latency_n), sum(r.latency_ms),
                   sum(r.ttft_n), sum(r.ttft_ms),
                   sum(r.l0), sum(r.l1), sum(r.l2), sum(r.l3), sum(r.l4), sum(r.l5),
                   sum(r.l6), sum(r.l7), sum(r.l8), sum(r.l9), sum(r.l10), sum(r.l11),
                   sum(r.l12), sum(r.l13), sum(r.l14), sum(r.l15),
                   sum(r.t0), sum(r.t1), sum(r.t2), sum(r.t3), sum(r.t4), sum(r.t5),
                   sum(r.t6), sum(r.t7), sum(r.t8), sum(r.t9), sum(r.t10), sum(r.t11),
                   sum(r.t12), sum(r.t13), sum(r.t14), sum(r.t15), sum(r.errors)
              FROM unnest(p_rows) AS r
             CROSS JOIN LATERAL mg_rollup_targets(r.project_id, r.key_id, r.model, r.endpoint,
                   r.bucket, p_from, CASE WHEN r.bucket < p_all_before THEN 11 ELSE p_to END) g
             GROUP BY g.pid, g.grain, g.bucket, g.kid, g.model, g.endpoint, 7) t
$$;

-- Counts usage rows (or cost changes) in the rollups, in the caller's
-- transaction: appends the deltas, as one row, to usage_rollup_pending
-- (see 008_rollup_pending.sql), which the reports read with the rollup
-- rows until mg_rollup_fold adds them up.  Takes no lock.  (Settlement
-- appends its batch's row itself, in the statement that settles it.)
CREATE OR REPLACE FUNCTION mg_rollup_add(p_deltas mg_usage_delta[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(cardinality(p_deltas), 0) > 0 THEN
        INSERT INTO usage_rollup_pending (deltas) VALUES (p_deltas);
    END IF;
END
$$;

-- Folds the pending rows committed so far into the rollup rows: each
-- delta into its project's quarter hour, and one from before the
-- compaction frontier (a late settlement, a cost adjustment) into every
-- row it goes into (its project's hour, UTC day and month, its key's
-- totals of those, and project 0's quarter, hour, day and month).  Rows
-- appended meanwhile wait for the next fold.  A slice of pending rows at
-- a time, so that a backlog (the upkeep stopped for a while, a bulk load)
-- never makes one huge array.  Returns the number of deltas folded.
-- Called by mg_rollup_compact and mg_rollup_backfill.
CREATE OR REPLACE FUNCTION mg_rollup_fold()
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_f    timestamptz;
    v_left bigint;
    v_n    bigint := 0;
    v_p    bigint;
    v_d    bigint;
    v_rows usage_rollup[];
BEGIN
    PERFORM pg_advisory_xact_lock(727217003);
    SELECT coalesce(s.compacted_until, '-infinity') INTO v_f FROM usage_state s WHERE s.singleton;
    SELECT count(*) INTO v_left FROM usage_rollup_pending;
    WHILE v_left > 0 LOOP
        WITH p AS (
            DELETE FROM usage_rollup_pending
             WHERE ctid = ANY (ARRAY(SELECT ctid FROM usage_rollup_pending LIMIT 1000))
            RETURNING deltas
        )
        SELECT (SELECT count(*) FROM p), (SELECT sum(cardinality(p.deltas)) FROM p),
               (SELECT mg_rollup_sums(array_agg(r), 0, 0, v_f)
                  FROM p, mg_rollup_rows(p.deltas) AS r)
          INTO v_p, v_d, v_rows;
        EXIT WHEN v_p = 0;
        IF v_rows IS NOT NULL THEN
            PERFORM mg_rollup_merge(v_rows);
        END IF;
        v_n := v_n + v_d;
        v_left := v_left - v_p;
    END LOOP;
    RETURN v_n;
END
$$;

-- Folds the pending rows (mg_rollup_fold), then the quarters of every
-- project from the compaction frontier up to the last quarter that ended
-- p_grace before p_now (NULL: now) into the coarser rows, and moves the
-- frontier there; a day at a time.  Returns the frontier, or NULL when
-- there was nothing to fold.  Called by the responders' upkeep every
-- minute, by `db migrate`, and after a backfill; safe from many places at
-- once (the second waits, then finds nothing to do).
CREATE OR REPLACE FUNCTION mg_rollup_compact(p_now timestamptz DEFAULT NULL,
    p_grace interval DEFAULT interval '30 minutes')
RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    q      constant timestamptz := timestamptz '2000-01-01 00:00:00+00';
    v_to   timestamptz := date_bin('15 minutes', coalesce(p_now, now()) - p_grace, q);
    v_f    timestamptz;
    v_n    bigint;
    v_lo   timestamptz;
    v_hi   timestamptz;
    v_rows usage_rollup[];
BEGIN
    SELECT s.compacted_until INTO v_f FROM usage_state s WHERE s.singleton;
    IF v_f >= v_to AND NOT EXISTS (SELECT 1 FROM usage_rollup_pending) THEN
        RETURN NULL;            -- the usual case: no lock taken
    END IF;
    -- waits for the fold or compaction in flight; settlements go on
    PERFORM pg_advisory_xact_lock(727217003);
    v_n := mg_rollup_fold();
    SELECT s.compacted_until INTO v_f FROM usage_state s WHERE s.singleton;
    IF v_f >= v_to THEN
        RETURN CASE WHEN v_n > 0 THEN v_f END;
    END IF;
    IF v_f IS NULL THEN
        SELECT min(r.bucket) INTO v_lo FROM usage_rollup r
         WHERE r.grain = 'q' AND r.project_id <> 0;
        v_lo := coalesce(least(v_lo, v_to), v_to);
    ELSE
        v_lo := v_f;
    END IF;
    WHILE v_lo < v_to LOOP
        v_hi := least(date_trunc('day', v_lo, 'UTC') + interval '24 hours', v_to);
        v_rows := mg_rollup_sums(ARRAY(SELECT r FROM usage_rollup r
                                        WHERE r.grain = 'q' AND r.project_id <> 0
                                          AND r.bucket >= v_lo AND r.bucket < v_hi),
                                 1, 11, NULL);
        IF v_rows IS NOT NULL THEN
            PERFORM mg_rollup_merge(v_rows);
        END IF;
        v_lo := v_hi;
    END LOOP;
    UPDATE usage_state SET compacted_until = v_to;
    RETURN v_to;
END
$$;

-- The delta of one settled usage row.
CREATE OR REPLACE FUNCTION mg_usage_delta_of(u usage_events)
RETURNS mg_usage_delta
LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(u.created_at, u.project_id, u.key_id, u.model, u.endpoint, u.status, 1,
               u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cost,
               u.latency_ms, u.ttft_ms)::mg_usage_delta
$$;

-- Counts every settled usage row into empty rollups (after an upgrade
-- from a version without them), once.
CREATE OR REPLACE FUNCTION mg_rollup_backfill()
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0;
    m timestamptz;
    d mg_usage_delta[];
BEGIN
    PERFORM 1 FROM usage_state WHERE backfill FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    LOCK TABLE usage_events IN SHARE MODE;
    DELETE FROM usage_rollup;
    DELETE FROM usage_rollup_pending;
    UPDATE usage_state SET compacted_until = NULL;
    -- a UTC day at a time, folded at once: one pending row stays small
    FOR m IN SELECT DISTINCT date_trunc('day', created_at, 'UTC') FROM usage_events ORDER BY 1
    LOOP
        SELECT array_agg(mg_usage_delta_of(u)) INTO d
          FROM usage_events u
         WHERE u.settled_at IS NOT NULL AND u.created_at >= m
           AND u.created_at < m + interval '24 hours';
        IF d IS NOT NULL THEN
            PERFORM mg_rollup_add(d);
            PERFORM mg_rollup_fold();
            n := n + cardinality(d);
        END IF;
    END LOOP;
    UPDATE usage_state SET backfill = false;
    PERFORM mg_rollup_compact();
    RETURN n;
END
$$;

-- The name of the partition of the month that starts at p_month.
CREATE OR REPLACE FUNCTION mg_usage_partition_name(p_month timestamptz)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'usage_events_' || to_char(p_month AT TIME ZONE 'UTC', 'YYYYMM')
$$;

-- Makes the partitions of the month of p_now and of the next two, where
-- missing; rows of those months found in the default partition are moved
-- into theirs.  Returns the number of partitions made.  Called by every
-- migration and by the responders' upkeep (hourly).
CREATE OR REPLACE FUNCTION mg_usage_partitions(p_now timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_now  timestamptz := coalesce(p_now, now());
    m      timestamptz;
    m_end  timestamptz;
    v_name text;
    v_made integer := 0;
BEGIN
    FOR i IN 0 .. 2 LOOP
        m := (date_trunc('month', v_now, 'UTC') AT TIME ZONE 'UTC'
              + make_interval(months => i)) AT TIME ZONE 'UTC';
        m_end := (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
        v_name := mg_usage_partition_name(m);
        CONTINUE WHEN to_regclass(v_name) IS NOT NULL;
        -- one maker at a time; the others find the partition made
        PERFORM pg_advisory_xact_lock(727217002);
        CONTINUE WHEN to_regclass(v_name) IS NOT NULL;
        EXECUTE format('CREATE TABLE %I (LIKE usage_events INCLUDING DEFAULTS
                            INCLUDING CONSTRAINTS) WITH (fillfactor = 70)', v_name);
        EXECUTE format('INSERT INTO %I SELECT * FROM usage_events_default
                         WHERE created_at >= %L AND created_at < %L', v_name, m, m_end);
        DELETE FROM usage_events_default WHERE created_at >= m AND created_at < m_end;
        EXECUTE format('ALTER TABLE usage_events ATTACH PARTITION %I
                            FOR VALUES FROM (%L) TO (%L)', v_name, m, m_end);
        v_made := v_made + 1;
    END LOOP;
    RETURN v_made;
END
$$;

-- Drops the partitions of the months before p_before (the first of a
-- month, UTC), and the default partition's rows before it: their usage
-- rows go, their rollups stay.  Refuses the current month and later, and
-- a month that still has requests in flight.  Returns a JSON array of
-- {"partition", "from", "to", "rows"}, oldest first.
CREATE OR REPLACE FUNCTION mg_usage_prune(p_before timestamptz, p_now timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_now   timestamptz := coalesce(p_now, now());
    v_this  timestamptz := date_trunc('month', v_now, 'UTC');
    p       record;
    v_rows  bigint;
    v_out   jsonb := '[]';
BEGIN
    IF p_before IS NULL OR p_before <> date_trunc('month', p_before, 'UTC') THEN
        RAISE EXCEPTION 'the month to prune before must be the first of a month (YYYY-MM)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_before > v_this THEN
        RAISE EXCEPTION 'cannot prune the current month (%) or later',
            to_char(v_this AT TIME ZONE 'UTC', 'YYYY-MM')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM reservations WHERE created_at < p_before) THEN
        RAISE EXCEPTION 'requests admitted before % are still in flight',
            to_char(p_before AT TIME ZONE 'UTC', 'YYYY-MM')
            USING ERRCODE = 'object_in_use';
    END IF;
    PERFORM pg_advisory_xact_lock(727217002);
    FOR p IN SELECT c.relname AS name,
                    (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                  'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)')) AS b
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'usage_events'::regclass
                AND c.relname <> 'usage_events_default'
              ORDER BY 1
    LOOP
        CONTINUE WHEN p.b IS NULL OR p.b[2]::timestamptz > p_before;
        EXECUTE format('SELECT count(*) FROM %I', p.name) INTO v_rows;
        EXECUTE format('ALTER TABLE usage_events DETACH PARTITION %I', p.name);
        EXECUTE format('DROP TABLE %I', p.name);
        v_out := v_out || jsonb_build_object('partition', p.name,
                     'from', mg_iso_time(p.b[1]::timestamptz),
                     'to', mg_iso_time(p.b[2]::timestamptz), 'rows', v_rows);
    END LOOP;
    DELETE FROM usage_events_default WHERE created_at < p_before;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows > 0 THEN
        v_out := v_out || jsonb_build_object('partition', 'usage_events_default',
                     'from', NULL, 'to', mg_iso_time(p_before), 'rows', v_rows);
    END IF;
    UPDATE usage_state SET pruned_before = greatest(coalesce(pruned_before, p_before), p_before);
    RETURN v_out;
END
$$;

SELECT mg_usage_partitions();
SELECT mg_rollup_backfill();
SELECT mg_rollup_compact();
