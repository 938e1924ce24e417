-- Rollups and partitions of the usage rows: what keeps usage_rollup equal
-- to the settled usage rows it counts, and the monthly partitions of
-- usage_events (made ahead, pruned on request).
--
-- Money rule: a rollup's cost is the exact sum (numeric) of the costs of
-- the rows it counts, adjustments included.
--
-- Lock order: mg_rollup_add locks the rollup rows it changes in key
-- order, after the caller has taken every counter row (project_quota) it
-- needs; nothing that holds a rollup row waits for a counter row.

-- The upper bounds (milliseconds) of the histogram buckets l0..l14 and
-- t0..t14; l15 and t15 count the rest.
CREATE OR REPLACE FUNCTION mg_hist_bounds()
RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{25,50,100,150,250,400,600,1000,1500,2500,4000,6000,10000,20000,60000}'::integer[]
$$;

-- The bucket (0 to 15) of p_ms milliseconds; NULL for NULL.
CREATE OR REPLACE FUNCTION mg_hist_bucket(p_ms integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT width_bucket(CASE WHEN p_ms < 0 THEN 0 ELSE p_ms END, mg_hist_bounds())
$$;

-- The p_q quantile (0 < p_q < 1) of a histogram of 16 bucket counts:
-- linear within its bucket; the lower bound of the last bucket when it
-- falls there; NULL when the histogram is empty.
CREATE OR REPLACE FUNCTION mg_hist_quantile(p_q double precision, p_counts numeric[])
RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    b      integer[] := mg_hist_bounds();
    total  numeric := 0;
    want   numeric;
    seen   numeric := 0;
    lo     integer;
    i      integer;
BEGIN
    FOR i IN 1 .. 16 LOOP
        total := total + coalesce(p_counts[i], 0);
    END LOOP;
    IF total <= 0 THEN
        RETURN NULL;
    END IF;
    want := p_q * total;
    FOR i IN 1 .. 16 LOOP
        IF coalesce(p_counts[i], 0) > 0 AND seen + p_counts[i] >= want THEN
            lo := CASE WHEN i = 1 THEN 0 ELSE b[i - 1] END;
            IF i = 16 THEN
                RETURN lo;
            END IF;
            RETURN round(lo + (b[i] - lo) * (want - seen) / p_counts[i]);
        END IF;
        seen := seen + coalesce(p_counts[i], 0);
    END LOOP;
    RETURN b[15];
END
$$;

-- Adds usage rows (or cost changes) to the rollups: for each delta, its
-- quarter hour, UTC day and UTC month, for its project and for every
-- project together (key 0).  One statement, rows locked in key order.
CREATE OR REPLACE FUNCTION mg_rollup_add(p_deltas mg_usage_delta[])
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO usage_rollup AS r (project_id, grain, bucket, key_id, model, endpoint,
           status_class, requests, prompt_tokens, completion_tokens, total_tokens, cost,
           latency_n, latency_ms, ttft_n, ttft_ms,
           l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11, l12, l13, l14, l15,
           t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15)
    SELECT g.pid, g.grain, g.bucket, g.kid, coalesce(d.model, ''), d.endpoint,
           coalesce(d.status / 100, 0), sum(d.requests), coalesce(sum(d.prompt_tokens), 0),
           coalesce(sum(d.completion_tokens), 0), coalesce(sum(d.total_tokens), 0),
           coalesce(sum(d.cost), 0),
           count(d.latency_ms) FILTER (WHERE d.requests > 0),
           coalesce(sum(d.latency_ms) FILTER (WHERE d.requests > 0), 0),
           count(d.ttft_ms) FILTER (WHERE d.requests > 0),
           coalesce(sum(d.ttft_ms) FILTER (WHERE d.requests > 0), 0),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 0),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 1),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 2),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 3),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 4),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 5),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 6),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 7),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 8),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 9),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 10),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 11),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 12),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 13),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 14),
           count(*) FILTER (WHERE d.requests > 0 AND d.lb = 15),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 0),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 1),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 2),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 3),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 4),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 5),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 6),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 7),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 8),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 9),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 10),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 11),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 12),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 13),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 14),
           count(*) FILTER (WHERE d.requests > 0 AND d.tb = 15)
      FROM (SELECT x.*, mg_hist_bucket(x.latency_ms) AS lb, mg_hist_bucket(x.ttft_ms) AS tb
              FROM unnest(p_deltas) AS x) d
     CROSS JOIN LATERAL (VALUES
           (d.project_id, coalesce(d.key_id, 0), 'q'::"char",
            date_bin('15 minutes', d.at, timestamptz '2000-01-01 00:00:00+00')),
           (d.project_id, coalesce(d.key_id, 0), 'd'::"char", date_trunc('day', d.at, 'UTC')),
           (d.project_id, coalesce(d.key_id, 0), 'm'::"char", date_trunc('month', d.at, 'UTC')),
           (0, 0, 'q'::"char", date_bin('15 minutes', d.at, timestamptz '2000-01-01 00:00:00+00')),
           (0, 0, 'd'::"char", date_trunc('day', d.at, 'UTC')),
           (0, 0, 'm'::"char", date_trunc('month', d.at, 'UTC'))) AS g(pid, kid, grain, bucket)
     GROUP BY 1, 2, 3, 4, 5, 6, 7
     ORDER BY 1, 2, 3, 4, 5, 6, 7
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
           t14 = r.t14 + excluded.t14, t15 = r.t15 + excluded.t15
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
    FOR m IN SELECT DISTINCT date_trunc('month', created_at, 'UTC') FROM usage_events ORDER BY 1
    LOOP
        SELECT array_agg(mg_usage_delta_of(u)) INTO d
          FROM usage_events u
         WHERE u.settled_at IS NOT NULL AND u.created_at >= m
           AND u.created_at < (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
        IF d IS NOT NULL THEN
            PERFORM mg_rollup_add(d);
            n := n + cardinality(d);
        END IF;
    END LOOP;
    UPDATE usage_state SET backfill = false;
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
