-- modelgate schema, version 3: admissions and settlements in batches.
--
-- A responder process sends the admissions that arrive while its previous
-- batch is in Postgres as one batch: one statement, one transaction, one
-- commit for all of them, so a project's counter row is locked and its
-- commit flushed once per batch instead of once per request.  Settlements
-- go the same way from a background thread, after the client has its
-- answer.  Within a batch the elements are processed in project order:
-- batches from different processes then take the counter rows' locks in
-- the same order and cannot deadlock.

-- Admits a batch: p_reqs is a JSON array of
-- {"k": key hash (hex), "id": request id, "m": model, "e": endpoint,
--  "s": stream, "p": prompt estimate, "o": max output or null}.
-- Returns one row per element, i being its position (from 1), with the
-- columns of mg_admit.
CREATE FUNCTION mg_admit_batch(p_reqs jsonb, p_default_output integer,
    p_fallback_prompt numeric, p_fallback_completion numeric)
RETURNS TABLE (i integer, outcome text, key_id bigint, project_id bigint,
               project_name text, key_prefix text, reserved numeric,
               prompt_price numeric, completion_price numeric,
               rpm integer, rpm_remaining integer, rpm_reset_ms bigint,
               tpm integer, tpm_remaining integer, tpm_reset_ms bigint,
               retry_after_ms bigint, spend_cap numeric, spent numeric,
               need_tokens integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    e record;
BEGIN
    FOR e IN SELECT x.v, x.n::integer AS n
               FROM jsonb_array_elements(p_reqs) WITH ORDINALITY AS x(v, n)
               LEFT JOIN api_keys ak
                      ON ak.key_hash = decode(x.v->>'k', 'hex') AND ak.revoked_at IS NULL
              ORDER BY ak.project_id NULLS FIRST, x.n
    LOOP
        RETURN QUERY
        SELECT e.n, a.*
          FROM mg_admit(decode(e.v->>'k', 'hex'), e.v->>'id', e.v->>'m', e.v->>'e',
                        (e.v->>'s')::boolean, (e.v->>'p')::integer, (e.v->>'o')::integer,
                        p_default_output, p_fallback_prompt, p_fallback_completion) a;
    END LOOP;
END
$$;

-- Settles a batch: p_rows is a JSON array of
-- {"id", "st": status, "et": error type, "pt", "ct", "tt": tokens,
--  "c": cost (decimal text) or null, "b": billable, "u": upstream id,
--  "pv": provider, "l": latency ms, "f": time to first token ms}.
-- Returns how many were settled (the others had been reaped).
CREATE FUNCTION mg_settle_batch(p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    v_n integer := 0;
BEGIN
    FOR e IN SELECT x.*
               FROM jsonb_to_recordset(p_rows) AS x(id text, st integer, et text,
                    pt integer, ct integer, tt integer, c numeric, b boolean,
                    u text, pv text, l integer, f integer)
               LEFT JOIN usage_events ue ON ue.request_id = x.id
              ORDER BY ue.project_id NULLS FIRST, x.id
    LOOP
        IF mg_settle(e.id, e.st, e.et, e.pt, e.ct, e.tt, e.c, e.b, e.u, e.pv, e.l, e.f) THEN
            v_n := v_n + 1;
        END IF;
    END LOOP;
    RETURN v_n;
END
$$;
