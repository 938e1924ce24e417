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
-- kind of period starts and recomputes its spend from the settled usage
-- rows.

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
-- kind of period starts, and its spend is recomputed from the usage rows.
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
           spent = coalesce((SELECT sum(u.cost) FROM usage_events u
                              WHERE u.project_id = p_project_id
                                AND u.settled_at IS NOT NULL
                                AND u.created_at >= v_start), 0)
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
