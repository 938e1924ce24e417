#!/usr/bin/env bash
# test-admin.sh -- the operations layer (lib/admin.c and the functions of
# sql/functions it calls) against a real Postgres, seen as a face other
# than the CLI sees it (tests/integration/admin-probe):
#
#   1. projects: created and changed with every limit; refusals (a name
#      taken, a bad name, a bad limit, no such project) come back as
#      their enum mg_err with the CLI's message, and change nothing;
#   2. the lists (projects, keys, the catalog after a sync from the mock
#      upstream) are the rows `modelgate ... list --json` prints;
#   3. keys: create, a prefix that names two live keys is refused as
#      ambiguous (by the layer and by the CLI), revoke by the whole key
#      or a prefix, then not found;
#   4. the SQL functions alone keep their rules: a limit Postgres refuses
#      changes nothing, a project is created with its limits or not at
#      all;
#   5. the reaper and an unreachable upstream through the layer.
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
if [ -z "${PGHOST:-}" ]; then
    find_tool pg_virtualenv >/dev/null || missing+=("pg_virtualenv (postgresql-common)")
fi
mg_missing_exit "${missing[@]}"

mg_find_programs
PROBE=$MG_BUILDDIR/tests/integration/admin-probe
if [ ! -x "$PROBE" ]; then
    printf 'Bail out! not built: %s (run make check)\n' "$PROBE"
    exit 99
fi

mg_need_pg "$SELF" "$@"

mg_lib_init admin

MG_DB=
DB_CREATED=0
MOCK_PID=

show_logs() {
    local f
    for f in "$MG_T"/*.out "$MG_T"/*.err; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 40 "$f" | sed 's/^/# /'
    done
}

mg_traps mg_stack_cleanup

PROVIDER_KEY=sk-or-provider-ADMIN321
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY

# ---------------------------------------------------------------------------
# Setup: database, mock upstream, configurations (one with the upstream
# down), the schema.

mg_fresh_db modelgate_admin

start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"

CONF=$MG_T/modelgate.conf
DOWN=$MG_T/down.conf
mg_conf_write "$CONF" BASE_URL="$MOCK_URL/api/v1" UPSTREAM_TIMEOUT=5 ||
    bail "configuration written" "$CONF"
mg_conf_write "$DOWN" BASE_URL="http://127.0.0.1:9/api/v1" UPSTREAM_TIMEOUT=5 ||
    bail "configuration written" "$DOWN"

cli() {
    "$CLI" -c "$CONF" --sql-dir "$MG_SRCDIR/sql" "$@"
}

# probe OP ARGS...: the layer's answer into $MG_T/probe.json.
probe() {
    "$PROBE" "$CONF" "$@" >"$MG_T/probe.json" 2>"$MG_T/probe.err"
}

# answer JS-EXPR: the value of an expression over the last answer (j).
answer() {
    json_value "$MG_T/probe.json" "$1"
}

out=$(cli db migrate 2>&1) || bail "db migrate" "$out"
tap_ok "db migrate ($out)"

# ===========================================================================
# 1. Projects.

probe project-create ops rpm=120 tpm=50000 spend_cap=25.50 period=total \
    'models=openai/gpt-4o-mini, mock/echo,mock/echo'
expect_json "project create with every limit: success" \
    "j.rc === 'success' && j.detail === null" "$MG_T/probe.json"
probe project-create ops
expect_json "project create of a name taken: already exists, with the CLI's message" \
    "j.rc === 'already exists' && j.detail === \"project 'ops' already exists\"" "$MG_T/probe.json"
probe project-create 'no spaces'
expect_json "project create of a bad name: invalid input, the rule in the detail" \
    "j.rc === 'invalid input' && j.detail.startsWith(\"invalid project name 'no spaces': use 1-64\")" \
    "$MG_T/probe.json"
probe project-create bad rpm=0
expect_json "project create with rpm 0: invalid input, the rule in the detail" \
    "j.rc === 'invalid input' && j.detail === 'rpm must be a whole number from 1 to 999999999, or none'" \
    "$MG_T/probe.json"
probe project-set ops period=week
expect_json "project set with period week: invalid input" \
    "j.rc === 'invalid input' && j.detail === 'period must be month or total'" "$MG_T/probe.json"
probe project-set nope rpm=5
expect_json "project set of an unknown project: not found, with the CLI's message" \
    "j.rc === 'not found' && j.detail === \"no project named 'nope'\"" "$MG_T/probe.json"
check_eq "the refused calls created no project" \
    "$(sql_now "SELECT string_agg(name, ',' ORDER BY name) FROM projects")" "ops"

probe project-list
cp "$MG_T/probe.json" "$MG_T/projects-probe.json"
expect_json "project list: the limits as given, models trimmed, sorted and once each" "
    j.rc === 'success' && j.rows.length === 1 && j.rows[0].name === 'ops' &&
    j.rows[0].rpm === 120 && j.rows[0].tpm === 50000 && j.rows[0].spend_cap === '25.50' &&
    j.rows[0].period === 'total' && j.rows[0].period_start === '1970-01-01T00:00:00Z' &&
    j.rows[0].spent === '0' && j.rows[0].reserved === '0' && j.rows[0].keys === 0 &&
    j.rows[0].models === 'mock/echo,openai/gpt-4o-mini'" "$MG_T/probe.json"

probe project-set ops rpm=none spend_cap=none period=month models=none
expect_json "project set with none for rpm, spend cap and models: success" \
    "j.rc === 'success'" "$MG_T/probe.json"
probe project-create other tpm=7
probe project-list
month_start=$(sql_now "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
expect_json "project list after set: removed limits null, this month's period; a second project" "
    j.rows.map((p) => p.name).join() === 'ops,other' &&
    j.rows[0].rpm === null && j.rows[0].spend_cap === null && j.rows[0].models === null &&
    j.rows[0].tpm === 50000 && j.rows[0].period === 'month' &&
    j.rows[0].period_start === '$month_start' && j.rows[1].tpm === 7" "$MG_T/probe.json"

# ===========================================================================
# 2 and 3. Keys, and the lists against the CLI's.

probe key-create ops main
KEY1=$(answer j.key)
expect_json "key create: a key and its prefix" "
    /^mg-[A-Za-z0-9_-]{32}\$/.test(j.key) && j.prefix === j.key.slice(0, 11)" "$MG_T/probe.json"
probe key-create ops
KEY2=$(answer j.key)
probe key-create nope
expect_json "key create for an unknown project: not found" \
    "j.rc === 'not found' && j.detail === \"no project named 'nope'\" && !('key' in j)" \
    "$MG_T/probe.json"
probe key-list nope
expect_json "key list of an unknown project: not found" "j.rc === 'not found'" "$MG_T/probe.json"

probe project-list
cli project list --json >"$MG_T/projects-cli.json" 2>"$MG_T/cli.err"
expect_json "project list: the layer's rows are what the CLI prints (2 live keys counted)" \
    "deepEq(j.rows, f[1]) && j.rows[0].keys === 2" "$MG_T/probe.json" "$MG_T/projects-cli.json"
probe key-list ops
cli key list ops --json >"$MG_T/keys-cli.json" 2>"$MG_T/cli.err"
expect_json "key list: the layer's rows are what the CLI prints, oldest first, no key" "
    deepEq(j.rows, f[1]) && j.rows.length === 2 && j.rows[0].name === 'main' &&
    j.rows[1].name === null && j.rows.every((k) => k.revoked_at === null) &&
    !JSON.stringify(j).includes('$KEY1')" "$MG_T/probe.json" "$MG_T/keys-cli.json"

# a second live key with KEY1's prefix (prefixes are not unique)
PREFIX1=${KEY1:0:11}
sql_now "INSERT INTO api_keys (project_id, prefix, key_hash, name)
         SELECT project_id, prefix, sha256('twin'), 'twin' FROM api_keys WHERE prefix = :'p'" \
    -v p="$PREFIX1" >/dev/null
probe key-revoke "$PREFIX1"
expect_json "key revoke of a prefix of two live keys: ambiguous, nothing revoked" "
    j.rc === 'ambiguous prefix' &&
    j.detail === \"prefix '$PREFIX1' matches 2 keys; revoke with the whole key\"" "$MG_T/probe.json"
out=$(cli key revoke "$PREFIX1" 2>&1)
check_eq "the CLI refuses it the same: exit 1 and the layer's detail" "$?: $out" \
    "1: modelgate: prefix '$PREFIX1' matches 2 keys; revoke with the whole key"
check_eq "both keys of the prefix are still live" \
    "$(sql_now "SELECT count(*) FROM api_keys WHERE prefix = :'p' AND revoked_at IS NULL" -v p="$PREFIX1")" 2
probe key-revoke "$KEY1"
expect_json "key revoke by the whole key: that key" "j.rc === 'success' && j.prefix === '$PREFIX1'" \
    "$MG_T/probe.json"
check_eq "the twin stays live" \
    "$(sql_now "SELECT name FROM api_keys WHERE prefix = :'p' AND revoked_at IS NULL" -v p="$PREFIX1")" twin
probe key-revoke "$KEY1"
expect_json "the same key again: not found" \
    "j.rc === 'not found' && j.detail === 'no live key matches'" "$MG_T/probe.json"
probe key-revoke "$PREFIX1"
expect_json "its prefix now names one live key (the twin): revoked" \
    "j.rc === 'success' && j.prefix === '$PREFIX1'" "$MG_T/probe.json"
probe key-revoke "$PREFIX1"
expect_json "the prefix again: not found" \
    "j.rc === 'not found' && j.detail === \"no live key with prefix '$PREFIX1'\"" "$MG_T/probe.json"
probe key-revoke "${KEY2:0:11}"
probe key-list ops
cli key list ops --json >"$MG_T/keys-cli.json" 2>"$MG_T/cli.err"
expect_json "key list after the revocations: as the CLI prints, every key revoked" "
    deepEq(j.rows, f[1]) && j.rows.length === 3 &&
    j.rows.every((k) => /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z\$/.test(k.revoked_at))" \
    "$MG_T/probe.json" "$MG_T/keys-cli.json"

# The catalog.
probe catalog-list
expect_json "catalog list before a sync: no rows" "j.rc === 'success' && deepEq(j.rows, [])" \
    "$MG_T/probe.json"
probe catalog-sync
expect_json "catalog sync from the mock upstream: its 4 models" "j.rc === 'success' && j.n === 4" \
    "$MG_T/probe.json"
probe catalog-list
cli models list --json >"$MG_T/models-cli.json" 2>"$MG_T/cli.err"
expect_json "catalog list: the layer's rows are what the CLI prints, exact prices as text" "
    deepEq(j.rows, f[1]) && j.rows.length === 4 &&
    deepEq(j.rows.find((m) => m.id === 'openai/gpt-4o-mini'), Object.assign({},
        j.rows.find((m) => m.id === 'openai/gpt-4o-mini'),
        {kind: 'chat', context_length: 128000, prompt_price: '0.00000015',
         completion_price: '0.0000006'}))" "$MG_T/probe.json" "$MG_T/models-cli.json"
"$PROBE" "$DOWN" catalog-sync >"$MG_T/probe.json" 2>"$MG_T/probe.err"
expect_json "catalog sync with the upstream down: unreachable, the upstream named; catalog kept" "
    j.rc === 'upstream unreachable' &&
    j.detail.startsWith('model list from http://127.0.0.1:9/api/v1: ')" "$MG_T/probe.json"
check_eq "the catalog still has its 4 models" "$(sql_now "SELECT count(*) FROM models")" 4

# ===========================================================================
# 4. The SQL functions alone.

# sql_refusal SQL: the SQLSTATE a statement fails with, or "accepted".
sql_refusal() {
    local out
    if out=$(sql_now "\\set VERBOSITY sqlstate
$1" 2>&1); then
        echo accepted
    else
        grep -o '[0-9A-Z]\{5\}' <<<"$out" | tail -n 1
    fi
}
check_eq "mg_project_set with rpm 0: Postgres's check refuses it (23514)" \
    "$(sql_refusal "SELECT mg_project_set('other', '{\"tpm\": 9, \"rpm\": 0}')")" 23514
check_eq "... and changes nothing (tpm still 7)" \
    "$(sql_now "SELECT coalesce(rpm::text, '-') || ' ' || tpm FROM projects WHERE name = 'other'")" "- 7"
check_eq "mg_project_create with a limit refused: no project (one transaction)" \
    "$(sql_refusal "SELECT mg_project_create('half', '{\"spend_cap\": \"-1\"}')") $(sql_now "SELECT count(*) FROM projects WHERE name = 'half'")" \
    "23514 0"
check_eq "mg_project_create refuses a bad name (22023) and a name taken (23505)" \
    "$(sql_refusal "SELECT mg_project_create('-x', '{}')") $(sql_refusal "SELECT mg_project_create('ops', '{}')")" \
    "22023 23505"
check_eq "mg_project_set: an absent limit stays, null removes it, models as an array" \
    "$(sql_now "SELECT mg_project_set('other', '{\"rpm\": 3, \"models\": [\" b\", \"a\", \"\", \"b\"]}');
                SELECT mg_project_set('other', '{\"tpm\": null}');
                SELECT rpm || ' ' || coalesce(tpm::text, '-') || ' ' || array_to_string(allowed_models, ',')
                  FROM projects WHERE name = 'other'" | tail -n 1)" "3 - a,b"
check_eq "mg_key_revoke of a prefix of no live key: no_data_found (P0002)" \
    "$(sql_refusal "SELECT mg_key_revoke('mg-nothing', NULL)")" P0002

# ===========================================================================
# 5. The reaper.

probe reap 900
expect_json "reap with nothing pending: 0 settled" "j.rc === 'success' && j.n === 0" "$MG_T/probe.json"

reports=$(cat "$MG_T"/sanitizer.* 2>/dev/null)
check_eq "no AddressSanitizer/UndefinedBehaviorSanitizer reports" "${reports:-none}" none

tap_done
