#!/usr/bin/env bash
# tests/integration/test-quota-hosts.sh -- quotas across hosts, crashes and
# a database outage, end to end: several responder pools (modelgate-fcgi
# under spawn-fcgi, each behind a lighttpd of its own, standing in for
# hosts) share one throwaway Postgres and the mock upstream.
#
#   A. The spend cap is a hard cap under concurrency across hosts: a burst
#      of 20 x K requests, split over two hosts, of which the cap allows
#      exactly K while they are all in flight, admits exactly K and refuses
#      the rest with 429 spend_cap_exceeded; spend, usage rows and the
#      project's counters agree afterwards.  Two rounds on fresh projects,
#      one with plain and one with streamed completions.
#   B. A responder killed with requests in flight: their pending usage rows
#      keep their reservations until quota.reap_after has passed, then
#      `modelgate reap` (first round) or another pool's reaper (second
#      round) charges them at their reserved amount, exactly once.
#   C. Postgres stopped under traffic: requests fail fast and closed (503
#      database_unavailable, the upstream is not called); once it is back
#      the same responder processes serve and record again.  The same with
#      Postgres hung (SIGSTOP): no request waits longer than
#      database.connect_timeout for it.
#
# With MG_TEST_ADMISSION=lease (quota.admission = "lease") A runs as it
# is; B checks what a killed responder leaves in that mode: no pending
# row, its lease holding the lost requests' reservations until
# quota.lease_timeout has passed since its last renewal, then charged
# whole as one usage row (by `modelgate reap`, then by another pool's
# reaper), and a late settlement moved out of that charge; C allows the
# second a responder may go on admitting from what it holds (requests
# sent later fail closed), and checks that settlements that could not be
# written during the outage are written once Postgres is back.
#
# Environment: as test-gateway.sh (MG_SRCDIR, MG_BUILDDIR, PGHOST...,
# MG_REQUIRE_INTEGRATION, MG_KEEP_TMP); the web server is always lighttpd.
# Part C stops, starts, freezes and thaws the Postgres cluster, so it runs
# only under the pg_virtualenv this script starts itself (without PGHOST);
# with a Postgres given by PGHOST it is skipped.
#
# Output is TAP; the exit status is 0 when every check passed, 1 when one
# failed, 77 when skipped, 99 on a setup error.

# shellcheck source-path=SCRIPTDIR
set -u
set -o pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SELF=$HERE/$(basename -- "${BASH_SOURCE[0]}")
: "${MG_SRCDIR:=$(cd -- "$HERE/../.." && pwd -P)}"
: "${MG_BUILDDIR:=$MG_SRCDIR}"
export MG_SRCDIR MG_BUILDDIR
MG_SERVER=lighttpd

# shellcheck source=lib.sh disable=SC1091
. "$HERE/lib.sh"

# ---------------------------------------------------------------------------
# Prerequisites.

missing=()
find_tool lighttpd >/dev/null || missing+=("lighttpd")
SPAWN_FCGI=$(find_tool spawn-fcgi) || missing+=(spawn-fcgi)
find_tool node >/dev/null || missing+=(node)
find_tool curl >/dev/null || missing+=(curl)
find_tool psql >/dev/null || missing+=("psql (postgresql-client)")
if [ -z "${PGHOST:-}" ]; then
    find_tool pg_virtualenv >/dev/null || missing+=("pg_virtualenv (postgresql-common)")
    find_tool pg_ctlcluster >/dev/null || missing+=("pg_ctlcluster (postgresql-common)")
    find_tool pg_conftool >/dev/null || missing+=("pg_conftool (postgresql-common)")
fi
mg_missing_exit "${missing[@]}"

mg_find_programs

mg_need_pg "$SELF" "$@"

# ---------------------------------------------------------------------------
# Temporary directory, and cleanup of everything started, whatever happens.

mg_lib_init it

MG_DB=
DB_CREATED=0
PG_STOPPED=0        # part C has stopped the cluster and not started it yet
FROZEN_PIDS=()      # Postgres processes part C has stopped with SIGSTOP
LOAD_PIDS=()        # quota-load.cjs clients running in the background
LOOP_STOP=$MG_T/loop.stop

show_logs() {
    local f
    for f in "$MG_T"/*.log "$MG_T"/*.out "$MG_T"/*.err; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 40 "$f" | sed 's/^/# /'
    done
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    set +e
    if [ "${#FROZEN_PIDS[@]}" -gt 0 ]; then
        kill -CONT "${FROZEN_PIDS[@]}" 2>/dev/null
    fi
    touch "$LOOP_STOP"
    for pid in "${LOAD_PIDS[@]}"; do
        pid_runs "$pid" quota-load && kill -TERM "$pid" 2>/dev/null
    done
    if [ "$PG_STOPPED" = 1 ]; then
        # so that the test database can be dropped
        pg_ctlcluster "$PGVERSION" regress start >/dev/null 2>&1
    fi
    stop_stack
    for pid in $(jobs -p); do
        kill -TERM "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    mg_finish "$rc"
}
mg_traps cleanup

# ---------------------------------------------------------------------------
# Fixed values.

PROVIDER_KEY=sk-or-provider-quota-hosts
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY
MODEL=openai/gpt-4o-mini
UPSTREAM_TIMEOUT=5      # s; every slow request below is killed or answered well before
REAP_AFTER=8            # s; > UPSTREAM_TIMEOUT + CONNECT_TIMEOUT, as the configuration requires
CONNECT_TIMEOUT=2       # s; database.connect_timeout
K=5                     # requests a cap allows in part A
BURST=$((20 * K))       # requests of a burst
SLEEP_MS=2500           # the upstream's time for each request of a burst
CRASH_N=4               # requests lost with their responder in part B
ADMISSION=${MG_TEST_ADMISSION:-strict}
LEASE_TIMEOUT=4         # s; quota.lease_timeout (lease mode)
# how long after Postgres stops answering a responder may still admit from
# its leases (the key and model answers are kept a second), with a margin
GRACE_MS=0
[ "$ADMISSION" = lease ] && GRACE_MS=1200
LOAD=$HERE/quota-load.cjs

now_ms() {
    local t=$EPOCHREALTIME
    printf '%s\n' "$(( ${t/./} / 1000 ))"
}

# sleep_until EPOCH-MS
sleep_until() {
    local left
    left=$(( $1 - $(now_ms) ))
    if [ "$left" -gt 0 ]; then
        sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
    fi
}

# ---------------------------------------------------------------------------
# Setup: database, mock upstream, configurations, the pools.

mg_fresh_db modelgate_it

start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"
tap_ok "mock upstream listens on $MOCK_PORT"

# write_conf NAME THREADS REAP-INTERVAL: $MG_T/NAME.conf, logging to
# $MG_T/NAME.log.  The fallback prices are the mock's own and the catalog
# stays empty, so a reservation is ceil(body bytes / 3) x 0.000001 +
# max_tokens x 0.000002 USD.
write_conf() {
    mg_conf_write "$MG_T/$1.conf" DB_CONNECT_TIMEOUT="$CONNECT_TIMEOUT" \
        UPSTREAM_TIMEOUT="$UPSTREAM_TIMEOUT" THREADS="$2" SHUTDOWN_GRACE=5 \
        DEFAULT_MAX_TOKENS=256 FALLBACK_PROMPT_PRICE=0.000001 \
        FALLBACK_COMPLETION_PRICE=0.000002 REAP_AFTER="$REAP_AFTER" REAP_INTERVAL="$3" \
        LEASE_TIMEOUT="$LEASE_TIMEOUT"
}

write_conf hostA 8 0
write_conf hostB 8 0
write_conf victim 8 0        # the pools that are killed in part B
write_conf survivor 4 1      # the pool whose reaper runs in part B
for c in hostA hostB victim survivor; do
    check "modelgate-fcgi -t accepts $c.conf" "$FCGI" -t -c "$MG_T/$c.conf"
done

cli() {
    "$CLI" -c "$MG_T/hostA.conf" --sql-dir "$MG_SRCDIR/sql" "$@"
}

out=$(cli db migrate 2>&1) || bail "db migrate" "$out"
tap_ok "db migrate ($out)"

# new_key PROJECT: prints a new key of the project.
new_key() {
    local key
    key=$(cli key create "$1" 2>"$MG_T/key.err")
    if [[ ! $key =~ ^mg-[A-Za-z0-9_-]{32}$ ]]; then
        printf 'key create %s: %s %s\n' "$1" "$key" "$(cat "$MG_T/key.err")" >&2
        return 1
    fi
    printf '%s\n' "$key"
}

STACK_PORT=
STACK_PIDS=()

# start_stack NAME CONF PROCESSES: responders under spawn-fcgi on
# $MG_T/NAME.sock and a lighttpd of their own in front; sets STACK_PORT and
# STACK_PIDS.  Prints what went wrong on failure.
start_stack() {
    STACK_PORT=
    start_responders "$1" "$2" "$3" || return 1
    start_server "$1" "$STACK_SOCK" || return 1
    STACK_PORT=$SERVER_PORT
}

for h in hostA hostB; do
    if start_stack "$h" "$MG_T/$h.conf" 2 >"$MG_T/stack-$h.txt" 2>&1; then
        tap_ok "$h: lighttpd on $STACK_PORT, responders ${STACK_PIDS[*]} (2 x 8 threads)"
    else
        bail "$h starts" "$(cat "$MG_T/stack-$h.txt")"
    fi
    if [ "$h" = hostA ]; then
        URL_A=http://127.0.0.1:$STACK_PORT/v1/chat/completions
        PIDS_A=("${STACK_PIDS[@]}")
    else
        URL_B=http://127.0.0.1:$STACK_PORT/v1/chat/completions
        PIDS_B=("${STACK_PIDS[@]}")
    fi
done

# ---------------------------------------------------------------------------
# Helpers for the checks.

# reservation BODY-BYTES MAX-TOKENS: the contract's reservation in USD.
reservation() {
    sql "SELECT trim_scale(ceil(:'len'::numeric / 3) * 0.000001 + :'mt'::numeric * 0.000002)" \
        -v len="$1" -v mt="$2"
}

# usd_sum N A [B]: N x A + B (B defaults to 0), exact.
usd_sum() {
    sql "SELECT trim_scale(:'n'::numeric * :'a'::numeric + :'b'::numeric)" \
        -v n="$1" -v a="$2" -v b="${3:-0}"
}

# body_len TEMPLATE: the length in bytes of a body made from TEMPLATE.
body_len() {
    printf '%s' "${1//'{{i}}'/000}" | wc -c
}

# project_json PROJECT FILE: the project's counters and usage rows as JSON:
# {cap, spent, reserved (texts), rows, pending, sum_eq (sum(cost) =
# spent), under_cap, reserved_all (the rows' distinct reservations),
# rids, together (every row was admitted before any was settled),
# reaped (rows as the reaper leaves them), reaped_late (every
# reaped row settled reap_after or more after its admission)}.
project_json() {
    sql "WITH p AS (SELECT id, spend_cap FROM projects WHERE name = :'p'),
              q AS (SELECT q.* FROM project_quota q JOIN p ON p.id = q.project_id),
              u AS (SELECT u.* FROM usage_events u JOIN p ON p.id = u.project_id)
         SELECT json_build_object(
            'cap', (SELECT spend_cap::text FROM p),
            'spent', (SELECT spent::text FROM q),
            'reserved', (SELECT reserved::text FROM q),
            'rows', (SELECT count(*) FROM u),
            'pending', (SELECT count(*) FROM u WHERE settled_at IS NULL),
            'sum_eq', (SELECT coalesce(sum(cost), 0) FROM u) = (SELECT spent FROM q),
            'sum_cost', (SELECT coalesce(sum(cost), 0)::text FROM u),
            'under_cap', (SELECT spent FROM q) <= coalesce((SELECT spend_cap FROM p), 'Infinity'),
            'reserved_all', (SELECT json_agg(DISTINCT reserved) FROM u),
            'rids', (SELECT coalesce(json_agg(request_id), '[]') FROM u),
            'together', (SELECT max(created_at) < min(settled_at) FROM u),
            'reaped', (SELECT count(*) FROM u WHERE status = 502 AND error_type = 'reaped'
                          AND cost = reserved AND cost_source = 'reserved'
                          AND settled_at IS NOT NULL),
            'reaped_late', (SELECT bool_and(settled_at - created_at >= make_interval(secs => :'ra'))
                              FROM u WHERE error_type = 'reaped'))" \
        -v p="$1" -v ra="$REAP_AFTER" >"$2"
}

# pending_count PROJECT
pending_count() {
    sql_now "SELECT count(*) FROM usage_events u JOIN projects p ON p.id = u.project_id
          WHERE p.name = :'p' AND u.settled_at IS NULL" -v p="$1"
}

# lease_count PROJECT: the project's live leases.
lease_count() {
    sql_now "SELECT count(*) FROM leases l JOIN projects p ON p.id = l.project_id
          WHERE p.name = :'p' AND l.reaped_at IS NULL" -v p="$1"
}

# pending_age_ms PROJECT youngest|oldest: milliseconds since the youngest
# or the oldest pending row of the project was admitted, by the database's
# clock.
pending_age_ms() {
    local which=min
    [ "$2" = youngest ] && which=max
    sql_now "SELECT round(1000 * extract(epoch FROM clock_timestamp() - $which(u.created_at)))
           FROM usage_events u JOIN projects p ON p.id = u.project_id
          WHERE p.name = :'p' AND u.settled_at IS NULL" -v p="$1"
}

mock_chat() {
    curl -sS --max-time 10 "$MOCK_URL/__mock/stats" | node -e '
        let s = ""; process.stdin.on("data", (d) => s += d);
        process.stdin.on("end", () => console.log(JSON.parse(s).chat));'
}

# post_chat URL KEY BODY: one chat request with curl (answer as http()).
post_chat() {
    http POST "$1" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
        --data-binary "$3"
}

# ---------------------------------------------------------------------------
# A. The spend cap under concurrency, across two hosts.

TEMPLATE_1='{"model":"'$MODEL';sleep='$SLEEP_MS'","max_tokens":200,"messages":[{"role":"user","content":"cap round 1 request {{i}}"}]}'
# Streamed, with as many tokens as max_tokens: each request costs nearly
# its reservation, so the cap allows no more than K even once some of
# them are settled.
TEMPLATE_2='{"model":"'$MODEL';sleep='$SLEEP_MS';tokens=1000;delay=0","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"cap round 2 request {{i}}"}]}'

# The reservations from the contract, and one measured: a request of a
# calibration project with a body as long as round 1's.
RES_1=$(reservation "$(body_len "$TEMPLATE_1")" 200)
RES_2=$(reservation "$(body_len "$TEMPLATE_2")" 1000)
cli project create calibrate >/dev/null 2>&1
KEY_CAL=$(new_key calibrate) || bail "key create calibrate"
post_chat "$URL_A" "$KEY_CAL" "${TEMPLATE_1//'{{i}}'/999}"
expect_http "calibration request: 200" 200 "j.choices[0].message.content === 'mock reply: cap round 1 request 999'"
cal_rid=$(header x-request-id)
check_eq "its usage row holds the contract's reservation ceil($(body_len "$TEMPLATE_1")/3) x 0.000001 + 200 x 0.000002 = $RES_1" \
    "$(sql "SELECT reserved = :'r'::numeric FROM usage_events WHERE request_id = :'rid'" \
        -v r="$RES_1" -v rid="$cal_rid")" t

# cap_round ROUND TEMPLATE RESERVATION STREAM(0|1): a fresh project whose
# total spend cap is K x RESERVATION + RESERVATION / 2, with one key for
# each host; BURST requests at once, alternating between the hosts.
cap_round() {
    local round=$1 template=$2 res=$3 stream=$4 project=cap-round-$1 cap ka kb t0 t1 f
    cap=$(usd_sum "$K" "$res" "$(sql "SELECT :'r'::numeric / 2" -v r="$res")")
    out=$(cli project create "$project" --spend-cap "$cap" --period total 2>&1) ||
        bail "project create $project" "$out"
    ka=$(new_key "$project") || bail "key create $project"
    kb=$(new_key "$project") || bail "key create $project"
    f=$MG_T/burst-$round.json
    t0=$(now_ms)
    node "$LOAD" burst "$f" "$BURST" "$template" "$URL_A" "$ka" "$URL_B" "$kb" \
        >"$MG_T/burst-$round.err" 2>&1 ||
        tap_not_ok "round $round: the burst client ran" "$(cat "$MG_T/burst-$round.err")"
    t1=$(now_ms)
    project_json "$project" "$MG_T/db-$round.json"
    local summary
    summary=$(json_value "$f" "
        ['admitted ' + j.filter((r) => r.status === 200).length,
         'host A ' + j.filter((r) => r.status === 200 && r.target === '${URL_A#http://}'.split('/')[0]).length,
         'host B ' + j.filter((r) => r.status === 200 && r.target === '${URL_B#http://}'.split('/')[0]).length,
         'last refusal after ' + Math.max(...j.filter((r) => r.status === 429).map((r) => r.end - Math.min(...j.map((x) => x.start)))) + ' ms'
        ].join(', ')")
    tap_diag "round $round: cap $cap = $K x $res + $res/2; $BURST requests in $((t1 - t0)) ms; $summary"
    expect_json "round $round: every request answered 200 or 429" "
        j.length === $BURST && j.every((r) => r.status === 200 || r.status === 429)" "$f"
    expect_json "round $round: at most K = $K admitted across both hosts" "
        j.filter((r) => r.status === 200).length <= $K" "$f"
    expect_json "round $round: exactly K = $K admitted (the cap allows K in flight at once)" "
        j.filter((r) => r.status === 200).length === $K" "$f"
    expect_json "round $round: every other request 429 insufficient_quota spend_cap_exceeded, x-should-retry: false" "
        j.filter((r) => r.status !== 200).every((r) => r.status === 429 &&
            r.code === 'spend_cap_exceeded' && r.type === 'insufficient_quota' &&
            r.shouldRetry === 'false')" "$f"
    if [ "$stream" = 1 ]; then
        expect_json "round $round: the admitted streams ran to data: [DONE]" "
            j.filter((r) => r.status === 200).every((r) => r.done)" "$f"
    else
        expect_json "round $round: the admitted requests got their own completion" "
            j.filter((r) => r.status === 200).every((r) =>
                r.content === 'mock reply: cap round 1 request ' + String(r.i).padStart(3, '0'))" "$f"
    fi
    expect_json "round $round: the admitted requests were all in flight together (admitted before any was settled)" \
        "j.together === true" "$MG_T/db-$round.json"
    expect_json "round $round: one usage row per admitted request, none for the refused" "
        ((a) => j.rows === a.length && a.every((r) => j.rids.includes(r.rid)))(
            f[1].filter((r) => r.status === 200))" "$MG_T/db-$round.json" "$f"
    expect_json "round $round: every row reserved the contract's $res" "
        deepEq(j.reserved_all, [Number('$res')])" "$MG_T/db-$round.json"
    expect_json "round $round: spend within the cap, sum of usage costs = project_quota.spent" "
        j.under_cap === true && j.sum_eq === true" "$MG_T/db-$round.json"
    expect_json "round $round: no reservation left (project_quota.reserved = 0, no pending row)" "
        Number(j.reserved) === 0 && j.pending === 0" "$MG_T/db-$round.json"
}

cap_round 1 "$TEMPLATE_1" "$RES_1" 0
cap_round 2 "$TEMPLATE_2" "$RES_2" 1

# ---------------------------------------------------------------------------
# B. Responders killed with requests in flight; the reaper.

# round2_stacks: project crash-2 (KEY_C2), whose cap leaves room for the
# lost requests and one and a half more; a surviving pool whose reaper runs
# every second (URL_S) and a victim pool (STACK_PORT, STACK_PIDS).
round2_stacks() {
    cli project create crash-2 --spend-cap "$(usd_sum $((CRASH_N + 1)) "$RES_SLOW" \
        "$(sql "SELECT :'r'::numeric / 2" -v r="$RES_SLOW")")" --period total >/dev/null 2>&1
    KEY_C2=$(new_key crash-2) || bail "key create crash-2"
    if start_stack survivor "$MG_T/survivor.conf" 1 >"$MG_T/stack-survivor.txt" 2>&1; then
        URL_S=http://127.0.0.1:$STACK_PORT/v1/chat/completions
        tap_ok "survivor: lighttpd on $STACK_PORT, responder ${STACK_PIDS[*]} (reap_interval 1 s, reap_after $REAP_AFTER s, admission $ADMISSION)"
    else
        bail "survivor starts" "$(cat "$MG_T/stack-survivor.txt")"
    fi
    if start_stack victim-2 "$MG_T/victim.conf" 1 >"$MG_T/stack-victim-2.txt" 2>&1; then
        tap_ok "victim-2: lighttpd on $STACK_PORT, responder ${STACK_PIDS[*]} (reap_interval 0)"
    else
        bail "victim-2 starts" "$(cat "$MG_T/stack-victim-2.txt")"
    fi
}

SLOW_TEMPLATE='{"model":"'$MODEL';sleep=20000","max_tokens":100,"messages":[{"role":"user","content":"lost with the responder {{i}}"}]}'
RES_SLOW=$(reservation "$(body_len "$SLOW_TEMPLATE")" 100)
# A small request (reserves less than RES_SLOW, more than RES_SLOW / 2).
SMALL_BODY='{"model":"'$MODEL'","max_tokens":100,"messages":[{"role":"user","content":"after the crash"}]}'

# crash ROUND PROJECT URL PID KEY: CRASH_N slow requests of PROJECT (with
# its KEY) to URL, served by the single responder PID; once their pending
# rows exist the responder gets SIGKILL.  Sets CRASH_RIDS (their request
# ids, from the usage rows).
CRASH_RIDS=
crash() {
    local round=$1 project=$2 url=$3 pid=$4 key=$5 i n load f=$MG_T/crash-$1.json
    node "$LOAD" burst "$f" "$CRASH_N" "$SLOW_TEMPLATE" "$url" "$key" \
        >"$MG_T/crash-$round.err" 2>&1 &
    load=$!
    LOAD_PIDS+=("$load")
    for ((i = 0; i < 200; i++)); do
        n=$(pending_count "$project")
        [ "$n" -ge "$CRASH_N" ] && break
        sleep 0.05
    done
    check_eq "crash $round: $CRASH_N pending rows (settled_at IS NULL) while the requests are in flight" \
        "$n" "$CRASH_N"
    pid_runs "$pid" modelgate-fcgi && kill -KILL "$pid"
    if wait_gone 5 "$pid"; then
        tap_ok "crash $round: responder $pid killed (SIGKILL)"
    else
        tap_not_ok "crash $round: responder $pid killed (SIGKILL)"
    fi
    wait "$load"
    expect_json "crash $round: the clients got an error from lighttpd (5xx), no answer from the dead responder" "
        j.length === $CRASH_N && j.every((r) => r.status >= 500 && r.status <= 599)" "$f"
    tap_diag "crash $round: client statuses $(json_value "$f" "j.map((r) => r.status).join(' ')")"
    CRASH_RIDS=$(sql "SELECT string_agg(u.request_id, ',') FROM usage_events u
                        JOIN projects p ON p.id = u.project_id
                       WHERE p.name = :'p' AND u.settled_at IS NULL" -v p="$project")
}

# check_reaped ROUND PROJECT: the lost requests' rows as the reaper leaves
# them, the project's counters, and no second settlement.
check_reaped() {
    local round=$1 project=$2 rid before after
    project_json "$project" "$MG_T/reaped-$round.json"
    expect_json "crash $round: reaped rows: status 502, error_type 'reaped', cost = reserved = $RES_SLOW, cost_source 'reserved'" "
        j.reaped === $CRASH_N && j.pending === 0 && deepEq(j.reserved_all, [Number('$RES_SLOW')])" \
        "$MG_T/reaped-$round.json"
    expect_json "crash $round: reaped only once reap_after ($REAP_AFTER s) had passed since admission" \
        "j.reaped_late === true" "$MG_T/reaped-$round.json"
    expect_json "crash $round: project_quota.reserved back to 0, spent = $CRASH_N x $RES_SLOW = sum of costs" "
        Number(j.reserved) === 0 && j.sum_eq === true &&
        Number(j.spent) === $(usd_sum "$CRASH_N" "$RES_SLOW")" "$MG_T/reaped-$round.json"
    rid=${CRASH_RIDS%%,*}
    before=$(sql "SELECT row_to_json(u)::text || q.spent || '/' || q.reserved FROM usage_events u
                    JOIN project_quota q ON q.project_id = u.project_id WHERE u.request_id = :'r'" -v r="$rid")
    check_eq "crash $round: mg_settle on a reaped row returns false" \
        "$(sql "SELECT mg_settle(:'r', 200, NULL, 10, 10, 20, 0.5, true, 'gen-late', 'Mock', 100, NULL)" -v r="$rid")" f
    after=$(sql "SELECT row_to_json(u)::text || q.spent || '/' || q.reserved FROM usage_events u
                   JOIN project_quota q ON q.project_id = u.project_id WHERE u.request_id = :'r'" -v r="$rid")
    check_eq "crash $round: ... and changes neither the row nor the project's counters" "$after" "$before"
}

if [ "$ADMISSION" = lease ]; then
    # shellcheck source=quota-hosts-lease.sh disable=SC1091
    . "$HERE/quota-hosts-lease.sh"
else
# Round 1: no responder reaps (reap_interval = 0 everywhere); `modelgate
# reap` does, by hand.  The cap leaves room for the lost requests and half
# of one more, so until the cap is raised nothing else fits.
cli project create crash-1 --spend-cap "$(usd_sum "$CRASH_N" "$RES_SLOW" \
    "$(sql "SELECT :'r'::numeric / 2" -v r="$RES_SLOW")")" --period total >/dev/null 2>&1
KEY_C1=$(new_key crash-1) || bail "key create crash-1"
if start_stack victim-1 "$MG_T/victim.conf" 1 >"$MG_T/stack-victim-1.txt" 2>&1; then
    tap_ok "victim-1: lighttpd on $STACK_PORT, responder ${STACK_PIDS[*]} (1 x 8 threads, reap_interval 0)"
else
    bail "victim-1 starts" "$(cat "$MG_T/stack-victim-1.txt")"
fi
crash 1 crash-1 "http://127.0.0.1:$STACK_PORT/v1/chat/completions" "${STACK_PIDS[0]}" "$KEY_C1"

post_chat "$URL_A" "$KEY_C1" "$SMALL_BODY"
expect_http "crash 1: the lost requests' reservations still count: a new request gets 429 spend_cap_exceeded" 429 \
    "isErr(j, 'spend_cap_exceeded')"
out=$(cli reap 2>&1)
age=$(pending_age_ms crash-1 oldest)
check_eq "crash 1: modelgate reap before reap_after (oldest pending row $age ms old) reaps nothing" \
    "$out" "reaped 0 requests older than $REAP_AFTER s (charged at their reserved amount)"
project_json crash-1 "$MG_T/pending-1.json"
expect_json "crash 1: ... the rows stay pending and keep their reservations (reserved = $CRASH_N x $RES_SLOW, spent 0)" "
    j.pending === $CRASH_N && Number(j.reserved) === $(usd_sum "$CRASH_N" "$RES_SLOW") && Number(j.spent) === 0" \
    "$MG_T/pending-1.json"
# until the youngest lost row is older than reap_after
young=$(pending_age_ms crash-1 youngest)
sleep_until $(( $(now_ms) + REAP_AFTER * 1000 + 300 - ${young:-0} ))
out=$(cli reap 2>&1)
check_eq "crash 1: modelgate reap after reap_after reaps the $CRASH_N lost requests" \
    "$out" "reaped $CRASH_N requests older than $REAP_AFTER s (charged at their reserved amount)"
check_reaped 1 crash-1
post_chat "$URL_A" "$KEY_C1" "$SMALL_BODY"
expect_http "crash 1: reaped at their reserved amount, they use up the cap: still 429" 429 \
    "isErr(j, 'spend_cap_exceeded')"
out=$(cli project set crash-1 --spend-cap "$(usd_sum $((CRASH_N + 1)) "$RES_SLOW" \
    "$(sql "SELECT :'r'::numeric / 2" -v r="$RES_SLOW")")" 2>&1)
post_chat "$URL_A" "$KEY_C1" "$SMALL_BODY"
expect_http "crash 1: with room under a raised cap the project spends again: 200" 200 \
    "j.choices[0].message.content === 'mock reply: after the crash'"
project_json crash-1 "$MG_T/after-1.json"
expect_json "crash 1: the new request settled normally; counters consistent (reserved 0, spent = sum of costs)" "
    j.rows === $((CRASH_N + 1)) && j.pending === 0 && Number(j.reserved) === 0 && j.sum_eq === true &&
    j.under_cap === true" "$MG_T/after-1.json"

# Round 2: a surviving pool reaps by itself (reap_interval = 1 s).
round2_stacks
crash 2 crash-2 "http://127.0.0.1:$STACK_PORT/v1/chat/completions" "${STACK_PIDS[0]}" "$KEY_C2"
# shortly before the oldest lost row reaches reap_after
old=$(pending_age_ms crash-2 oldest)
sleep_until $(( $(now_ms) + REAP_AFTER * 1000 - 1500 - ${old:-0} ))
n=$(pending_count crash-2)
age=$(pending_age_ms crash-2 oldest)
if [ "${age:-0}" -lt $((REAP_AFTER * 1000)) ]; then
    check_eq "crash 2: the survivor's reaper leaves them pending before reap_after (oldest $age ms old)" \
        "$n" "$CRASH_N"
else
    tap_skip "crash 2: the survivor's reaper leaves them pending before reap_after" \
        "the machine was too slow to look in time (oldest ${age:-?} ms old)"
fi
t0=$(now_ms)
for ((i = 0; i < 200; i++)); do
    [ "$(pending_count crash-2)" -eq 0 ] && break
    sleep 0.1
done
check_eq "crash 2: ... and settles them by itself after reap_after ($(( $(now_ms) - t0 )) ms later)" \
    "$(pending_count crash-2)" 0
reaped_by_log=$(sed -n 's/.*reaper: settled \([0-9]*\) requests.*/\1/p' "$MG_T/survivor.log" |
    awk '{ n += $1 } END { print n + 0 }')
check_eq "crash 2: the survivor's log reports the $CRASH_N requests it reaped" "$reaped_by_log" "$CRASH_N"
check_reaped 2 crash-2
post_chat "$URL_S" "$KEY_C2" "$SMALL_BODY"
expect_http "crash 2: the project spends again where the cap allows: 200" 200 \
    "j.choices[0].message.content === 'mock reply: after the crash'"
project_json crash-2 "$MG_T/after-2.json"
expect_json "crash 2: the new request settled normally; counters consistent" "
    j.rows === $((CRASH_N + 1)) && j.pending === 0 && Number(j.reserved) === 0 && j.sum_eq === true &&
    j.under_cap === true" "$MG_T/after-2.json"
fi

# ---------------------------------------------------------------------------
# C. Postgres stopped under traffic: fail closed, fast; then recover in
# the same processes.

# The cluster pg_virtualenv made for this run: PG_CLUSTER_CONF_ROOT is
# its own, so "regress" there can be no one else's.  (Not pg_lsclusters:
# its "online" needs the unix socket in the shared /var/run/postgresql.)
cluster_ok=0
if [ -n "${MG_IT_UNDER_PG_VIRTUALENV:-}" ] && [ -n "${PGVERSION:-}" ] &&
    [ -n "${PG_CLUSTER_CONF_ROOT:-}" ] &&
    [ -f "$PG_CLUSTER_CONF_ROOT/$PGVERSION/regress/.by_pg_virtualenv" ] &&
    [ "$(pg_conftool -s "$PGVERSION" regress show port 2>/dev/null)" = "$PGPORT" ]; then
    cluster_ok=1
fi

HOST_A=${URL_A#http://}
HOST_A=${HOST_A%%/*}
HOST_B=${URL_B#http://}
HOST_B=${HOST_B%%/*}
LOOP_PID=

# loop_start NAME KEY: traffic through both hosts (quota-load.cjs loop: 4
# clients, 100 ms between requests) until loop_stop; results in
# $MG_T/NAME.jsonl.
loop_start() {
    rm -f "$LOOP_STOP"
    node "$LOAD" loop "$MG_T/$1.jsonl" "$LOOP_STOP" 4 100 \
        '{"model":"'$MODEL'","max_tokens":20,"messages":[{"role":"user","content":"'"$1"' {{i}}"}]}' \
        "$URL_A" "$2" "$URL_B" "$2" >"$MG_T/$1-loop.err" 2>&1 &
    LOOP_PID=$!
    LOAD_PIDS+=("$LOOP_PID")
}

# loop_wait_ok NAME SINCE-MS: true once 4 requests sent at or after SINCE-MS
# got 200 through each host; false after 30 s.
loop_wait_ok() {
    local i
    for ((i = 0; i < 300; i++)); do
        [ "$(json_value "$MG_T/$1.jsonl" "((a) => ['$HOST_A', '$HOST_B'].every((h) =>
            a.filter((r) => r.target === h && r.status === 200 && r.start >= $2).length >= 4))(
            t.trim().split('\n').map(JSON.parse))" 2>/dev/null)" = true ] && return 0
        sleep 0.1
    done
    return 1
}

# loop_stop NAME: ends the traffic; the results, as one array, go to
# $MG_T/NAME.json.
loop_stop() {
    touch "$LOOP_STOP"
    wait "$LOOP_PID"
    node -e 'const fs = require("fs");
        fs.writeFileSync(process.argv[2], JSON.stringify(fs.readFileSync(process.argv[1], "utf8")
            .trim().split("\n").filter(Boolean).map(JSON.parse)));' "$MG_T/$1.jsonl" "$MG_T/$1.json"
}

# same_processes LABEL NAME SINCE-MS: the responders of both hosts are the
# ones started at the beginning, they served the requests of loop NAME sent
# at or after SINCE-MS, and these requests have their settled usage rows.
same_processes() {
    local label=$1 f=$MG_T/$2.json since=$3 before="${PIDS_A[*]} ${PIDS_B[*]}" p alive=0 rids served
    for p in $before; do
        pid_runs "$p" modelgate-fcgi && alive=$((alive + 1))
    done
    check_eq "$label: the same responder processes run ($before)" "$alive" 4
    rids=$(json_value "$f" "j.filter((r) => r.start >= $since && r.status === 200).map((r) => r.rid).join(' ')")
    served=$(for p in $rids; do
        grep -h -F "$p chat.completions" "$MG_T/hostA.log" "$MG_T/hostB.log" |
            sed -n 's/^[^ ]* [a-z]* \[\([0-9]*\)\] .*/\1/p'
    done | sort -u | tr '\n' ' ')
    check "$label: those processes served the requests (pids in the log: $served)" \
        node -e 'const [before, served] = process.argv.slice(1).map((s) => s.trim().split(/ +/).filter(Boolean));
            process.exit(served.length > 0 && served.every((p) => before.includes(p)) ? 0 : 1);' \
        "$before" "$served"
    check_eq "$label: one settled usage row (status 200) per request" \
        "$(sql "SELECT count(*) FROM usage_events WHERE request_id = ANY (string_to_array(:'r', ' '))
                   AND status = 200 AND settled_at IS NOT NULL AND cost_source = 'upstream'" -v r="$rids")" \
        "$(wc -w <<<"$rids" | tr -d ' ')"
}

outage() {
    local t_stop0 t_stop t_mark t_end t_start0 t_start c_mark c_end i key key_slow slow_pid rid logged=0
    local down
    cli project create outage >/dev/null 2>&1
    key=$(new_key outage) || bail "key create outage"
    loop_start outage "$key"
    loop_wait_ok outage 0 || bail "traffic flows through both hosts before the outage"

    # Two slow requests admitted just before the stop: the upstream answers
    # them during the outage, so their settlement fails.
    cli project create outage-slow >/dev/null 2>&1
    key_slow=$(new_key outage-slow) || bail "key create outage-slow"
    node "$LOAD" burst "$MG_T/outage-slow.json" 2 \
        '{"model":"'$MODEL';sleep=1500","max_tokens":20,"messages":[{"role":"user","content":"settled during the outage {{i}}"}]}' \
        "$URL_A" "$key_slow" "$URL_B" "$key_slow" >"$MG_T/outage-slow.err" 2>&1 &
    slow_pid=$!
    LOAD_PIDS+=("$slow_pid")
    for ((i = 0; i < 100; i++)); do
        if [ "$ADMISSION" = lease ]; then
            # admitted from leases: no pending row, a lease on each host
            [ "$(lease_count outage-slow)" -ge 2 ] && break
        else
            [ "$(pending_count outage-slow)" -ge 2 ] && break
        fi
        sleep 0.05
    done
    sleep 0.3

    t_stop0=$(now_ms)
    if out=$(pg_ctlcluster "$PGVERSION" regress stop -m fast 2>&1); then
        PG_STOPPED=1
        tap_ok "Postgres stopped under traffic (pg_ctlcluster $PGVERSION regress stop -m fast)"
    else
        bail "pg_ctlcluster $PGVERSION regress stop" "$out"
    fi
    t_stop=$(now_ms)
    # requests admitted just before the stop may still reach the upstream
    # (and, from leases, for a second more)
    sleep_until $((t_stop + 500 + GRACE_MS))
    c_mark=$(mock_chat)
    t_mark=$(now_ms)
    http GET "http://$HOST_A/healthz"
    expect_http "outage: /healthz answers 503, database unavailable" 503 "j.database === 'unavailable'"
    # in lease mode, down for longer than quota.lease_timeout: no lease
    # could be renewed meanwhile
    if [ "$ADMISSION" = lease ]; then
        sleep_until $((t_stop + LEASE_TIMEOUT * 1000 + 1000))
    else
        sleep_until $((t_stop + 4000))
    fi
    c_end=$(mock_chat)
    t_end=$(now_ms)
    wait "$slow_pid"
    expect_json "outage: the two requests admitted before the stop got their answers (200) during it" "
        j.length === 2 && j.every((r) => r.status === 200 && r.end < $t_end)" "$MG_T/outage-slow.json"

    t_start0=$(now_ms)
    if out=$(pg_ctlcluster "$PGVERSION" regress start 2>&1); then
        PG_STOPPED=0
        tap_ok "Postgres started again ($(( $(now_ms) - t_start0 )) ms)"
    else
        bail "pg_ctlcluster $PGVERSION regress start" "$out"
    fi
    t_start=$(now_ms)
    if [ "$ADMISSION" = lease ]; then
        out=$(cli reap 2>&1)
        check_eq "outage (lease): modelgate reap right after the restart reaps no lease (Postgres up for less than lease_timeout)" \
            "$(printf '%s\n' "$out" | grep leases)" \
            "reaped 0 leases not renewed for $LEASE_TIMEOUT s (charged whole)"
    fi
    loop_wait_ok outage "$t_start"
    sleep 1
    loop_stop outage

    down="r.start >= $t_stop + $GRACE_MS && r.end <= $t_start0"
    tap_diag "outage: $(json_value "$MG_T/outage.json" "
        ((down, up) => [j.length + ' requests',
            'stop took $((t_stop - t_stop0)) ms',
            down.length + ' answered during the outage, in ' +
                Math.min(...down.map((r) => r.ms)) + '..' + Math.max(...down.map((r) => r.ms)) + ' ms',
            'first 200 ' + (up.length ? Math.min(...up.map((r) => r.end)) - $t_start + ' ms' : 'never') +
                ' after pg_ctlcluster start returned'].join('; '))(
            j.filter((r) => $down), j.filter((r) => r.start >= $t_start && r.status === 200))")"
    expect_json "outage: every request of the loop got 200 or 503, none hung or failed otherwise" "
        j.length > 0 && j.every((r) => r.status === 200 || r.status === 503)" "$MG_T/outage.json"
    expect_json "outage: every request sent while Postgres was down got 503 server_error database_unavailable (at least 10)" "
        ((a) => a.length >= 10 && a.every((r) => r.status === 503 &&
            r.code === 'database_unavailable' && r.type === 'server_error'))(j.filter((r) => $down))" \
        "$MG_T/outage.json"
    expect_json "outage: each in less than database.connect_timeout + 1 s ($((CONNECT_TIMEOUT + 1)) s)" "
        j.filter((r) => $down).every((r) => r.ms < $(( (CONNECT_TIMEOUT + 1) * 1000 )))" "$MG_T/outage.json"
    check_eq "outage: the upstream got no chat call while Postgres was down ($((t_end - t_mark)) ms watched)" \
        "$c_end" "$c_mark"
    expect_json "after the restart: requests through both hosts succeed again" "
        ['$HOST_A', '$HOST_B'].every((h) =>
            j.filter((r) => r.target === h && r.start >= $t_start && r.status === 200).length >= 4)" \
        "$MG_T/outage.json"
    expect_json "after the restart: every request sent once Postgres was up got 200" "
        j.filter((r) => r.start >= $t_start).every((r) => r.status === 200)" "$MG_T/outage.json"
    same_processes "after the restart" outage "$t_start"
    check_eq "outage: the 503 answers wrote no usage row" \
        "$(sql "SELECT count(*) FROM usage_events WHERE request_id = ANY (string_to_array(:'r', ' '))" \
            -v r="$(json_value "$MG_T/outage.json" "j.filter((r) => r.status === 503).map((r) => r.rid).join(' ')")")" 0

    if [ "$ADMISSION" = lease ]; then
        outage_slow_lease
        return
    fi
    # Requests admitted before the stop whose settlement failed stay
    # pending; the survivor's reaper charges them after reap_after.
    for rid in $(json_value "$MG_T/outage-slow.json" "j.map((r) => r.rid).join(' ')"); do
        grep -q -h -F "$rid not settled: " "$MG_T/hostA.log" "$MG_T/hostB.log" &&
            logged=$((logged + 1))
    done
    check_eq "outage: their settlement failed and the responders logged it (left for the reaper)" "$logged" 2
    for ((i = 0; i < 250; i++)); do
        [ "$(pending_count outage)" -eq 0 ] && [ "$(pending_count outage-slow)" -eq 0 ] && break
        sleep 0.1
    done
    project_json outage-slow "$MG_T/outage-slow-db.json"
    expect_json "outage: the survivor's reaper, back on its own, charged them at their reservation (502 reaped)" "
        j.rows === 2 && j.reaped === 2 && j.reaped_late === true && Number(j.reserved) === 0 &&
        j.sum_eq === true && f[1].every((r) => j.rids.includes(r.rid))" \
        "$MG_T/outage-slow-db.json" "$MG_T/outage-slow.json"
    project_json outage "$MG_T/outage-db.json"
    tap_diag "outage: $(json_value "$MG_T/outage-db.json" j.reaped) requests of the loop were admitted before the stop and reaped"
    expect_json "outage: no pending row left of the loop either, counters consistent (reserved 0, spent = sum of costs)" "
        j.pending === 0 && Number(j.reserved) === 0 && j.sum_eq === true" "$MG_T/outage-db.json"
}

# A database that accepted the connections and then went silent (hung,
# its host or the network gone; here all its processes get SIGSTOP): the
# responders must not wait for it for ever.
hung() {
    local key pm t_freeze t_mark t_thaw t_ready c_mark c_end frozen slowest i
    local max=$(( (CONNECT_TIMEOUT + 1) * 1000 ))
    cli project create hung >/dev/null 2>&1
    key=$(new_key hung) || bail "key create hung"
    loop_start hung "$key"
    loop_wait_ok hung 0 || bail "traffic flows through both hosts before Postgres hangs"

    pm=$(head -n 1 "$(pg_conftool -s "$PGVERSION" regress show data_directory)/postmaster.pid")
    pid_runs "$pm" postgres || bail "the postmaster's pid ($pm) from postmaster.pid"
    # the postmaster first, so that it forks nothing after its children
    # are listed; the backends go on until they are stopped too
    FROZEN_PIDS=("$pm")
    kill -STOP "$pm"
    mapfile -t -O 1 FROZEN_PIDS < <(child_pids "$pm")
    kill -STOP "${FROZEN_PIDS[@]:1}"
    t_freeze=$(now_ms)
    tap_ok "Postgres hung under traffic (SIGSTOP to its ${#FROZEN_PIDS[@]} processes)"
    sleep_until $((t_freeze + 500 + GRACE_MS))
    c_mark=$(mock_chat)
    t_mark=$(now_ms)
    MG_HTTP_MAX_TIME=20 http GET "http://$HOST_A/healthz"
    expect_http "hung: /healthz answers 503 within connect_timeout + 1 s (took ${HTTP_TIME}s)" 503 \
        "j.database === 'unavailable' && $HTTP_TIME < $((CONNECT_TIMEOUT + 1))"
    # More requests at once than host A's pools have connections (2
    # processes x pool_size 4, some held by the hung admissions and
    # settlements), and no more than its threads (2 x 8) less the loop's
    # 4: those that wait for a free connection are held no longer than
    # those that got one.
    seq 12 | xargs -P 12 -I{} curl -sS --max-time 20 -o /dev/null -w '%{http_code} %{time_total}\n' \
        -H "Authorization: Bearer $key" "http://$HOST_A/v1/models" >"$MG_T/hung-models.txt" 2>/dev/null
    check_eq "hung: 12 GET /v1/models at once on one host (2 x pool_size 4): all 503" \
        "$(awk '{ print $1 }' "$MG_T/hung-models.txt" | sort | uniq -c | tr -s ' ')" " 12 503"
    slowest=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$MG_T/hung-models.txt")
    check "hung: each of them within connect_timeout + 1 s, the wait for a free connection included (slowest ${slowest} s)" \
        awk -v t="$slowest" -v m="$((CONNECT_TIMEOUT + 1))" 'BEGIN { exit !(t > 0 && t < m) }'
    # held long enough that the requests checked below (sent from GRACE_MS
    # after the freeze until connect_timeout + 1 s before the thaw) span
    # more than one connect_timeout: each of the loop's clients sends at
    # least one of them, however its requests fall
    sleep_until $((t_freeze + 3 * CONNECT_TIMEOUT * 1000 + GRACE_MS))
    c_end=$(mock_chat)
    t_thaw=$(now_ms)
    kill -CONT "${FROZEN_PIDS[@]}"
    FROZEN_PIDS=()
    # Woken up, Postgres first works off the connection attempts queued
    # while it was stopped and may refuse new ones for a moment: the
    # gateway is held to 200s from when Postgres accepts a connection.
    for ((i = 0; i < 100; i++)); do
        psql -X -q -t -d "$MG_DB" -c 'SELECT 1' >/dev/null 2>&1 && break
        sleep 0.1
    done
    t_ready=$(now_ms)
    loop_wait_ok hung "$t_ready"
    sleep 1
    loop_stop hung

    frozen="r.start >= $t_freeze && r.end <= $t_thaw"
    tap_diag "hung: $(json_value "$MG_T/hung.json" "
        ((down, up) => [j.length + ' requests', down.length + ' sent and answered while Postgres hung, in ' +
                Math.min(...down.map((r) => r.ms)) + '..' + Math.max(...down.map((r) => r.ms)) + ' ms',
            'slowest of all ' + Math.max(...j.map((r) => r.ms)) + ' ms',
            'first 200 ' + (up.length ? Math.min(...up.map((r) => r.end)) - $t_thaw + ' ms' : 'never') +
                ' after SIGCONT'].join('; '))(
            j.filter((r) => $frozen), j.filter((r) => r.start >= $t_thaw && r.status === 200))")"
    expect_json "hung: no request waited for it: every one answered (200 or 503) within connect_timeout + 1 s" "
        j.length > 0 && j.every((r) => (r.status === 200 || r.status === 503) && r.ms < $max)" \
        "$MG_T/hung.json"
    expect_json "hung: every request sent while Postgres hung (and not just before it woke) got 503 database_unavailable (at least 4)" "
        ((a) => a.length >= 4 && a.every((r) => r.status === 503 && r.code === 'database_unavailable' &&
            r.end <= $t_thaw))(j.filter((r) => r.start >= $t_freeze + $GRACE_MS &&
            r.start <= $t_thaw - $max))" \
        "$MG_T/hung.json"
    check_eq "hung: the upstream got no chat call meanwhile ($((t_thaw - t_mark)) ms watched)" "$c_end" "$c_mark"
    expect_json "after SIGCONT: every request sent once Postgres accepts connections ($((t_ready - t_thaw)) ms later) got 200, through both hosts" "
        ((a) => a.every((r) => r.status === 200) &&
            ['$HOST_A', '$HOST_B'].every((h) => a.filter((r) => r.target === h).length >= 4))(
            j.filter((r) => r.start >= $t_ready))" "$MG_T/hung.json"
    same_processes "after SIGCONT" hung "$t_ready"
    # A statement given up on may still run once Postgres wakes up: an
    # admission then leaves a pending row, which the reaper charges.
    for ((i = 0; i < 250; i++)); do
        [ "$(pending_count hung)" -eq 0 ] && break
        sleep 0.1
    done
    project_json hung "$MG_T/hung-db.json"
    tap_diag "hung: $(json_value "$MG_T/hung-db.json" j.reaped) rows reaped (admissions that ran after their responder gave up on them, or settlements that did not)"
    expect_json "hung: no pending row left, counters consistent (reserved 0, spent = sum of costs)" "
        j.pending === 0 && Number(j.reserved) === 0 && j.sum_eq === true" "$MG_T/hung-db.json"
}

if [ "$cluster_ok" = 1 ]; then
    outage
    hung
elif [ -n "${MG_IT_UNDER_PG_VIRTUALENV:-}" ]; then
    tap_not_ok "the cluster pg_virtualenv made is found (for the outage)" \
        "PGVERSION=${PGVERSION:-} PGPORT=${PGPORT:-} PG_CLUSTER_CONF_ROOT=${PG_CLUSTER_CONF_ROOT:-}"
else
    tap_skip "Postgres outage under traffic" \
        "needs the throwaway cluster of pg_virtualenv (run without PGHOST)"
fi

reports=$(cat "$MG_T"/sanitizer.* 2>/dev/null)
check_eq "no AddressSanitizer/UndefinedBehaviorSanitizer reports" "${reports:-none}" none

tap_done
