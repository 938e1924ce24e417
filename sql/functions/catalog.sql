-- The model catalog: replacing it from the upstream's model list, the
-- claim that lets one responder of many sync it, and the list a project
-- may use (served at /v1/models).  Prices are numeric USD per token.

-- Replaces the catalog of the upstreams p_synced with p_models, a JSON
-- array of {upstream, id, kind, name, context_length, prompt_price,
-- completion_price, routed, object} (prices as decimal strings or null;
-- upstream absent: "default"; routed absent: true), drops the rows of
-- upstreams not in p_upstreams (no longer configured), keeps those of the
-- others (their sync failed), and makes models the routed rows of every
-- upstream.  Returns the number of models.
CREATE OR REPLACE FUNCTION mg_catalog_replace(p_models jsonb, p_upstreams text[],
    p_synced text[])
RETURNS integer
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_at timestamptz := clock_timestamp();
    v_n integer;
BEGIN
    IF jsonb_typeof(p_models) IS DISTINCT FROM 'array' OR jsonb_array_length(p_models) = 0 THEN
        RAISE EXCEPTION 'the model list is empty';
    END IF;
    -- rows are updated in place and only those no longer listed deleted,
    -- so that a sync that finds the same prices moves no admission
    -- answer (see 016_admission_changes.sql)
    DELETE FROM upstream_models WHERE NOT (upstream = ANY (p_upstreams));
    INSERT INTO upstream_models AS m (upstream, id, kind, name, context_length, prompt_price,
                                      completion_price, routed, object, synced_at)
    SELECT DISTINCT ON (coalesce(e->>'upstream', 'default'), e->>'id')
           coalesce(e->>'upstream', 'default'), e->>'id', e->>'kind', e->>'name',
           (e->>'context_length')::integer, (e->>'prompt_price')::numeric,
           (e->>'completion_price')::numeric, coalesce((e->>'routed')::boolean, true),
           e->'object', v_at
      FROM jsonb_array_elements(p_models) e
     WHERE e->>'id' IS NOT NULL
       AND coalesce(e->>'upstream', 'default') = ANY (p_synced)
     ORDER BY coalesce(e->>'upstream', 'default'), e->>'id'
    ON CONFLICT (upstream, id) DO UPDATE
       SET kind = EXCLUDED.kind, name = EXCLUDED.name,
           context_length = EXCLUDED.context_length,
           prompt_price = EXCLUDED.prompt_price,
           completion_price = EXCLUDED.completion_price, routed = EXCLUDED.routed,
           object = EXCLUDED.object, synced_at = EXCLUDED.synced_at;
    DELETE FROM upstream_models WHERE upstream = ANY (p_synced) AND synced_at < v_at;
    INSERT INTO models AS m (id, kind, name, context_length, prompt_price,
                             completion_price, object, synced_at, upstream)
    SELECT DISTINCT ON (u.id) u.id, u.kind, u.name, u.context_length, u.prompt_price,
           u.completion_price, u.object, v_at, u.upstream
      FROM upstream_models u
     WHERE u.routed
     ORDER BY u.id, u.upstream
    ON CONFLICT (id) DO UPDATE
       SET kind = EXCLUDED.kind, name = EXCLUDED.name,
           context_length = EXCLUDED.context_length,
           prompt_price = EXCLUDED.prompt_price,
           completion_price = EXCLUDED.completion_price,
           object = EXCLUDED.object, synced_at = EXCLUDED.synced_at,
           upstream = EXCLUDED.upstream;
    DELETE FROM models WHERE synced_at < v_at;
    SELECT count(*) INTO v_n FROM models;
    UPDATE catalog_state SET synced_at = v_at, claimed_at = NULL, models = v_n;
    RETURN v_n;
END
$$;

-- The catalog of the one upstream "default" (see above).
CREATE OR REPLACE FUNCTION mg_catalog_replace(p_models jsonb)
RETURNS integer
LANGUAGE sql AS $$
    SELECT mg_catalog_replace(p_models, ARRAY['default'], ARRAY['default'])
$$;

-- A responder asks whether it should refresh the catalog now: true for one
-- caller when the last sync is older than p_interval seconds (and nobody
-- else claimed the refresh in the last p_interval seconds or 5 minutes).
CREATE OR REPLACE FUNCTION mg_catalog_claim(p_interval integer)
RETURNS boolean
LANGUAGE sql AS $$
    WITH c AS (
        UPDATE catalog_state SET claimed_at = clock_timestamp()
         WHERE (synced_at IS NULL
                OR synced_at < clock_timestamp() - make_interval(secs => p_interval))
           AND (claimed_at IS NULL
                OR claimed_at < clock_timestamp() - make_interval(secs => least(p_interval, 300)))
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM c)
$$;

-- The /v1/models list for a project: NULL when the catalog is empty (the
-- responder then asks the upstream), and the project's allowed models as
-- a JSON array (empty: all).
CREATE OR REPLACE FUNCTION mg_model_list(p_project_id bigint)
RETURNS TABLE (list text, allowed text)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM models) THEN NULL
           ELSE json_build_object('object', 'list', 'data',
                coalesce((SELECT json_agg(m.object ORDER BY m.id) FROM models m
                           WHERE cardinality(p.allowed_models) = 0
                              OR m.id = ANY (p.allowed_models)), '[]'::json))::text
           END,
           array_to_json(p.allowed_models)::text
      FROM projects p WHERE p.id = p_project_id
$$;

-- The catalog as the operator sees it, by id: prices as exact decimal
-- text (USD per token), the time of the sync that stored each model.
CREATE OR REPLACE FUNCTION mg_catalog_list()
RETURNS TABLE (id text, kind text, context_length integer, prompt_price text,
               completion_price text, synced_at text)
LANGUAGE sql STABLE AS $$
    SELECT m.id, m.kind, m.context_length, m.prompt_price::text,
           m.completion_price::text, mg_iso_time(m.synced_at)
      FROM models m ORDER BY m.id
$$;
