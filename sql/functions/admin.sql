-- Administration: spend periods, the counter row each project gets, and
-- the rule that keeps usage rows pointing at existing projects and keys.
-- Applied by `modelgate db migrate` every time, after the numbered schema
-- files, in the same transaction.  The files of sql/functions/ run in name
-- order: a LANGUAGE sql function may call only functions defined in an
-- earlier file or earlier in its own file.  Triggers that call a function
-- are created next to it (CREATE OR REPLACE TRIGGER), so the schema files
-- never need a function that does not exist yet.
--
-- Money rule: a project's spend is counted per period (a calendar month
-- in UTC, or all time); changing the period starts it again where the new
-- kind of period starts and recomputes its spend from the rollups of the
-- settled usage rows.

-- The start of the spend period that contains p_now.
CREATE OR REPLACE FUNCTION mg_period_start(p_period text, p_now timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE p_period
           WHEN 'month' THEN date_trunc('month', p_now AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           ELSE timestamptz '1970-01-01 00:00:00+00' END
$$;

CREATE OR REPLACE FUNCTION mg_project_quota_row() RETURNS trigger
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    INSERT INTO project_quota (project_id, period_start)
    VALUES (NEW.id, mg_period_start(NEW.cap_period, now()));
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER projects_quota_row AFTER INSERT ON projects
    FOR EACH ROW EXECUTE FUNCTION mg_project_quota_row();

-- Changes a project's spend period: the period starts again where the new
-- kind of period starts, and its spend is recomputed from the rollups.
CREATE OR REPLACE FUNCTION mg_set_period(p_project_id bigint, p_period text)
RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_start timestamptz := mg_period_start(p_period, now());
BEGIN
    UPDATE projects SET cap_period = p_period WHERE id = p_project_id;
    UPDATE project_quota q
       SET period_start = v_start,
           spent = coalesce((SELECT sum(r.cost) FROM usage_rollup r
                              WHERE r.project_id = p_project_id AND r.grain = 'q'
                                AND r.bucket >= v_start), 0)
     WHERE q.project_id = p_project_id;
END
$$;

CREATE OR REPLACE FUNCTION mg_keep_usage_refs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        -- TRUNCATE
        IF EXISTS (SELECT 1 FROM usage_events) THEN
            RAISE EXCEPTION 'cannot truncate %: usage rows refer to it', TG_TABLE_NAME
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'projects' THEN
        IF EXISTS (SELECT 1 FROM usage_events u WHERE u.project_id = OLD.id) THEN
            RAISE EXCEPTION 'project % has usage rows and cannot be deleted', OLD.name
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSIF EXISTS (SELECT 1 FROM usage_events u
                   WHERE u.project_id = OLD.project_id AND u.key_id = OLD.id) THEN
        RAISE EXCEPTION 'key % has usage rows and cannot be deleted (revoke it instead)',
            OLD.prefix USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE OR REPLACE TRIGGER projects_keep_usage_refs BEFORE DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION mg_keep_usage_refs();
CREATE OR REPLACE TRIGGER api_keys_keep_usage_refs BEFORE DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION mg_keep_usage_refs();
CREATE OR REPLACE TRIGGER projects_keep_usage_refs_truncate BEFORE TRUNCATE ON projects
    FOR EACH STATEMENT EXECUTE FUNCTION mg_keep_usage_refs();
CREATE OR REPLACE TRIGGER api_keys_keep_usage_refs_truncate BEFORE TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION mg_keep_usage_refs();

-- Operations on projects and keys, called by lib/admin.c (every face of
-- the gateway goes through it).  Refusals are raised with a SQLSTATE that
-- says what went wrong and a message that can be shown as it is:
--   no_data_found (P0002)            the named project or key does not exist
--   unique_violation (23505)         the project exists already
--   cardinality_violation (21000)    a key prefix matches several live keys
--   invalid_parameter_value (22023)  a name or a limit breaks its rule

-- Times as the operator sees them: UTC, ISO 8601, to the second.
CREATE OR REPLACE FUNCTION mg_iso_time(p_at timestamptz)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- Changes the limits named in p_limits, a JSON object with any of
-- rpm, tpm (whole numbers), spend_cap (USD as a decimal string), period
-- ("month" or "total") and models (an array of model ids; empty: all);
-- a key set to null removes that limit, a key absent leaves it alone.
-- Changing the period starts it again (see mg_set_period).
CREATE OR REPLACE FUNCTION mg_project_set(p_name text, p_limits jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_id bigint;
    v_period text;
BEGIN
    SELECT id, cap_period INTO v_id, v_period FROM projects WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no project named ''%''', p_name USING ERRCODE = 'no_data_found';
    END IF;
    IF jsonb_typeof(p_limits) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'the limits must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_limits ? 'rpm' THEN
        UPDATE projects SET rpm = (p_limits->>'rpm')::integer WHERE id = v_id;
    END IF;
    IF p_limits ? 'tpm' THEN
        UPDATE projects SET tpm = (p_limits->>'tpm')::integer WHERE id = v_id;
    END IF;
    IF p_limits ? 'spend_cap' THEN
        UPDATE projects SET spend_cap = (p_limits->>'spend_cap')::numeric WHERE id = v_id;
    END IF;
    IF p_limits ? 'models' THEN
        UPDATE projects
           SET allowed_models = coalesce(array(
                   SELECT DISTINCT trim(m)
                     FROM jsonb_array_elements_text(CASE jsonb_typeof(p_limits->'models')
                                                    WHEN 'array' THEN p_limits->'models'
                                                    ELSE '[]' END) m
                    WHERE trim(m) <> '' ORDER BY 1), '{}')
         WHERE id = v_id;
    END IF;
    IF p_limits ? 'period' AND p_limits->>'period' IS DISTINCT FROM v_period THEN
        IF p_limits->>'period' IS NULL OR p_limits->>'period' NOT IN ('month', 'total') THEN
            RAISE EXCEPTION 'the period must be month or total' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM mg_set_period(v_id, p_limits->>'period');
    END IF;
END
$$;

-- Creates the project p_name with the limits p_limits (as for
-- mg_project_set; '{}': none), in one transaction.
CREATE OR REPLACE FUNCTION mg_project_create(p_name text, p_limits jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' THEN
        RAISE EXCEPTION 'invalid project name ''%'': use 1-64 letters, digits, ''.'', ''_'' or ''-'', starting with a letter or digit',
            p_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO projects (name) VALUES (p_name) ON CONFLICT (name) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'project ''%'' already exists', p_name USING ERRCODE = 'unique_violation';
    END IF;
    PERFORM mg_project_set(p_name, p_limits);
END
$$;

-- Every project by name: its limits, live keys, and the spend of the
-- period that contains p_now (NULL: now).  Money as exact decimal text.
CREATE OR REPLACE FUNCTION mg_project_list(p_now timestamptz DEFAULT NULL)
RETURNS TABLE (name text, created_at text, keys integer, rpm integer, tpm integer,
               spend_cap text, period text, period_start text, spent text,
               reserved text, models text)
LANGUAGE sql STABLE AS $$
    SELECT p.name, mg_iso_time(p.created_at),
           (SELECT count(*) FROM api_keys k
             WHERE k.project_id = p.id AND k.revoked_at IS NULL)::integer,
           p.rpm, p.tpm, p.spend_cap::text, p.cap_period,
           mg_iso_time(mg_period_start(p.cap_period, coalesce(p_now, now()))),
           (CASE WHEN q.period_start >= mg_period_start(p.cap_period, coalesce(p_now, now()))
                 THEN trim_scale(q.spent) ELSE 0 END)::text,
           trim_scale(q.reserved)::text,
           CASE WHEN cardinality(p.allowed_models) = 0 THEN NULL
                ELSE array_to_string(p.allowed_models, ',') END
      FROM projects p LEFT JOIN project_quota q ON q.project_id = p.id
     ORDER BY p.name
$$;

-- Adds a key (its SHA-256 and public prefix) to the project p_project.
CREATE OR REPLACE FUNCTION mg_key_create(p_project text, p_prefix text, p_hash bytea, p_name text)
RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    INSERT INTO api_keys (project_id, prefix, key_hash, name)
    SELECT id, p_prefix, p_hash, p_name FROM projects WHERE name = p_project;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no project named ''%''', p_project USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

-- The keys of the project p_project, oldest first (prefixes, never keys).
CREATE OR REPLACE FUNCTION mg_key_list(p_project text)
RETURNS TABLE (prefix text, name text, created_at text, revoked_at text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_id bigint;
BEGIN
    SELECT id INTO v_id FROM projects WHERE name = p_project;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no project named ''%''', p_project USING ERRCODE = 'no_data_found';
    END IF;
    RETURN QUERY
        SELECT k.prefix, k.name, mg_iso_time(k.created_at), mg_iso_time(k.revoked_at)
          FROM api_keys k WHERE k.project_id = v_id ORDER BY k.created_at, k.id;
END
$$;

-- Revokes one live key of the table p_table (api_keys or admin_keys,
-- p_what naming its keys in messages): the one whose SHA-256 is p_hash,
-- or else the one whose prefix is p_prefix when it names exactly one live
-- key.  Returns the revoked key's prefix.
CREATE OR REPLACE FUNCTION mg_revoke_in(p_table text, p_what text, p_prefix text, p_hash bytea)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_prefix text;
BEGIN
    IF p_table NOT IN ('api_keys', 'admin_keys') THEN
        RAISE EXCEPTION 'no key table %', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_hash IS NOT NULL THEN
        EXECUTE format('UPDATE %I SET revoked_at = now()
                         WHERE key_hash = $1 AND revoked_at IS NULL RETURNING prefix', p_table)
           INTO v_prefix USING p_hash;
        IF v_prefix IS NULL THEN
            RAISE EXCEPTION 'no live % matches', p_what USING ERRCODE = 'no_data_found';
        END IF;
        RETURN v_prefix;
    END IF;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM %I
                     WHERE prefix = $1 AND revoked_at IS NULL FOR UPDATE) k', p_table)
       INTO v_ids USING p_prefix;
    IF cardinality(v_ids) > 1 THEN
        RAISE EXCEPTION 'prefix ''%'' matches % %s; revoke with the whole key',
            p_prefix, cardinality(v_ids), p_what USING ERRCODE = 'cardinality_violation';
    END IF;
    IF v_ids IS NULL THEN
        RAISE EXCEPTION 'no live % with prefix ''%''', p_what, p_prefix
            USING ERRCODE = 'no_data_found';
    END IF;
    EXECUTE format('UPDATE %I SET revoked_at = now() WHERE id = $1 RETURNING prefix', p_table)
       INTO v_prefix USING v_ids[1];
    RETURN v_prefix;
END
$$;

-- Revokes one live project key (see mg_revoke_in).
CREATE OR REPLACE FUNCTION mg_key_revoke(p_prefix text, p_hash bytea)
RETURNS text
LANGUAGE sql AS $$
    SELECT mg_revoke_in('api_keys', 'key', p_prefix, p_hash)
$$;

-- Admin keys: read the usage of every project, never call a model.
CREATE OR REPLACE FUNCTION mg_admin_key_create(p_prefix text, p_hash bytea, p_name text)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO admin_keys (prefix, key_hash, name) VALUES (p_prefix, p_hash, p_name)
$$;

CREATE OR REPLACE FUNCTION mg_admin_key_list()
RETURNS TABLE (prefix text, name text, created_at text, revoked_at text)
LANGUAGE sql STABLE AS $$
    SELECT a.prefix, a.name, mg_iso_time(a.created_at), mg_iso_time(a.revoked_at)
      FROM admin_keys a ORDER BY a.created_at, a.id
$$;

-- Revokes one live admin key (see mg_revoke_in).
CREATE OR REPLACE FUNCTION mg_admin_key_revoke(p_prefix text, p_hash bytea)
RETURNS text
LANGUAGE sql AS $$
    SELECT mg_revoke_in('admin_keys', 'admin key', p_prefix, p_hash)
$$;
