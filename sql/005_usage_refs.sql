-- modelgate schema, version 5: usage rows without foreign keys.
--
-- Every admission inserts a usage row, and its two foreign keys (to
-- projects and to api_keys) made Postgres check each new row by locking
-- the referenced project and key rows FOR KEY SHARE: two more row writes,
-- with their WAL, on rows that every request of a project shares (and a
-- MultiXact as soon as two admissions overlap).  That was a third of an
-- admission's time in Postgres.
--
-- The rows they protected are never deleted: keys are revoked, projects
-- are kept.  The guarantee the foreign keys gave, that a usage row never
-- names a project or key that does not exist, is kept by refusing the
-- deletion instead, which costs nothing on the request path: a project or
-- key that usage rows name cannot be deleted, and the two tables cannot
-- be truncated while usage rows exist.

ALTER TABLE usage_events
    DROP CONSTRAINT usage_events_project_id_fkey,
    DROP CONSTRAINT usage_events_key_id_fkey;

CREATE FUNCTION mg_keep_usage_refs() RETURNS trigger
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

CREATE TRIGGER projects_keep_usage_refs BEFORE DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION mg_keep_usage_refs();
CREATE TRIGGER api_keys_keep_usage_refs BEFORE DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION mg_keep_usage_refs();
CREATE TRIGGER projects_keep_usage_refs_truncate BEFORE TRUNCATE ON projects
    FOR EACH STATEMENT EXECUTE FUNCTION mg_keep_usage_refs();
CREATE TRIGGER api_keys_keep_usage_refs_truncate BEFORE TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION mg_keep_usage_refs();
