-- The model catalog: replacing it from the upstream's model list, the
-- claim that lets one responder of many sync it, and the list a project
-- may use (served at /v1/models).  Prices are numeric USD per token.

-- Replaces the catalog with p_models, a JSON array of
-- {id, kind, name, context_length, prompt_price, completion_price, object}
-- (prices as decimal strings or null).  Returns the number of models.
CREATE OR REPLACE FUNCTION mg_catalog_replace(p_models jsonb)
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
    INSERT INTO models AS m (id, kind, name, context_length, prompt_price,
                             completion_price, object, synced_at)
    SELECT DISTINCT ON (e->>'id')
           e->>'id', e->>'kind', e->>'name', (e->>'context_length')::integer,
           (e->>'prompt_price')::numeric, (e->>'completion_price')::numeric,
           e->'object', v_at
      FROM jsonb_array_elements(p_models) e
     WHERE e->>'id' IS NOT NULL
     ORDER BY e->>'id'
    ON CONFLICT (id) DO UPDATE
       SET kind = EXCLUDED.kind, name = EXCLUDED.name,
           context_length = EXCLUDED.context_length,
           prompt_price = EXCLUDED.prompt_price,
           completion_price = EXCLUDED.completion_price,
           object = EXCLUDED.object, synced_at = EXCLUDED.synced_at;
    DELETE FROM models WHERE synced_at < v_at;
    SELECT count(*) INTO v_n FROM models;
    UPDATE catalog_state SET synced_at = v_at, claimed_at = NULL, models = v_n;
    RETURN v_n;
END
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
