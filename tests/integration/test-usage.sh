#!/usr/bin/env bash
# test-usage.sh -- the usage query layer and its faces against a real
# Postgres and lighttpd:
#
#   1. rows at fixed times (admitted and settled through mg_admit_batch
#      and mg_settle_batch): the CLI's --format json, GET /v1/usage with
#      the project's key and with an admin key give one object, pinned by
#      fixtures/usage-golden.json; the latest requests page with a cursor
#      the same way on both faces;
#   2. time zones: a request at 23:30 UTC is on 4 November in UTC and New
#      York and on 5 November in Kolkata (+05:30); the days of the DST
#      changes in New York have 23 and 25 hours; Kolkata's hours start at
#      :30 UTC; the quota's period is stated in UTC, a report's in its zone;
#   3. live traffic through lighttpd (chat, stream, embeddings, an upstream
#      failure, a 429 that is never admitted and has no row): the totals
#      equal the sums over usage_events exactly, by project and by model;
#   4. keys: a project key reads its own project only (403 when it names
#      another), an admin key reads all and calls no model, a revoked or
#      missing key gets 401;
#   5. bad input: the CLI exits 2 and HTTP answers an OpenAI-style 400;
#   6. `usage prune` drops old months' rows and keeps their totals.
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
find_tool curl >/dev/null || missing+=(curl)
find_tool psql >/dev/null || missing+=("psql (postgresql-client)")
find_tool lighttpd >/dev/null || missing+=(lighttpd)
SPAWN_FCGI=$(find_tool spawn-fcgi) || missing+=(spawn-fcgi)
if [ -z "${PGHOST:-}" ]; then
    find_tool pg_virtualenv >/dev/null || missing+=("pg_virtualenv (postgresql-common)")
fi
mg_missing_exit "${missing[@]}"

mg_find_programs
mg_need_pg "$SELF" "$@"

mg_lib_init usage

MG_DB=
DB_CREATED=0
MOCK_PID=
MG_SERVER=lighttpd

show_logs() {
    local f
    for f in "$MG_T"/*.log "$MG_T"/*.err; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 30 "$f" | sed 's/^/# /'
    done
}

mg_traps mg_stack_cleanup

PROVIDER_KEY=sk-or-provider-USAGE654
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY
GOLDEN=$HERE/fixtures/usage-golden.json

# ---------------------------------------------------------------------------
# Setup: database, mock upstream, configuration, one stack.

mg_fresh_db modelgate_usage

start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"

CONF=$MG_T/modelgate.conf
mg_conf_write "$CONF" LOG_FILE="$MG_T/modelgate.log" UPSTREAM_TIMEOUT=20 ||
    bail "configuration written" "$CONF"

cli() {
    "$CLI" -c "$CONF" --sql-dir "$MG_SRCDIR/sql" "$@"
}

out=$(cli db migrate 2>&1) || bail "db migrate" "$out"

if start_responders main "$CONF" 2 >"$MG_T/stack-main.txt" 2>&1 &&
    start_server main "$STACK_SOCK" >>"$MG_T/stack-main.txt" 2>&1; then
    BASE=http://127.0.0.1:$SERVER_PORT
    tap_ok "stack up: lighttpd on $SERVER_PORT"
else
    bail "the stack starts" "$(cat "$MG_T/stack-main.txt")"
fi

declare -A KEY=()
# new_key NAME PROJECT [LABEL]: a key of PROJECT into KEY[NAME].
new_key() {
    local k
    k=$(cli key create "$2" ${3:+--name "$3"} 2>"$MG_T/key.err")
    [[ $k =~ ^mg-[A-Za-z0-9_-]{32}$ ]] || bail "key create $2" "$k $(cat "$MG_T/key.err")"
    KEY[$1]=$k
}

for p in alpha beta gamma; do
    out=$(cli project create "$p" 2>&1) || bail "project create $p" "$out"
done
out=$(cli project set gamma --rpm 1 2>&1) || bail "project set gamma" "$out"
new_key a1 alpha ci
new_key a2 alpha
new_key b beta
new_key g gamma
KEY[admin]=$(cli admin-key create --name ops 2>"$MG_T/key.err") ||
    bail "admin-key create" "$(cat "$MG_T/key.err")"
KEY[admin2]=$(cli admin-key create 2>"$MG_T/key.err") ||
    bail "admin-key create" "$(cat "$MG_T/key.err")"
check "admin-key list shows both, never a key" \
    bash -c '[ "$(grep -c "^mg-" <<<"$1")" = 2 ] && ! grep -qF -- "$2" <<<"$1"' _ \
    "$(cli admin-key list)" "${KEY[admin]}"

# put KEY-NAME ID AT MODEL ENDPOINT STATUS PROMPT COMPLETION COST LATENCY TTFT:
# one request admitted at AT and settled, as the gateway does it.
sql_now "CREATE FUNCTION test_put(p_key text, p_id text, p_at timestamptz, p_model text,
             p_ep text, p_status integer, p_pt integer, p_ct integer, p_cost numeric,
             p_lat integer, p_ttft integer)
         RETURNS void LANGUAGE plpgsql AS \$\$
         BEGIN
             PERFORM mg_usage_partitions(p_at);
             IF (SELECT outcome FROM mg_admit_batch(jsonb_build_array(jsonb_build_object(
                     'k', encode(sha256(convert_to(p_key, 'UTF8')), 'hex'), 'id', p_id,
                     'm', p_model, 'e', p_ep, 's', p_ttft IS NOT NULL, 'p', 10, 'o', 10)),
                     10, 0.000001, 0.000002, p_at)) <> 'ok' THEN
                 RAISE EXCEPTION 'not admitted: %', p_id;
             END IF;
             PERFORM mg_settle_batch(jsonb_build_array(jsonb_build_object(
                 'id', p_id, 'st', p_status, 'pt', p_pt, 'ct', p_ct, 'tt', p_pt + p_ct,
                 'c', p_cost, 'b', true, 'l', p_lat, 'f', p_ttft)));
         END \$\$" >/dev/null || bail "test_put made"
put() {
    sql_now "SELECT test_put(:'k', :'id', :'at', :'m', :'e', :'st', :'pt', :'ct',
                             nullif(:'c', '')::numeric, :'l', nullif(:'f', '')::integer)" \
        -v k="${KEY[$1]}" -v id="$2" -v at="$3" -v m="$4" -v e="$5" -v st="$6" \
        -v pt="$7" -v ct="$8" -v c="$9" -v l="${10}" -v f="${11}" >/dev/null ||
        bail "put $2"
}

# ---------------------------------------------------------------------------
# 1. Rows at fixed times, and one object on every face.

put a1 req_tz 2026-11-04T23:30:00Z m/a chat.completions 200 10 5 0.0001 400 120
put a1 req_n1 2026-11-02T08:00:00Z m/a chat.completions 200 100 50 0.00125 900 ''
put a1 req_n2 2026-11-02T08:10:00Z m/a chat.completions 200 200 20 0.0000005 2600 310
put a2 req_n3 2026-11-10T12:00:00Z m/b embeddings 200 64 0 0.0000064 80 ''
put a2 req_n4 2026-11-10T12:20:00Z m/b chat.completions 400 0 0 0 35 ''
put a1 req_n5 2026-11-30T23:59:00Z m/a chat.completions 502 0 0 '' 60000 ''
put b req_nb 2026-11-15T00:00:00Z m/a chat.completions 200 1 1 0.5 1000 ''
tap_ok "rows admitted and settled at fixed times"

Q_CLI=(--since 2026-11-01 --until 2026-12-01 --by model,status --tz America/New_York)
Q_HTTP='since=2026-11-01&until=2026-12-01&by=model%2Cstatus&tz=America/New_York'
cli usage --project alpha "${Q_CLI[@]}" --format json >"$MG_T/cli-usage.json" 2>"$MG_T/cli.err"
check_eq "usage --format json exits 0" "$?" 0
http GET "$BASE/v1/usage?$Q_HTTP" -H "Authorization: Bearer ${KEY[a2]}"
save_last http-usage
expect_http "GET /v1/usage with a key of alpha: 200" 200 'jsonHeaders(h)'
http GET "$BASE/v1/usage?$Q_HTTP&project=alpha" -H "Authorization: Bearer ${KEY[admin]}"
save_last http-usage-admin
expect_json "the CLI, the project's key and an admin key give one object" \
    'deepEq(f[0], f[1]) && deepEq(f[0], f[2])' \
    "$MG_T/cli-usage.json" "$MG_T/http-usage.json" "$MG_T/http-usage-admin.json"
if [ "${MG_GOLDEN_UPDATE:-0}" = 1 ]; then
    cp "$MG_T/cli-usage.json" "$GOLDEN"
fi
expect_json "the object equals fixtures/usage-golden.json" 'deepEq(f[0], f[1])' \
    "$MG_T/cli-usage.json" "$GOLDEN"
expect_json "its sums are the rows' (alpha, November in New York)" \
    'j.totals.requests === 6 && j.totals.errors === 2 && j.totals.cost === "0.0013569" &&
     j.totals.prompt_tokens === 374 && j.totals.total_tokens === 449 &&
     j.data.length === 4 && j.data[0].model === "m/a" && j.data[0].status === "2xx"' \
    "$MG_T/cli-usage.json"

cli requests --project alpha --since 2026-11-01 --until 2026-12-01 --limit 4 \
    --format json >"$MG_T/cli-req1.json" 2>"$MG_T/cli.err"
http GET "$BASE/v1/usage/requests?since=2026-11-01&until=2026-12-01&limit=4" \
    -H "Authorization: Bearer ${KEY[a1]}"
save_last http-req1
expect_json "requests: one object on both faces, newest first, a cursor" \
    'deepEq(f[0], f[1]) && j.data.map((r) => r.id).join() === "req_n5,req_n4,req_n3,req_tz" &&
     j.has_more === true && /^c[0-9]+_[0-9]+$/.test(j.next_cursor) &&
     j.data[0].status === 502 && j.data[0].cost_source === "catalog" && j.data[3].ttft_ms === 120' \
    "$MG_T/cli-req1.json" "$MG_T/http-req1.json"
cursor=$(json_value "$MG_T/cli-req1.json" 'j.next_cursor')
cli requests --project alpha --since 2026-11-01 --until 2026-12-01 --limit 4 \
    --cursor "$cursor" --format json >"$MG_T/cli-req2.json" 2>"$MG_T/cli.err"
expect_json "requests: the next page ends the list" \
    'j.data.map((r) => r.id).join() === "req_n2,req_n1" && j.has_more === false &&
     j.next_cursor === null' "$MG_T/cli-req2.json"
cli requests --project alpha --status 4xx --format ndjson >"$MG_T/req-4xx.ndjson"
check_eq "requests --status 4xx --format ndjson: one line" \
    "$(grep -c '"id":"req_n4"' "$MG_T/req-4xx.ndjson") $(wc -l <"$MG_T/req-4xx.ndjson")" "1 1"

cli usage --project alpha --since 2026-11-01 --until 2026-12-01 --by key --format json \
    >"$MG_T/by-key.json"
expect_json "by key: each key's prefix and name" \
    "j.data.map((r) => r.key + ':' + r.key_name + ':' + r.requests).join() ===
     '${KEY[a1]:0:11}:ci:4,${KEY[a2]:0:11}:null:2'" "$MG_T/by-key.json"
cli quota --project alpha --format json >"$MG_T/cli-quota.json"
http GET "$BASE/v1/quota" -H "Authorization: Bearer ${KEY[a1]}"
save_last http-quota
expect_json "quota: one object on both faces, the period stated in UTC" \
    'deepEq(f[0], f[1]) && j.data.length === 1 && j.data[0].project === "alpha" &&
     j.data[0].period.timezone === "UTC" && j.data[0].period.kind === "month"' \
    "$MG_T/cli-quota.json" "$MG_T/http-quota.json"

# ---------------------------------------------------------------------------
# 2. Time zones and DST.

day_of() {
    cli usage --project alpha --model m/a --since 2026-11-04T23:00Z --until 2026-11-05T00:00Z \
        --by day --tz "$1" --format csv | sed -n 2p | cut -d, -f1,2
}
check_eq "23:30 UTC is on 4 November in UTC" "$(day_of UTC)" "2026-11-04,1"
check_eq "23:30 UTC is on 4 November in New York" "$(day_of America/New_York)" "2026-11-04,1"
check_eq "23:30 UTC is on 5 November in Kolkata" "$(day_of Asia/Kolkata)" "2026-11-05,1"

# one request in every UTC hour around both changes
for d in 2026-03-07 2026-03-08 2026-10-31 2026-11-01; do
    sql_now "SELECT test_put(:'k', 'req_dst_' || to_char(t, 'YYYYMMDDHH24'), t, 'm/d',
                             'chat.completions', 200, 1, 1, 0.000001, 100, NULL)
               FROM generate_series(:'d'::timestamptz + interval '12 hours',
                                    :'d'::timestamptz + interval '35 hours',
                                    interval '1 hour') AS t" \
        -v k="${KEY[b]}" -v d="${d}T00:00:00Z" >/dev/null || bail "DST rows"
done
hours_of() {
    cli usage --project beta --model m/d --since "$1" --until "$2" --by hour \
        --tz America/New_York --format csv | tail -n +2 | wc -l
}
check_eq "8 March 2026 in New York (spring forward) has 23 hours" \
    "$(hours_of 2026-03-08 2026-03-09)" 23
check_eq "1 November 2026 in New York (fall back) has 25 hours" \
    "$(hours_of 2026-11-01 2026-11-02)" 25
check_eq "by day: 23 and 25 requests on those days" \
    "$(cli usage --project beta --model m/d --since 2026-03-08 --until 2026-03-09 --by day \
        --tz America/New_York --format csv | sed -n 2p | cut -d, -f1,2) $(cli usage \
        --project beta --model m/d --since 2026-11-01 --until 2026-11-02 --by day \
        --tz America/New_York --format csv | sed -n 2p | cut -d, -f1,2)" \
    "2026-03-08,23 2026-11-01,25"
cli usage --project beta --model m/d --since 2026-11-01 --until 2026-11-02 --by hour \
    --tz America/New_York --format json >"$MG_T/fallback.json"
expect_json "the repeated hour of 1 November is told apart by its offset" \
    'j.data[1].hour === "2026-11-01T01:00:00-04:00" && j.data[2].hour === "2026-11-01T01:00:00-05:00" &&
     j.period.since === "2026-11-01T00:00:00-04:00" && j.period.until === "2026-11-02T00:00:00-05:00"' \
    "$MG_T/fallback.json"
cli usage --project beta --model m/d --since 2026-11-01 --until 2026-11-02 --by hour \
    --tz Asia/Kolkata --format json >"$MG_T/kolkata.json"
expect_json "Kolkata: 24 hours starting at :30 UTC, one request each" \
    'j.data.length === 24 && j.data.every((r) => r.requests === 1 && /T[0-9]{2}:00:00\+05:30$/.test(r.hour)) &&
     j.timezone === "Asia/Kolkata" && j.period.since === "2026-11-01T00:00:00+05:30"' \
    "$MG_T/kolkata.json"

# ---------------------------------------------------------------------------
# 3. Live traffic: the totals equal the usage rows' sums.

chat() { # KEY-NAME MODEL [EXTRA]
    http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer ${KEY[$1]}" \
        -H 'Content-Type: application/json' \
        --data "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]${3:+,$3}}"
}
chat a2 mock/echo
expect_http "a chat completion" 200
chat a2 mock/echo '"stream":true,"max_tokens":5'
expect_http "a stream" 200
http POST "$BASE/v1/embeddings" -H "Authorization: Bearer ${KEY[a1]}" \
    -H 'Content-Type: application/json' --data '{"model":"openai/text-embedding-3-small","input":"hello"}'
expect_http "embeddings" 200
chat a1 'mock/echo;fail=500'
expect_http "an upstream failure" 502
chat g mock/echo
chat g mock/echo
expect_http "a second request in the minute of rpm 1: 429" 429
chat admin mock/echo
expect_http "an admin key calls no model: 401 saying so" 401 'isErr(j, "invalid_api_key") && /admin key/.test(j.error.message)'

# wait for settlement (the ledger writes after the answers)
for ((i = 0; i < 100; i++)); do
    [ "$(sql_now 'SELECT count(*) FROM reservations')" = 0 ] && break
    sleep 0.05
done
# every report here runs to the day after tomorrow (UTC): tomorrow's
# midnight in Kolkata is 18:30 UTC today, and the rows must all be in
cli usage --since 2026-03-01 --until "$(date -u -d '+2 days' +%Y-%m-%d)" --by project,model,status \
    --format json >"$MG_T/all.json" 2>"$MG_T/cli.err"
# usage_sums FILE: the settled usage rows' sums by project, model and
# status, as JSON, into FILE.
usage_sums() {
    sql_now "SELECT json_agg(json_build_object('project', p.name, 'model', coalesce(u.model, ''),
                 'status', (u.status / 100) || 'xx', 'requests', u.n, 'prompt_tokens', u.pt,
                 'completion_tokens', u.ct, 'total_tokens', u.tt, 'cost', u.cost::text))
               FROM (SELECT project_id, model, status / 100 * 100 AS status, count(*) AS n,
                            coalesce(sum(prompt_tokens), 0) AS pt,
                            coalesce(sum(completion_tokens), 0) AS ct,
                            coalesce(sum(total_tokens), 0) AS tt,
                            coalesce(trim_scale(sum(cost)), 0) AS cost
                       FROM usage_events WHERE settled_at IS NOT NULL
                      GROUP BY 1, 2, 3) u
               JOIN projects p ON p.id = u.project_id" >"$1"
}
# expect_sums NAME REPORT SUMS: every group of REPORT (by project, model,
# status) equals its sums in SUMS, and there are as many.
expect_sums() {
    expect_json "$1" \
        'f[1].length === f[0].data.length && f[1].every((s) => f[0].data.some((g) =>
            g.project === s.project && (g.model || "") === s.model && g.status === s.status &&
            g.requests === s.requests && g.prompt_tokens === s.prompt_tokens &&
            g.completion_tokens === s.completion_tokens && g.total_tokens === s.total_tokens &&
            g.cost === s.cost))' "$2" "$3"
}
usage_sums "$MG_T/sums.json"
expect_sums "every group's totals equal the sums over usage_events exactly" \
    "$MG_T/all.json" "$MG_T/sums.json"
expect_json "live rows are counted: alpha's 502; gamma's 429 was never admitted, no row" \
    'j.data.some((g) => g.project === "alpha" && g.status === "5xx" && g.model === "mock/echo;fail=500") &&
     j.data.filter((g) => g.project === "gamma").map((g) => g.status + g.requests).join() === "2xx1"' \
    "$MG_T/all.json"
check_eq "totals of all projects equal the usage rows' count and cost" \
    "$(json_value "$MG_T/all.json" 'j.totals.requests + " " + j.totals.cost')" \
    "$(sql_now "SELECT count(*) || ' ' || trim_scale(sum(cost)) FROM usage_events
                 WHERE settled_at IS NOT NULL")"

# The live rows are in their projects' quarters only until the next
# compaction folds them into the days, months and all-projects rows (and
# the keys' totals, which a report without a model reads): the reports are
# the same objects before and after.
cli usage --since 2026-03-01 --until "$(date -u -d '+2 days' +%Y-%m-%d)" --by project,key \
    --tz Asia/Kolkata --format json >"$MG_T/keys.json" 2>"$MG_T/cli.err"
out=$(sql_now "SELECT mg_rollup_compact(now() + interval '1 hour', interval '0')")
check "compaction up to the next hour ($out)" test -n "$out"
cli usage --since 2026-03-01 --until "$(date -u -d '+2 days' +%Y-%m-%d)" --by project,model,status \
    --format json >"$MG_T/all-compacted.json" 2>"$MG_T/cli.err"
expect_json "the report is the same object after compaction" 'deepEq(f[0], f[1])' \
    "$MG_T/all.json" "$MG_T/all-compacted.json"
cli usage --since 2026-03-01 --until "$(date -u -d '+2 days' +%Y-%m-%d)" --by project,key \
    --tz Asia/Kolkata --format json >"$MG_T/keys-compacted.json" 2>"$MG_T/cli.err"
expect_json "by key (the keys' totals) the same after compaction, in +05:30 too" \
    'deepEq(f[0], f[1]) && f[0].data.length > 3' "$MG_T/keys.json" "$MG_T/keys-compacted.json"
sql_now "SELECT json_agg(json_build_object('project', p.name, 'key', k.prefix,
             'requests', u.n, 'errors', u.errors, 'cost', u.cost::text,
             'total_tokens', u.tokens))
           FROM (SELECT project_id, key_id, count(*) AS n,
                        count(*) FILTER (WHERE status >= 400) AS errors,
                        coalesce(trim_scale(sum(cost)), 0) AS cost,
                        coalesce(sum(total_tokens), 0) AS tokens
                   FROM usage_events WHERE settled_at IS NOT NULL
                  GROUP BY 1, 2) u
           JOIN projects p ON p.id = u.project_id
           LEFT JOIN api_keys k ON k.id = u.key_id" >"$MG_T/key-sums.json"
expect_json "by key (every status in one row), each group equals the sums over usage_events" \
    'f[1].length === f[0].data.length && f[1].every((s) => f[0].data.some((g) =>
        g.project === s.project && g.key === s.key && g.requests === s.requests &&
        g.errors === s.errors && g.cost === s.cost && g.total_tokens === s.total_tokens))' \
    "$MG_T/keys-compacted.json" "$MG_T/key-sums.json"
# by key and status: the rows by model, which keep the status class
cli usage --since 2026-03-01 --until "$(date -u -d '+2 days' +%Y-%m-%d)" --by project,key,status \
    --tz America/New_York --format json >"$MG_T/key-status.json" 2>"$MG_T/cli.err"
sql_now "SELECT json_agg(json_build_object('project', p.name, 'key', k.prefix,
             'status', u.sc || 'xx', 'requests', u.n, 'cost', u.cost::text))
           FROM (SELECT project_id, key_id, status / 100 AS sc, count(*) AS n,
                        coalesce(trim_scale(sum(cost)), 0) AS cost
                   FROM usage_events WHERE settled_at IS NOT NULL
                  GROUP BY 1, 2, 3) u
           JOIN projects p ON p.id = u.project_id
           LEFT JOIN api_keys k ON k.id = u.key_id" >"$MG_T/key-status-sums.json"
expect_json "by key and status, every group equals the sums over usage_events exactly" \
    'f[1].length === f[0].data.length && f[1].every((s) => f[0].data.some((g) =>
        g.project === s.project && g.key === s.key && g.status === s.status &&
        g.requests === s.requests && g.cost === s.cost))' \
    "$MG_T/key-status.json" "$MG_T/key-status-sums.json"
check_eq "compaction folded every pending row" \
    "$(sql_now 'SELECT count(*) FROM usage_rollup_pending')" 0

# A settlement behind the frontier (a request of a month ago, settled now)
# is pending until the next fold, which adds it to every grain at once.
# Reported in the settlement's own transaction, the pending row is there
# whatever the responders' upkeep does meanwhile.
UNTIL=$(date -u -d '+1 day' +%Y-%m-%d)
sql_now "BEGIN;
    SELECT test_put(:'k', 'req_late', '2026-11-10T12:05:00Z', 'm/b', 'chat.completions', 200,
                    7, 3, 0.0000031, 420, 90);
    SELECT count(*) FROM usage_rollup_pending;
    SELECT mg_usage_report(NULL, NULL, NULL, '2026-03-01', :'until', NULL,
                           '{project,model,status}', 400);
    SELECT mg_usage_report('alpha', NULL, NULL, '2026-11-01', '2026-12-01', 'Asia/Kolkata',
                           '{day}', 400);
    COMMIT;" -v k="${KEY[a2]}" -v until="$UNTIL" >"$MG_T/late.out" || bail "req_late"
check_eq "a late settlement leaves one pending row" "$(sed -n 2p "$MG_T/late.out")" 1
sed -n 3p "$MG_T/late.out" >"$MG_T/late.json"
sed -n 4p "$MG_T/late.out" >"$MG_T/late-day.json"
usage_sums "$MG_T/sums-late.json"
expect_sums "a late settlement counts at once, from the pending row" \
    "$MG_T/late.json" "$MG_T/sums-late.json"
sql_now "SELECT mg_rollup_compact()" >/dev/null   # or the upkeep's did
check_eq "the fold took the pending row" "$(sql_now 'SELECT count(*) FROM usage_rollup_pending')" 0
cli usage --since 2026-03-01 --until "$UNTIL" --by project,model,status \
    --format json >"$MG_T/late-folded.json" 2>"$MG_T/cli.err"
expect_json "folded behind the frontier, the report is the same object" 'deepEq(f[0], f[1])' \
    "$MG_T/late.json" "$MG_T/late-folded.json"
cli usage --project alpha --since 2026-11-01 --until 2026-12-01 --by day --tz Asia/Kolkata \
    --format json >"$MG_T/late-day-folded.json" 2>"$MG_T/cli.err"
expect_json "by day in +05:30 too (hours, days and months written by the fold)" \
    'deepEq(f[0], f[1]) && f[1].data.find((g) => g.day === "2026-11-10").requests === 3' \
    "$MG_T/late-day.json" "$MG_T/late-day-folded.json"

# ---------------------------------------------------------------------------
# 4. Keys and scope.

http GET "$BASE/v1/usage"
expect_http "no key: 401" 401 'isErr(j, "invalid_api_key")'
http GET "$BASE/v1/usage" -H "Authorization: Bearer mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
expect_http "an unknown key: 401" 401 'isErr(j, "invalid_api_key")'
http GET "$BASE/v1/usage?project=beta" -H "Authorization: Bearer ${KEY[a1]}"
expect_http "a project key naming another project: 403" 403 \
    'isErr(j, "project_forbidden", "project") && j.error.type === "permission_error"'
http GET "$BASE/v1/usage?project=alpha&since=2026-03-01" -H "Authorization: Bearer ${KEY[a1]}"
expect_http "a project key naming its own project: 200" 200 'j.filters.project === "alpha"'
http GET "$BASE/v1/usage?since=2026-03-01&by=project" -H "Authorization: Bearer ${KEY[a1]}"
expect_http "a project key without project= reads its own project only" 200 \
    'j.data.length === 1 && j.data[0].project === "alpha"'
http GET "$BASE/v1/usage?since=2026-03-01&by=project" -H "Authorization: Bearer ${KEY[admin]}"
expect_http "an admin key reads every project" 200 \
    'j.filters.project === null && j.data.map((r) => r.project).sort().join() === "alpha,beta,gamma"'
http GET "$BASE/v1/quota" -H "Authorization: Bearer ${KEY[admin]}"
expect_http "an admin key's quota lists every project" 200 'j.data.length === 3'
out=$(cli admin-key revoke "${KEY[admin2]:0:11}" 2>&1)
check "admin-key revoke by prefix ($out)" grep -q '^revoked admin key mg-' <<<"$out"
http GET "$BASE/v1/usage" -H "Authorization: Bearer ${KEY[admin2]}"
expect_http "a revoked admin key: 401" 401 'isErr(j, "invalid_api_key")'

# ---------------------------------------------------------------------------
# 5. Bad input: exit 2 from the CLI, 400 from HTTP, the same reason.

# bad WHAT CLI-ARGS... -- QUERY: both faces refuse, naming the problem.
bad() {
    local what=$1 query out rc
    shift
    local args=()
    while [ "$1" != -- ]; do
        args+=("$1")
        shift
    done
    query=$2
    out=$(cli "${args[@]}" 2>&1 >/dev/null)
    rc=$?
    check_eq "$what: the CLI exits 2 ($out)" "$rc" 2
    http GET "$BASE/v1/$query" -H "Authorization: Bearer ${KEY[admin]}"
    expect_http "$what: HTTP 400 with an OpenAI error" 400 \
        'isErr(j) && j.error.type === "invalid_request_error"'
}
bad "an unknown --by" usage --by planet -- 'usage?by=planet'
bad "since after until" usage --since 2026-11-02 --until 2026-11-01 -- \
    'usage?since=2026-11-02&until=2026-11-01'
bad "an unknown zone" usage --tz Mars/Olympus -- 'usage?tz=Mars/Olympus'
bad "a zone abbreviation" usage --tz PST -- 'usage?tz=PST'
bad "a range over report.max_days" usage --since 2019-01-01 -- 'usage?since=2019-01-01'
bad "hours over more than 31 days" usage --by hour --since 2026-09-01 -- \
    'usage?by=hour&since=2026-09-01'
bad "a time off the quarter hour" usage --since 2026-11-01T10:07Z -- \
    'usage?since=2026-11-01T10:07Z'
bad "a time that is not one" usage --since 'next tuesday' -- 'usage?since=next%20tuesday'
bad "a limit of 0" requests --limit 0 -- 'usage/requests?limit=0'
bad "a limit of 10 million" requests --limit 10000000 -- 'usage/requests?limit=10000000'
bad "a key prefix that matches nothing" usage --key mg-nothing -- 'usage?key=mg-nothing'
bad "an unknown project" usage --project nobody -- 'usage?project=nobody'
bad "an unknown status" requests --status 7xx -- 'usage/requests?status=7xx'
bad "a forged cursor" requests --cursor 'x;DROP' -- 'usage/requests?cursor=x%3BDROP'
http GET "$BASE/v1/usage?color=red" -H "Authorization: Bearer ${KEY[admin]}"
expect_http "an unknown parameter: 400" 400 'isErr(j) && /color/.test(j.error.message)'
http GET "$BASE/v1/usage?by=day&by=model" -H "Authorization: Bearer ${KEY[admin]}"
expect_http "a parameter given twice: 400" 400 'isErr(j, "invalid_parameter", "by")'
out=$(cli usage --model $'\xff\xfe' 2>&1)
check_eq "a model that is not UTF-8: exit 2" "$?" 2
out=$(cli usage --colour red 2>&1)
check_eq "usage --colour: exit 2 ($out)" "$?" 2

# ---------------------------------------------------------------------------
# 6. Pruning old months.

march=$(cli usage --project beta --since 2026-03-01 --until 2026-04-01 --format json)
out=$(cli usage prune --before 2027-01 2>&1)
check_eq "prune of the current month: exit 2 ($out)" "$?" 2
out=$(cli usage prune --before 2026-13 2>&1)
check_eq "prune of month 13: exit 2 ($out)" "$?" 2
out=$(cli usage prune --before 2026-06 2>&1)
check "prune --before 2026-06 drops March to May and says so ($out)" \
    grep -q '^dropped usage_events_202603: 48 usage rows from 2026-03-01T00:00:00Z to 2026-04-01T00:00:00Z$' <<<"$out"
check_eq "the March rows are gone" \
    "$(sql_now "SELECT count(*) FROM usage_events WHERE created_at < '2026-06-01'")" 0
check_eq "March's totals are kept" \
    "$(cli usage --project beta --since 2026-03-01 --until 2026-04-01 --format json)" "$march"
out=$(cli requests --since 2026-03-01 2>&1)
check_eq "requests before the pruned months: exit 2 ($out)" "$?" 2

# the responders write their leak reports when they exit
stop_stack
reports=$(cat "$MG_T"/sanitizer.* 2>/dev/null)
check_eq "no AddressSanitizer/UndefinedBehaviorSanitizer reports" "${reports:-none}" none

tap_done
