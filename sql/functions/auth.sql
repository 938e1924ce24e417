-- Authentication: a key's SHA-256 -> its key and project, for keys that
-- are not revoked.

-- Key hash -> key and project, for keys that are not revoked.
CREATE OR REPLACE FUNCTION mg_authenticate(p_key_hash bytea)
RETURNS TABLE (key_id bigint, project_id bigint, project_name text, key_prefix text)
LANGUAGE sql STABLE AS $$
    SELECT k.id, k.project_id, p.name, k.prefix
      FROM api_keys k JOIN projects p ON p.id = k.project_id
     WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
$$;

-- Key hash -> who may read usage: a project key (kind 'project', its
-- project) or an admin key (kind 'admin', every project), live ones only.
CREATE OR REPLACE FUNCTION mg_authenticate_reader(p_key_hash bytea)
RETURNS TABLE (kind text, project_name text, key_prefix text)
LANGUAGE sql STABLE AS $$
    SELECT 'project', p.name, k.prefix
      FROM api_keys k JOIN projects p ON p.id = k.project_id
     WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
    UNION ALL
    SELECT 'admin', NULL, a.prefix
      FROM admin_keys a
     WHERE a.key_hash = p_key_hash AND a.revoked_at IS NULL
$$;
