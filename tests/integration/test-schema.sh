#!/usr/bin/env bash
# test-schema.sh -- `modelgate db migrate` against a real Postgres:
#
#   1. a fresh database gets the schema files and every function file; a
#      second run applies nothing and changes nothing;
#   2. a database made by the numbered files 001-005 of the first releases
#      (kept in fixtures/sql-005, applied as the migrator of those releases
#      did: one transaction per file, recorded in schema_migrations) is
#      upgraded, keeps its rows, and ends with exactly the schema of the
#      fresh one (pg_dump --schema-only, compared byte for byte); so is a
#      database of version 6, whose rollups (a count per histogram bucket)
#      007 moves into their grains' partitions as running sums;
#   3. a database stopped at version 3 is refused with the reason, and is
#      left as it was;
#   4. four migrations started at once on a fresh database all succeed and
#      apply the schema once (the advisory lock).
#
# Runs under pg_virtualenv when PGHOST is not set.  Output is TAP; exits 0
# when every check passed, 1 when one failed, 77 when skipped, 99 on a
# setup error.

# shellcheck source-path=SCRIPTDIR
set -u
set -o pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SELF=$HERE/$(basename -- "${BASH_SOURCE[0]}")
: "${MG_SRCDIR:=$(cd -- "$HERE/../.." && pwd -P)}"
: "${MG_BUILDDIR:=$MG_SRCDIR}"
export MG_SRCDIR MG_BUILDDIR

# shellcheck source=lib.sh disable=SC1091
. "$HERE/lib.sh"

missing=()
find_tool node >/dev/null || missing+=(node)
find_tool psql >/dev/null || missing+=("psql (postgresql-client)")
find_tool pg_dump >/dev/null || missing+=("pg_dump (postgresql-client)")
if [ -z "${PGHOST:-}" ]; then
    find_tool pg_virtualenv >/dev/null || missing+=("pg_virtualenv (postgresql-common)")
fi
mg_missing_exit "${missing[@]}"

mg_find_programs

mg_need_pg "$SELF" "$@"

mg_lib_init schema

MG_DB=
DB_CREATED=0
OTHER_DBS=()

cleanup() {
    local rc=$? db
    trap - EXIT INT TERM HUP
    set +e
    wait 2>/dev/null
    for db in "${OTHER_DBS[@]}"; do
        dropdb --if-exists "$db" >/dev/null 2>&1
    done
    mg_finish "$rc"
}
mg_traps cleanup

OLD_SQL=$HERE/fixtures/sql-005
NEW_SQL=$MG_SRCDIR/sql
export MG_IT_PROVIDER_KEY=sk-or-provider-SCHEMA789

# ---------------------------------------------------------------------------
# Helpers.

# new_db NAME: creates database NAME (dropped at the end), or bails out.
new_db() {
    local out
    out=$(createdb "$1" 2>&1) || bail "createdb $1" "$out"
    OTHER_DBS+=("$1")
}

# conf_for DB: writes $MG_T/DB.conf, a configuration naming database DB.
conf_for() {
    local ci=$conninfo
    ci=${ci%dbname=*}dbname=$(conninfo_quote "$1")
    mg_conf_write "$MG_T/$1.conf" CONNINFO="$ci"
}

# migrate DB: `modelgate db migrate` on DB with this tree's sql/.
migrate() {
    "$CLI" -c "$MG_T/$1.conf" --sql-dir "$NEW_SQL" db migrate
}

# old_release DB LAST: applies fixtures/sql-005/001..LAST to DB the way the
# migrator of the first releases did.
old_release() {
    local db=$1 last=$2 f v out
    out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE TABLE schema_migrations (
            version integer PRIMARY KEY, name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())" 2>&1) ||
        bail "schema_migrations in $db" "$out"
    for f in "$OLD_SQL"/0*.sql; do
        v=$(basename "$f")
        v=$((10#${v%%_*}))
        [ "$v" -le "$last" ] || break
        out=$( (printf 'SET client_min_messages = warning;\nBEGIN;\n'
            cat "$f"
            printf "\nINSERT INTO schema_migrations (version, name) VALUES (%d, '%s');\nCOMMIT;\n" \
                "$v" "$(basename "$f")") |
            psql -X -q -v ON_ERROR_STOP=1 -d "$db" 2>&1) ||
            bail "old release file $(basename "$f") on $db" "$out"
    done
}

# dump DB FILE: the schema of DB (pg_dump --schema-only) into FILE, less
# the \restrict lines, whose key pg_dump draws at random on every run.
# The monthly partitions of usage_events are left out: an upgraded
# database has those of its old rows too (checked on their own below).
dump() {
    local out
    out=$(pg_dump --schema-only --no-owner --exclude-table='usage_events_2*' \
        -d "$1" -f "$2.raw" 2>&1) ||
        bail "pg_dump $1" "$out"
    grep -v '^\\\(un\)\{0,1\}restrict ' "$2.raw" >"$2"
}

# psql_value DB SQL: one value.
psql_value() {
    psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

mg_fresh_db schema
FRESH=$MG_DB
conf_for "$FRESH"

# ---------------------------------------------------------------------------
# 1. A fresh database.

out=$(migrate "$FRESH" 2>&1)
check_eq "fresh: db migrate applies the schema files" "$out" \
    "migrations: 12 applied, schema version 17"
dump "$FRESH" "$MG_T/fresh.sql"
out=$(migrate "$FRESH" 2>&1)
check_eq "fresh: db migrate again applies nothing" "$out" \
    "migrations: 0 applied, schema version 17"
dump "$FRESH" "$MG_T/fresh-again.sql"
check "fresh: the second run leaves the schema as it was" \
    cmp -s "$MG_T/fresh.sql" "$MG_T/fresh-again.sql"
# the SQL files `make install` puts under the data directory: the tree's own
if out=$(make -s -C "$MG_BUILDDIR" install-dist_sqlDATA install-dist_sqlfunctionsDATA \
    DESTDIR="$MG_T/inst" 2>&1); then
    inst=$(find "$MG_T/inst" -type d -path '*/sql/functions' | head -n 1)
    check_eq "make install puts every file of sql/ and sql/functions/ in place" \
        "$(cd "${inst%/functions}" 2>/dev/null && ls ./*.sql functions/*.sql | sed 's|^\./||')" \
        "$(cd "$MG_SRCDIR/sql" && ls ./*.sql functions/*.sql | sed 's|^\./||')"
else
    tap_not_ok "make install of the SQL files" "$out"
fi
n=$(grep -c '^CREATE FUNCTION' "$MG_T/fresh.sql")
want=$(cat "$NEW_SQL"/functions/*.sql | grep -c '^CREATE OR REPLACE FUNCTION')
check_eq "fresh: every function of sql/functions/ is there ($want)" "$n" "$want"
check_eq "fresh: no function is defined in a numbered file" \
    "$(cat "$NEW_SQL"/[0-9]*.sql | grep -ci 'CREATE.*FUNCTION')" 0

# The count of admission changes (lease mode's check): moved, once per
# statement's rows, by what changes an admission answer, and by nothing
# else; in the changing transaction only.
changes() { psql_value "$FRESH" "SELECT n FROM admission_changes"; }
c0=$(changes)
moved() {   # moved NAME SQL DELTA
    local before after out
    before=$(changes)
    out=$(psql_value "$FRESH" "$2" 2>&1) || { tap_not_ok "$1" "$out"; return; }
    after=$(changes)
    check_eq "$1" "$((after - before))" "$3"
}
CAT_A='[{"id":"v/a","kind":"chat","context_length":1000,"prompt_price":"0.000001","completion_price":"0.000002","object":{}},
        {"id":"v/b","kind":"chat","context_length":1000,"prompt_price":"0.000003","completion_price":"0.000004","object":{}}]'
CAT_B=${CAT_A/0.000004/0.000005}
moved "changes: a new project and key move nothing" \
    "INSERT INTO projects (name) VALUES ('chg');
     INSERT INTO api_keys (project_id, prefix, key_hash)
         SELECT id, 'mg-chg00000', sha256('chg') FROM projects WHERE name = 'chg'" 0
moved "changes: a project's rpm set moves it" "UPDATE projects SET rpm = 5 WHERE name = 'chg'" 1
moved "changes: the same rpm again does not" "UPDATE projects SET rpm = 5 WHERE name = 'chg'" 0
moved "changes: a spend cap set moves it" "UPDATE projects SET spend_cap = 1 WHERE name = 'chg'" 1
moved "changes: a key renamed does not" "UPDATE api_keys SET name = 'n' WHERE prefix = 'mg-chg00000'" 0
moved "changes: a rolled-back revocation does not" \
    "BEGIN; UPDATE api_keys SET revoked_at = now() WHERE prefix = 'mg-chg00000'; ROLLBACK" 0
moved "changes: a key revoked moves it" \
    "UPDATE api_keys SET revoked_at = now() WHERE prefix = 'mg-chg00000'" 1
moved "changes: a first catalog moves it" "SELECT mg_catalog_replace('$CAT_A'::jsonb)" 4
moved "changes: a catalog sync that finds the same models and prices does not" \
    "SELECT mg_catalog_replace('$CAT_A'::jsonb)" 0
moved "changes: a sync that finds a price changed moves it (the upstream's row, the model's)" \
    "SELECT mg_catalog_replace('$CAT_B'::jsonb)" 2
moved "changes: a sync that finds a model gone moves it" \
    "SELECT mg_catalog_replace('[${CAT_B#*\},}'::jsonb)" 2
moved "changes: the project deleted moves it" \
    "DELETE FROM api_keys WHERE prefix = 'mg-chg00000'; DELETE FROM projects WHERE name = 'chg'" 2
check "changes: the count only grows ($c0 then $(changes))" test "$(changes)" -gt "$c0"

# ---------------------------------------------------------------------------
# 2. A database of the first releases, with rows, upgraded.

UPG=${FRESH}_upg
new_db "$UPG"
conf_for "$UPG"
old_release "$UPG" 5
out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$UPG" -c "
    INSERT INTO projects (name, spend_cap) VALUES ('kept', 5);
    INSERT INTO api_keys (project_id, prefix, key_hash)
        SELECT id, 'mg-kept0000', sha256('kept') FROM projects;
    INSERT INTO usage_events (request_id, project_id, key_id, model, endpoint, status,
           prompt_tokens, completion_tokens, total_tokens, cost, latency_ms, created_at)
        SELECT 'req-old-' || i, k.project_id, k.id, 'm/' || (i % 3), 'chat.completions', 200,
               i, 2 * i, 3 * i, i * 0.000001, 100 * i,
               timestamptz '2026-01-31 23:50:00+00' + i * interval '1 minute'
          FROM api_keys k, generate_series(1, 20) AS i;" 2>&1) ||
    bail "rows in the old database" "$out"
out=$(migrate "$UPG" 2>&1)
check_eq "upgrade: db migrate on a version-5 database applies 006 to 017" "$out" \
    "migrations: 11 applied, schema version 17"
dump "$UPG" "$MG_T/upgraded.sql"
if cmp -s "$MG_T/fresh.sql" "$MG_T/upgraded.sql"; then
    tap_ok "upgrade: pg_dump --schema-only equals the fresh database's"
else
    tap_not_ok "upgrade: pg_dump --schema-only equals the fresh database's"
    diff -u "$MG_T/fresh.sql" "$MG_T/upgraded.sql" | head -n 80 | sed 's/^/#   /'
fi
check_eq "upgrade: the project and its key are kept" \
    "$(psql_value "$UPG" "SELECT p.name || ' ' || q.spent || ' ' || k.prefix
        FROM projects p JOIN project_quota q ON q.project_id = p.id
        JOIN api_keys k ON k.project_id = p.id")" "kept 0 mg-kept0000"
check_eq "upgrade: the usage rows are kept, in their months' partitions" \
    "$(psql_value "$UPG" "SELECT tableoid::regclass::text || ' ' || count(*) || ' ' || sum(cost)
        FROM usage_events GROUP BY tableoid ORDER BY 1" | tr '\n' ' ')" \
    "usage_events_202601 9 0.000045 usage_events_202602 11 0.000165 "
check_eq "upgrade: the rollups count the old rows once (each grain, the keys' totals too)" \
    "$(psql_value "$UPG" "SELECT grain::text || ' ' || sum(requests) || ' ' || sum(cost) || ' '
        || sum(total_tokens) FROM usage_rollup WHERE project_id <> 0 GROUP BY grain ORDER BY 1" |
        tr '\n' ' ')" "$(for g in D H M S d h m q; do printf '%s 20 0.000210 630 ' "$g"; done)"
check_eq "upgrade: the histograms are cumulative (l15 counts every latency)" \
    "$(psql_value "$UPG" "SELECT count(*) FILTER (WHERE l15 <> latency_n OR t15 <> ttft_n
                                  OR l14 > l15 OR l0 > l1 OR l2 > l3)
        FROM usage_rollup")" 0
check_eq "upgrade: the key authenticates through mg_authenticate" \
    "$(psql_value "$UPG" "SELECT project_name FROM mg_authenticate(sha256('kept'))")" kept
out=$(psql_value "$UPG" "INSERT INTO projects (name) VALUES ('after');
    SELECT count(*) FROM project_quota q JOIN projects p ON p.id = q.project_id
     WHERE p.name = 'after'" 2>&1)
check_eq "upgrade: a new project gets its counter row (the trigger)" "$out" 1
out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$UPG" -c "
    INSERT INTO usage_events (request_id, project_id, key_id, endpoint, status)
        SELECT 'req-kept', k.project_id, k.id, 'chat.completions', 200 FROM api_keys k;
    DELETE FROM api_keys;" 2>&1)
check "upgrade: a key that usage rows name cannot be deleted ($out)" \
    grep -q 'has usage rows and cannot be deleted' <<<"$out"

# A database of version 6 (006 on the first releases' files, its rollups
# counted): its rollups, one count per histogram bucket then, come through
# 007 in their grains' partitions as running sums.
V6=${FRESH}_v6
new_db "$V6"
conf_for "$V6"
old_release "$V6" 5
out=$( (printf 'SET client_min_messages = warning;\nBEGIN;\n'
    cat "$NEW_SQL/006_usage_rollups.sql"
    printf "\nINSERT INTO schema_migrations (version, name) VALUES (6, '006_usage_rollups.sql');\n"
    printf "UPDATE usage_state SET backfill = false, compacted_until = '2026-02-01 00:00+00';\n"
    printf "INSERT INTO usage_rollup SELECT 7, g, '2026-01-31 23:00+00', 3, 'm/1', 'chat.completions', 2,
               6, 60, 30, 90, 0.000123, 6, 900, 2, 300, %s FROM unnest('{q,h,d,m}'::\"char\"[]) g;\nCOMMIT;\n" \
        "0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0") |
    psql -X -q -v ON_ERROR_STOP=1 -d "$V6" 2>&1) || bail "a version-6 database" "$out"
out=$(migrate "$V6" 2>&1)
check_eq "upgrade: db migrate on a version-6 database applies 007 to 017" "$out" \
    "migrations: 10 applied, schema version 17"
check_eq "upgrade: 007 moves each grain to its partition, adds the keys' totals, histograms summed up" \
    "$(psql_value "$V6" "SELECT tableoid::regclass || ' ' || requests || ' ' || cost || ' '
            || concat_ws(',', l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11, l12, l13, l14, l15)
            || ' ' || concat_ws(',', t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13,
                                t14, t15)
        FROM usage_rollup ORDER BY grain" | tr '\n' ';')" \
    "$(for g in kd kh km ks d h m q; do printf 'usage_rollup_%s 6 0.000123 0,1,1,3,3,3,3,3,3,6,6,6,6,6,6,6 0,0,0,0,0,0,0,0,0,1,2,2,2,2,2,2;' "$g"; done)"
dump "$V6" "$MG_T/v6.sql"
check "upgrade: the version-6 database ends with the fresh one's schema" \
    cmp -s "$MG_T/fresh.sql" "$MG_T/v6.sql"

# ---------------------------------------------------------------------------
# 3. A database stopped at version 3 is refused and left as it was.

OLD3=${FRESH}_v3
new_db "$OLD3"
conf_for "$OLD3"
old_release "$OLD3" 3
dump "$OLD3" "$MG_T/v3-before.sql"
out=$(migrate "$OLD3" 2>&1)
rc=$?
check_eq "version 3: db migrate exits 1" "$rc" 1
check "version 3: the error names the database's version and the oldest upgradable ($out)" \
    grep -q 'schema version 3, older than the oldest this modelgate upgrades from (5)' <<<"$out"
dump "$OLD3" "$MG_T/v3-after.sql"
check "version 3: the database is unchanged" cmp -s "$MG_T/v3-before.sql" "$MG_T/v3-after.sql"

# ---------------------------------------------------------------------------
# 4. Four migrations at once on a fresh database.

RACE=${FRESH}_race
new_db "$RACE"
conf_for "$RACE"
for i in 1 2 3 4; do
    migrate "$RACE" >"$MG_T/race-$i.out" 2>&1 &
done
fails=0
for i in 1 2 3 4; do
    wait -n || fails=$((fails + 1))
done
check_eq "race: four concurrent runs all succeed" "$fails" 0
check_eq "race: the schema file was applied once" \
    "$(cat "$MG_T"/race-*.out | grep -c '^migrations: 12 applied')" 1
dump "$RACE" "$MG_T/race.sql"
check "race: the schema equals the fresh database's" cmp -s "$MG_T/fresh.sql" "$MG_T/race.sql"

tap_done
