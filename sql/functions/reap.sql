-- The reaper: settles pending usage rows older than a grace period (their
-- responder died) at their reserved amount.
--
-- Money rule: a request whose end was never recorded is charged its whole
-- reservation, added to the spend of the period it was admitted in.

-- mg_reap returned only how many rows it settled before it returned what
-- it charged too: that one is dropped (see mg_settle_batch).
DO $$
BEGIN
    IF (SELECT p.prorettype FROM pg_proc p
         WHERE p.oid = to_regprocedure('mg_reap(integer, timestamptz)')) = 'integer'::regtype THEN
        DROP FUNCTION mg_reap(integer, timestamptz);
    END IF;
END
$$;

-- Settles, at their reserved amount, the pending rows admitted more than
-- p_grace seconds before p_now (NULL: the database's clock): their
-- responder died.  Safe to run from many places at once.  Returns the
-- number of rows settled (reaped) and the sum of what they were charged
-- (charged, USD).
CREATE OR REPLACE FUNCTION mg_reap(p_grace integer, p_now timestamptz DEFAULT NULL,
    OUT reaped integer, OUT charged numeric)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
    v_n   integer := 0;
    v_sum numeric := 0;
    c     record;
    r     record;
    v_d   mg_usage_delta[] := '{}';
BEGIN
    FOR c IN SELECT rs.request_id, rs.created_at FROM reservations rs
              WHERE rs.created_at < v_now - make_interval(secs => p_grace)
              ORDER BY rs.project_id, rs.created_at
              LIMIT 1000
              FOR UPDATE SKIP LOCKED
    LOOP
        DELETE FROM reservations WHERE request_id = c.request_id;
        UPDATE usage_events u
           SET status = 502, error_type = 'reaped', cost = u.reserved,
               cost_source = 'reserved', settled_at = v_now,
               -- charged its reservation: what the upstream billed decides
               recon_state = mg_recon_state(u.upstream_id),
               recon_next_at = mg_recon_first_at(u.upstream_id, 'reserved', true, v_now)
         WHERE u.request_id = c.request_id AND u.created_at = c.created_at
           AND u.settled_at IS NULL
        RETURNING u.* INTO r;
        CONTINUE WHEN NOT FOUND;
        UPDATE project_quota q
           SET reserved = q.reserved - r.reserved,
               spent = q.spent + CASE WHEN r.created_at >= q.period_start THEN r.reserved ELSE 0 END
         WHERE q.project_id = r.project_id;
        v_d := v_d || ROW(r.created_at, r.project_id, r.key_id, r.model, r.endpoint,
                          r.status, 1, r.prompt_tokens, r.completion_tokens, r.total_tokens,
                          r.cost, r.latency_ms, r.ttft_ms)::mg_usage_delta;
        v_n := v_n + 1;
        v_sum := v_sum + r.cost;
    END LOOP;
    -- after every counter row (see rollup.sql for the lock order)
    IF v_n > 0 THEN
        PERFORM mg_rollup_add(v_d);
    END IF;
    reaped := v_n;
    charged := v_sum;
END
$$;
