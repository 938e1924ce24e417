#!/usr/bin/env bash
# tests/integration/test-upstreams.sh -- several upstreams behind one
# endpoint: three mock upstreams on loopback (alpha: a provider's API with
# its own key, serving "alpha/*" with the prefix stripped and beta as its
# fallback; local: a keyless local server serving "local/*", prefix
# stripped, prices from the config; beta: the catch-all "*" with its own
# key), one responder process behind lighttpd.  Run by `make check`.
#
# What is checked:
#   1. routing by pattern, prefix stripping, the usage row's upstream and
#      attempts; each mock gets only its own key (local: none)
#   2. fallback on 500, 429, a timeout, a connection refused, for plain
#      and streamed calls; the models list of the request body; one usage
#      row per request with every call recorded
#   3. no fallback once a stream's first byte is out
#   4. cooldown after failure_threshold failures (the upstream is skipped)
#      and recovery after it; /metrics and /healthz show the state
#   5. the reservation is that of the dearest candidate, and the spend
#      cap holds while requests fall back
#   6. models sync: each upstream's list, ids with their prefix back,
#      /v1/models the union
#
# Environment: as test-gateway.sh.  Output is TAP.

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

MG_SERVER=lighttpd
missing=()
mg_server_tool lighttpd >/dev/null || missing+=("lighttpd")
SPAWN_FCGI=$(find_tool spawn-fcgi) || missing+=(spawn-fcgi)
find_tool node >/dev/null || missing+=(node)
find_tool curl >/dev/null || missing+=(curl)
find_tool psql >/dev/null || missing+=("psql (postgresql-client)")
if [ -z "${PGHOST:-}" ]; then
    find_tool pg_virtualenv >/dev/null || missing+=("pg_virtualenv (postgresql-common)")
fi
mg_missing_exit "${missing[@]}"
mg_find_programs
mg_need_pg "$SELF" "$@"

mg_lib_init upstreams

MG_DB=
DB_CREATED=0
MOCKS=()

show_logs() {
    local f
    for f in "$MG_T"/*.log "$MG_T"/*.err; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 40 "$f" | sed 's/^/# /'
    done
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    set +e
    stop_stack
    for pid in "${MOCKS[@]}"; do
        stop_pids "$pid"
    done
    wait 2>/dev/null
    mg_finish "$rc"
}
mg_traps cleanup

KEY_A=sk-alpha-AAAA1111
KEY_B=sk-beta-BBBB2222

mg_fresh_db modelgate_upstreams

# start_one NAME [OPTIONS]: a mock; its URL in URL_<NAME>, pid in PID_<NAME>.
start_one() {
    local name=$1
    shift
    start_mock "$@" >"$MG_T/start-$name.txt" 2>&1 ||
        bail "mock $name starts" "$(cat "$MG_T/start-$name.txt")"
    MOCKS+=("$MOCK_PID")
    printf -v "URL_$name" '%s' "$MOCK_URL"
    printf -v "PID_$name" '%s' "$MOCK_PID"
    MOCK_PID=
    tap_ok "mock $name listens on $MOCK_PORT"
}
start_one alpha --require-key "$KEY_A"
start_one beta --require-key "$KEY_B"
start_one local
printf '%s\n' "$KEY_A" >"$MG_T/key-a"
printf '%s\n' "$KEY_B" >"$MG_T/key-b"
chmod 0644 "$MG_T/key-a" "$MG_T/key-b"

CONF=$MG_T/modelgate.conf
mg_conf_write "$CONF" LOG_FILE="$MG_T/modelgate.log" BASE_URL="$URL_beta/api/v1" \
    THREADS=8 UPSTREAM_TIMEOUT=30 || bail "config" "mg_conf_write"
cat >>"$CONF" <<CONF
upstreams = (
  { name = "alpha"; base_url = "$URL_alpha/v1"; key_file = "$MG_T/key-a";
    models = [ "alpha/*" ]; strip_prefix = true; prices = "config";
    prompt_price = "0.001"; completion_price = "0.002";
    fallbacks = [ "beta" ]; timeout = 2; },
  { name = "local"; base_url = "$URL_local/v1"; models = [ "local/*" ];
    strip_prefix = true; prices = "config"; prompt_price = "0";
    completion_price = "0"; },
  { name = "beta"; base_url = "$URL_beta/api/v1"; key_file = "$MG_T/key-b";
    models = [ "*" ]; }
);
routing = { max_attempts = 3; backoff_ms = 10; backoff_max_ms = 50;
            failure_threshold = 2; cooldown = 6; };
CONF

cli() {
    "$CLI" -c "$CONF" --sql-dir "$MG_SRCDIR/sql" "$@"
}

out=$(cli config check 2>&1)
check "config check accepts three upstreams" test $? -eq 0
out=$(cli db migrate 2>&1) || bail "db migrate" "$out"
cli project create p1 >/dev/null 2>&1 || bail "project create" ""
K1=$(cli key create p1 2>"$MG_T/key.err") || bail "key create" "$(cat "$MG_T/key.err")"

if start_responders main "$CONF" 1 >"$MG_T/stack.txt" 2>&1 &&
    start_server main "$STACK_SOCK" >>"$MG_T/stack.txt" 2>&1; then
    BASE=http://127.0.0.1:$SERVER_PORT
    tap_ok "stack up: lighttpd on $SERVER_PORT, one responder"
else
    bail "the stack starts" "$(cat "$MG_T/stack.txt")"
fi

# ask MODEL [STREAM] [EXTRA-JSON]: one chat completion; its request id in RID.
ask() {
    http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer $K1" \
        -H 'Content-Type: application/json' \
        --data "{\"model\": \"$1\", \"stream\": ${2:-false}${3:-}, \"max_tokens\": 100, \"messages\": [{\"role\": \"user\", \"content\": \"route me\"}]}"
    RID=$(header x-request-id)
}
# last NAME: the mock's last API request, into $MG_T/last-NAME.json.
last() {
    local u="URL_$1"
    curl -sS --max-time 5 "${!u}/__mock/last" >"$MG_T/last-$1.json"
}
# chats NAME: how many chat completions the mock served.
chats() {
    local u="URL_$1"
    curl -sS --max-time 5 "${!u}/__mock/stats" >"$MG_T/stats.json" &&
        json_value "$MG_T/stats.json" 'j.chat'
}
# scenario NAME OPTIONS: every later request of the mock gets OPTIONS.
scenario() {
    local u="URL_$1"
    curl -sS --max-time 5 -X POST --data "$2" "${!u}/__mock/scenario" >/dev/null
}
# row: the usage row of RID as JSON in $MG_T/row.json.
row() {
    settled
    usage_json "$RID" "$MG_T/row.json"
}

# ---------------------------------------------------------------------------
# 1. Routing.

ask alpha/mock/echo
expect_http "alpha/mock/echo: 200" 200 "j.model === 'mock/echo'"
last alpha
expect_json "alpha got the model without its prefix, with its own key" \
    "JSON.parse(j.body).model === 'mock/echo' && j.headers.authorization === 'Bearer $KEY_A'" \
    "$MG_T/last-alpha.json"
row
expect_json "usage row: upstream alpha, status 200; one call that served lists no attempts" \
    "j.n === 1 && j.row.upstream === 'alpha' && j.row.attempts === null &&
     j.row.status === 200 && j.row.latency_ms >= 0 && j.row.model === 'alpha/mock/echo'" "$MG_T/row.json"

ask "local/mock/echo;nocost=1"
expect_http "local/mock/echo: 200" 200
last local
expect_json "local got the model stripped, and no Authorization header at all" \
    "JSON.parse(j.body).model === 'mock/echo;nocost=1' && j.headers.authorization === undefined" \
    "$MG_T/last-local.json"
row
expect_json "usage row: upstream local, no cost reported: its config prices (0)" \
    "j.row.upstream === 'local' && j.row.cost_source === 'catalog' && Number(j.row.cost_text) === 0" \
    "$MG_T/row.json"

ask mock/echo
expect_http "mock/echo (the catch-all): 200" 200
last beta
expect_json "beta got the model as it is, with its own key" \
    "JSON.parse(j.body).model === 'mock/echo' && j.headers.authorization === 'Bearer $KEY_B'" \
    "$MG_T/last-beta.json"
check_eq "alpha, local, beta served one each" "$(chats alpha) $(chats local) $(chats beta)" "1 1 1"

# ---------------------------------------------------------------------------
# 2. Fallbacks before the first byte.

# fallback KIND OPTIONS STREAM: alpha fails with OPTIONS; beta answers.
fallback() {
    local kind=$1 opts=$2 stream=$3 b
    b=$(chats beta)
    scenario alpha "$opts"
    ask alpha/mock/echo "$stream"
    expect_http "$kind (stream $stream): alpha fails, beta answers 200" 200
    check_eq "$kind (stream $stream): beta served it" "$(chats beta)" "$((b + 1))"
    last beta
    expect_json "$kind (stream $stream): beta got the model unstripped, its own key only" \
        "JSON.parse(j.body).model === 'alpha/mock/echo' && j.headers.authorization === 'Bearer $KEY_B'" \
        "$MG_T/last-beta.json"
    row
    expect_json "$kind (stream $stream): one usage row, the two calls recorded" \
        "j.n === 1 && j.row.status === 200 && j.row.upstream === 'beta' &&
         j.row.attempts.length === 2 && j.row.attempts[0].upstream === 'alpha' &&
         j.row.attempts[0].error === '$4' && j.row.attempts[1].upstream === 'beta' &&
         j.row.attempts[1].status === 200" "$MG_T/row.json"
    # clear the failure count: alpha serves once
    scenario alpha ""
    ask alpha/mock/echo
}
fallback "500" "fail=500" false status
fallback "429" "fail=429" false status
fallback "503" "fail=503" true status
fallback "timeout" "sleep=3000" false timeout
fallback "timeout" "sleep=3000" true timeout

# the body's models list: local fails, the next model goes to beta
b=$(chats beta)
scenario local "fail=502"
ask local/mock/echo false ', "models": ["local/mock/echo", "mock/echo"]'
expect_http "models list: local fails, the next model answers 200" 200
check_eq "models list: beta served it" "$(chats beta)" "$((b + 1))"
last beta
expect_json "models list: beta got the next model, and no models member" \
    "JSON.parse(j.body).model === 'mock/echo' && !('models' in JSON.parse(j.body))" \
    "$MG_T/last-beta.json"
row
expect_json "models list: attempts local (502) then beta with the second model" \
    "j.row.attempts.length === 2 && j.row.attempts[0].upstream === 'local' &&
     j.row.attempts[0].status === 502 && j.row.attempts[1].model === 'mock/echo'" "$MG_T/row.json"
scenario local ""

# a 400 is the client's: no fallback
b=$(chats beta)
scenario alpha "fail=400"
ask alpha/mock/echo
expect_http "a 400 from alpha goes to the client" 400
check_eq "a 400: no fallback" "$(chats beta)" "$b"
scenario alpha ""
ask alpha/mock/echo

# ---------------------------------------------------------------------------
# 3. Never after a stream's first byte.

for opts in "midfail=2" "cut=2"; do
    b=$(chats beta)
    scenario alpha "$opts"
    ask alpha/mock/echo true
    expect_http "$opts: the stream started (200) and ends in an error" 200 \
        "t.startsWith('data: ') && !t.includes('[DONE]')"
    check_eq "$opts: no fallback once bytes went out" "$(chats beta)" "$b"
    row
    expect_json "$opts: one call recorded (in the row alone, or as one attempt when it broke)" \
        "j.n === 1 && (j.row.attempts === null || j.row.attempts.length === 1) &&
        j.row.upstream === 'alpha'" "$MG_T/row.json"
    scenario alpha ""
    ask alpha/mock/echo
done

# ---------------------------------------------------------------------------
# 4. Cooldown and recovery (failure_threshold 2, cooldown 6 s).

scenario alpha "fail=500"
a=$(chats alpha)
ask alpha/mock/echo
ask alpha/mock/echo
expect_http "two failures: still answered by beta" 200
ask alpha/mock/echo
expect_http "cooling down: answered" 200
http GET "$BASE/metrics"
expect_http "/metrics: alpha cooling, beta up" 200 \
    "/modelgate_upstream_up\\{upstream=\"alpha\"\\} 0/.test(t) &&
     /modelgate_upstream_up\\{upstream=\"beta\"\\} 1/.test(t) &&
     /modelgate_upstream_cooldowns_total\\{upstream=\"alpha\"\\} [1-9]/.test(t) &&
     /modelgate_upstream_calls_total\\{upstream=\"alpha\",outcome=\"status\"\\} [1-9]/.test(t)"
http GET "$BASE/healthz"
expect_http "/healthz: alpha cooling, the others up" 200 \
    "j.upstreams.alpha.state === 'cooling' && j.upstreams.beta.state === 'up' &&
     j.upstreams.local.state === 'up' && j.upstreams.alpha.retry_in_ms > 0"
ask alpha/mock/echo
row
expect_json "cooling down: alpha skipped, beta called alone" \
    "j.row.attempts === null && j.row.upstream === 'beta' && j.row.status === 200" "$MG_T/row.json"
check_eq "cooling down: alpha got two calls, not three or four" "$(chats alpha)" "$((a + 2))"
scenario alpha ""
sleep 6.2
ask alpha/mock/echo
row
expect_json "after the cooldown: alpha tried again and serves" \
    "j.row.attempts === null && j.row.upstream === 'alpha' && j.row.status === 200" "$MG_T/row.json"
http GET "$BASE/healthz"
expect_http "/healthz: alpha up again" 200 "j.upstreams.alpha.state === 'up'"

# ---------------------------------------------------------------------------
# 5. The reservation and the spend cap while falling back.

ask alpha/mock/echo
row
check_eq "the reservation is the dearest candidate's (alpha's config prices)" \
    "$(sql "SELECT reserved = prompt_estimate * 0.001 + 100 * 0.002 FROM usage_events WHERE request_id = :'r'" -v r="$RID")" t
reserved=$(json_value "$MG_T/row.json" 'j.row.reserved')
spent=$(sql "SELECT spent FROM project_quota q JOIN projects p ON p.id = q.project_id WHERE p.name = 'p1'")
cap=$(sql "SELECT trim_scale(:'s'::numeric + 3.5 * :'r'::numeric)" -v s="$spent" -v r="$reserved")
cli project set p1 --spend-cap "$cap" >/dev/null 2>&1 || tap_not_ok "spend cap set" ""
scenario alpha "sleep=700;fail=500"
t0=$(sql_now "SELECT clock_timestamp()")
par=()
for i in 1 2 3 4 5 6; do
    curl -sS --max-time 20 -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $K1" \
        -H 'Content-Type: application/json' "$BASE/v1/chat/completions" \
        --data '{"model": "alpha/mock/echo", "max_tokens": 100, "messages": [{"role": "user", "content": "route me"}]}' \
        >"$MG_T/par-$i.txt" &
    par+=("$!")
done
wait "${par[@]}"
codes=$(cat "$MG_T"/par-*.txt | sort | tr '\n' ' ')
check_eq "six at once under a cap of 3.5 reservations: three fall back to 200, three 429" \
    "$codes" "200 200 200 429 429 429 "
settled
check_eq "the cap held: spent within it, nothing reserved" \
    "$(sql "SELECT q.spent <= p.spend_cap AND q.reserved = 0 FROM project_quota q JOIN projects p ON p.id = q.project_id WHERE p.name = 'p1'")" t
check_eq "the fallbacks were charged beta's cost, not alpha's prices" \
    "$(sql "SELECT count(*) FROM usage_events WHERE status = 200 AND upstream = 'beta' AND cost < reserved AND created_at > :'t0' AND jsonb_array_length(attempts) = 2" -v t0="$t0")" 3
scenario alpha ""
cli project set p1 --spend-cap none >/dev/null 2>&1

# a connection refused: alpha stopped (after its cooldown)
sleep 6.2
stop_pids "$PID_alpha"
ask alpha/mock/echo
expect_http "alpha down: beta answers" 200
row
expect_json "alpha down: the connect failure recorded, then beta" \
    "j.row.attempts.length === 2 && j.row.attempts[0].error === 'connect' &&
     j.row.attempts[1].upstream === 'beta'" "$MG_T/row.json"

# keys: never a key of one upstream at another
check_eq "no key of alpha in anything beta or local received or logged" \
    "$(grep -c -e "$KEY_A" "$MG_T/last-beta.json" "$MG_T/last-local.json" "$MG_T/modelgate.log" | awk -F: '{s += $2} END {print s}')" 0
check_eq "no key in any usage row" \
    "$(sql "SELECT count(*) FROM usage_events WHERE attempts::text LIKE '%sk-%'")" 0

# ---------------------------------------------------------------------------
# 6. The catalog of every upstream.

out=$(cli models sync 2>&1)
check "models sync with one upstream down succeeds ($out)" test $? -eq 0
check_eq "upstream_models: local's and beta's lists, alpha's kept (none yet)" \
    "$(sql "SELECT string_agg(DISTINCT upstream, ',' ORDER BY upstream) FROM upstream_models")" "beta,local"
check_eq "local's ids have their prefix back, and are routed to it" \
    "$(sql "SELECT count(*) FROM upstream_models WHERE upstream = 'local' AND id = 'local/mock/echo' AND routed AND prompt_price = 0")" 1
http GET "$BASE/v1/models" -H "Authorization: Bearer $K1"
expect_http "/v1/models: the union, local's ids prefixed" 200 \
    "j.data.some((m) => m.id === 'local/mock/echo') && j.data.some((m) => m.id === 'mock/echo')"

tap_done
