#!/usr/bin/env bash
# tests/integration/test-many-streams.sh -- 500 streamed chat completions at
# the same moment through lighttpd and modelgate-fcgi under spawn-fcgi,
# with processes x server.threads sized to serve them all at once.  Run by
# `make check`.
#
# Each stream is the mock's "x;tokens=10;delay=500": 10 content events
# 500 ms apart, about 4.5 s.  many-streams.cjs opens all of them at once
# (one connection each), times every stream's first event and [DONE], and
# samples the responders' VmRSS and the database's connections while they
# run.  What is checked:
#   - every stream: 200, tok1..tok10 in order, [DONE], the body ends; its
#     content events arrive paced, not bunched: tok1 to tok10 >= 3 s
#     (4.5 s as sent; its tok1 may be late by as much as a first event
#     may take, 2.5 s, as 500 streams start at once on a machine that may
#     have two cores and run another test beside; events held back by a
#     buffer would come together, near 0 s apart);
#   - none waited for another: every first event arrives within 2.5 s of
#     the start (3 s in a sanitizer build), well before the 4.5 s at which
#     a stream that waited for another would start; and the whole run takes less
#     than 1.6 times one stream alone (a second wave would take twice as
#     long);
#   - exactly one usage row per stream, status 200;
#   - the database connections (pg_stat_activity) never exceed processes x
#     database.pool_size while the streams are open, and all of them are
#     the responders' (application_name modelgate-fcgi);
#   - afterwards the mock has no stream open and the responders still run.
# Printed as "#" lines: the responders' total VmRSS before, during (peak
# with all streams open) and after, the memory per open stream, the
# database connections, the spread of the first events.
#
# Limits set here for 500 streams: the open-file limit (ulimit -n) of
# everything started, at least 8192 where the hard limit allows it, and
# lighttpd's server.max-fds / server.max-connections (each stream holds a
# client and a backend connection in lighttpd).  spawn-fcgi's backlog
# (1024) and the mock (a thread per connection, backlog 4096) need nothing.
#
# Environment: as for test-gateway.sh (MG_SRCDIR, MG_BUILDDIR, PG*,
# MG_REQUIRE_INTEGRATION, MG_KEEP_TMP), plus
#   MG_MANY_N        streams (500)
#   MG_MANY_PROCS    responder processes (4)
#   MG_MANY_THREADS  server.threads per process (130)
#   MG_MANY_POOL     database.pool_size per process (4)
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

# shellcheck source=lib.sh disable=SC1091
. "$HERE/lib.sh"

N=${MG_MANY_N:-500}
PROCS=${MG_MANY_PROCS:-4}
THREADS=${MG_MANY_THREADS:-130}
POOL=${MG_MANY_POOL:-4}
TOKENS=10
DELAY_MS=500
MODEL="x;tokens=$TOKENS;delay=$DELAY_MS"
MAX_FIRST_MS=2500     # start to first event, every stream (a queued one: 4.5 s)
MAX_RUN_FACTOR=1.6    # the whole run, in lengths of one stream alone
MIN_PACE_MS=3000      # tok1 to tok10 of one stream: 9 x 500 ms, less the
                      # 1.5 s by which a tok1 may come late in the burst
NOFILE=8192           # wanted open-file limit
MIN_NOFILE=4096       # below it the test cannot run

# ---------------------------------------------------------------------------
# Prerequisites.

missing=()
SPAWN_FCGI=$(find_tool spawn-fcgi) || missing+=(spawn-fcgi)
find_tool lighttpd >/dev/null || missing+=(lighttpd)
find_tool node >/dev/null || missing+=(node)
find_tool curl >/dev/null || missing+=(curl)
find_tool psql >/dev/null || missing+=("psql (postgresql-client)")
if [ -z "${PGHOST:-}" ]; then
    find_tool pg_virtualenv >/dev/null || missing+=("pg_virtualenv (postgresql-common)")
fi
# The open-file limit, raised for this shell and all it starts.
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$NOFILE" ]; then
    hard=$(ulimit -Hn)
    if [ "$hard" = unlimited ] || [ "$hard" -ge "$NOFILE" ]; then
        ulimit -Sn "$NOFILE"
    else
        ulimit -Sn "$hard"
    fi
fi
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$MIN_NOFILE" ]; then
    missing+=("an open-file limit of $MIN_NOFILE (ulimit -Hn is $(ulimit -Hn))")
fi
mg_missing_exit "${missing[@]}"

mg_find_programs

# A sanitizer build spends two to three times the CPU on each stream, and
# 500 of them start at once on a machine that may have two cores: their
# first events spread over up to about 2 s instead of 1.  The bounds then
# still tell a queue from a slow start, as a stream that waited for
# another one starts a whole stream later (4.5 s).
SANITIZED=0
if fcgi_sanitized; then
    SANITIZED=1
    MAX_FIRST_MS=3000
fi

mg_need_pg "$SELF" "$@"

MG_SERVER=lighttpd
# 500 client and 500 backend connections, and room to spare.
MG_LIGHTTPD_EXTRA='server.max-fds = 8192
server.max-connections = 2048'

# ---------------------------------------------------------------------------
# Temporary directory, and cleanup of everything started, whatever happens.

mg_lib_init many

MG_DB=
DB_CREATED=0
CLIENT_PID=

show_logs() {
    local f
    for f in "$MG_T"/*.log "$MG_T"/*.out "$MG_T"/*.err "$MG_T"/*.txt; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 40 "$f" | sed 's/^/# /'
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    if [ -n "$CLIENT_PID" ] && pid_alive "$CLIENT_PID"; then
        stop_pids "$CLIENT_PID"
    fi
    stop_stack
    wait 2>/dev/null
    mg_finish "$rc"
}
mg_traps cleanup

T_BEGIN=$EPOCHREALTIME

# ms_since EPOCHREALTIME-VALUE: milliseconds since then.
ms_since() {
    local t0=$1 t1=$EPOCHREALTIME
    printf '%d' $(((${t1/./} - ${t0/./}) / 1000))
}

# ---------------------------------------------------------------------------
# Setup: database, mock upstream, key, responders, lighttpd.

PROVIDER_KEY=sk-or-provider-MANY500
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY

mg_fresh_db modelgate_many

start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"
tap_ok "mock upstream listens on $MOCK_PORT"

# upstream.timeout well above a stream's 4.5 s; the heartbeat never fires
# (events come every 500 ms).
CONF=$MG_T/modelgate.conf
LOG=$MG_T/modelgate.log
mg_conf_write "$CONF" LOG_LEVEL=warn LOG_FILE="$LOG" POOL_SIZE="$POOL" \
    UPSTREAM_CONNECT_TIMEOUT=5 UPSTREAM_TIMEOUT=60 THREADS="$THREADS" SHUTDOWN_GRACE=5

cli() {
    "$CLI" -c "$CONF" --sql-dir "$MG_SRCDIR/sql" "$@"
}
check "modelgate-fcgi -t accepts threads = $THREADS, pool_size = $POOL" "$FCGI" -t -c "$CONF"
out=$(cli db migrate 2>&1) || bail "db migrate" "$out"
out=$(cli project create many 2>&1) || bail "project create" "$out"
KEY=$(cli key create many --name many 2>"$MG_T/key.err")
[[ $KEY =~ ^mg-[A-Za-z0-9_-]{32}$ ]] || bail "key create" "$KEY $(cat "$MG_T/key.err")"
tap_ok "database migrated, project and key created"

if start_responders many "$CONF" "$PROCS" >"$MG_T/start-responders.txt" 2>&1; then
    tap_ok "$PROCS responders x $THREADS threads up (pids ${STACK_PIDS[*]})"
else
    bail "responders start" "$(cat "$MG_T/start-responders.txt")"
fi
PIDS=("${STACK_PIDS[@]}")
if start_server many "$STACK_SOCK" >"$MG_T/start-server.txt" 2>&1; then
    tap_ok "lighttpd up on $SERVER_PORT (server.max-fds 8192, max-connections 2048; ulimit -n $(ulimit -Sn))"
else
    bail "lighttpd starts" "$(cat "$MG_T/start-server.txt")"
fi
CHAT_URL=http://127.0.0.1:$SERVER_PORT/v1/chat/completions

# ---------------------------------------------------------------------------
# Helpers.

# rss_total: the responders' VmRSS summed, in KiB.
rss_total() {
    local pid line sum=0
    for pid in "${PIDS[@]}"; do
        while IFS= read -r line; do
            if [[ $line =~ ^VmRSS:[[:space:]]+([0-9]+) ]]; then
                sum=$((sum + BASH_REMATCH[1]))
            fi
        done <"/proc/$pid/status"
    done
    printf '%d\n' "$sum"
}

open_streams() {
    curl -sS --max-time 5 "$MOCK_URL/__mock/stats" 2>/dev/null |
        node -e 'let t="";process.stdin.on("data",(d)=>t+=d).on("end",()=>{
            try{console.log(JSON.parse(t).open_streams)}catch(e){console.log("?")}})'
}

# many OUT COUNT MODEL: COUNT streams at once with many-streams.cjs.
many() {
    local pids
    pids=$(IFS=,; printf '%s' "${PIDS[*]}")
    node "$HERE/many-streams.cjs" "$1" "$CHAT_URL" "$KEY" "$3" "$2" \
        "pids=$pids" "db=$MG_DB" every=200 maxMs=60000 2>"$1.err" &
    CLIENT_PID=$!
    wait "$CLIENT_PID"
}

# ---------------------------------------------------------------------------
# Warm-up, and one stream alone: how long a stream takes by itself.

# A few short streams so that lazily made things (database connections,
# curl handles' connection caches) are not counted as the streams' memory.
many "$MG_T/warm.json" 40 'x;tokens=2'
expect_json "warm-up: 40 short streams at once, all 200 with [DONE]" "
    j.streams.length === 40 && j.streams.every((s) => s.status === 200 && s.tDone !== null)" \
    "$MG_T/warm.json"
many "$MG_T/single.json" 1 "$MODEL"
expect_json "one stream alone: 200, $TOKENS content events, [DONE]" "
    ((s) => s.status === 200 && s.contents === $TOKENS && s.tDone !== null)(j.streams[0])" \
    "$MG_T/single.json"
SINGLE_MS=$(json_value "$MG_T/single.json" 'Math.round(j.tEnd - j.t0)')
tap_diag "one stream alone: ${SINGLE_MS} ms from request to end"
[ "$SANITIZED" -eq 1 ] &&
    tap_diag "sanitizer build: first events within $MAX_FIRST_MS ms"
ROWS_BEFORE=$(usage_count)

sleep 1
RSS_BEFORE=$(rss_total)
PG_BEFORE=$(sql "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'modelgate-fcgi'")

# ---------------------------------------------------------------------------
# The streams.

t0=$EPOCHREALTIME
many "$MG_T/many.json" "$N" "$MODEL"
client_rc=$?
run_ms=$(ms_since "$t0")
check_eq "many-streams.cjs finished normally ($run_ms ms)" "$client_rc" 0
[ -s "$MG_T/many.json" ] || bail "many-streams.cjs wrote its results" "$(cat "$MG_T/many.json.err")"

F=$MG_T/many.json
expect_json "all $N streams: status 200, tok1..tok$TOKENS in order, [DONE], the body ends, no error" "
    ((want) => j.streams.length === $N && j.streams.every((s) => s.status === 200 &&
        s.error === null && !s.timedOut && s.bodyEnd && s.tDone !== null &&
        s.contents === $TOKENS && s.text === want && /^req_/.test(s.requestId || '')))(
        Array.from({ length: $TOKENS }, (_, k) => 'tok' + (k + 1) + ' ').join(''))" "$F"
PACE=$(json_value "$MG_T/many.json" '((a) => { a.sort((x, y) => x - y);
    return "min " + Math.round(a[0]) + ", median " + Math.round(a[a.length >> 1]) + " ms"; })(
    j.streams.filter((s) => s.tLastContent !== null && s.tFirstContent !== null)
        .map((s) => s.tLastContent - s.tFirstContent))')
tap_diag "tok1 to tok$TOKENS: $PACE"
expect_json "all $N streams: tok1 to tok$TOKENS >= $MIN_PACE_MS ms apart (relayed as made, not bunched; $PACE)" "
    j.streams.every((s) => s.tLastContent - s.tFirstContent >= $MIN_PACE_MS)" "$F"
expect_json "all $N request ids distinct" "
    new Set(j.streams.map((s) => s.requestId)).size === $N" "$F"

# first-event spread and totals, for the diagnostics and the timing checks
FIRST=$(json_value "$F" '((a) => { a.sort((x, y) => x - y);
    const q = (p) => Math.round(a[Math.min(a.length - 1, Math.floor(p * a.length))]);
    return "min " + Math.round(a[0]) + ", median " + q(0.5) + ", p95 " + q(0.95) +
        ", max " + Math.round(a[a.length - 1]) + " ms"; })(
    j.streams.filter((s) => s.tFirst !== null).map((s) => s.tFirst - j.t0))')
LAST=$(json_value "$F" 'Math.round(Math.max(...j.streams.map((s) => s.tDone === null ? Infinity : s.tDone)) - j.t0)')
tap_diag "first event after the start: $FIRST"
tap_diag "last [DONE] after $LAST ms (one stream alone: $SINGLE_MS ms)"
expect_json "none queued: every stream's first event within $MAX_FIRST_MS ms of the start ($FIRST)" "
    j.streams.every((s) => s.tFirst !== null && s.tFirst - j.t0 <= $MAX_FIRST_MS)" "$F"
expect_json "none queued: all $N done within $MAX_RUN_FACTOR x one stream alone (${LAST} ms vs ${SINGLE_MS} ms)" "
    $SINGLE_MS > 0 && j.streams.every((s) => s.tDone !== null &&
        s.tDone - j.t0 <= $MAX_RUN_FACTOR * $SINGLE_MS)" "$F"

# Every stream had its first event before the first one ended: all were
# open at once (also what makes the 'during' memory figure meaningful).
expect_json "all $N streams were open at the same time (every first event before the first [DONE])" "
    Math.max(...j.streams.map((s) => s.tFirst)) < Math.min(...j.streams.map((s) => s.tDone))" "$F"

# ---------------------------------------------------------------------------
# Database connections and memory, sampled while the streams ran.

LIMIT=$((PROCS * POOL))
PG=$(json_value "$F" '((s) => "max " + Math.max(...s.map((x) => x.pgAll)) + " (modelgate-fcgi " +
    Math.max(...s.map((x) => x.pgApp)) + ") in " + s.length + " samples")(
    j.samples.filter((x) => x.open > 0 && x.pgAll !== null))')
tap_diag "database connections while streams were open: $PG; limit $PROCS x $POOL = $LIMIT; before: $PG_BEFORE"
expect_json "database connections never above $PROCS processes x pool_size $POOL = $LIMIT while streams were open ($PG)" "
    ((s) => s.length >= 5 && s.every((x) => x.pgAll <= $LIMIT) && s.some((x) => x.pgApp > 0))(
        j.samples.filter((x) => x.open > 0 && x.pgAll !== null))" "$F"
expect_json "every database connection open during the run was a responder's (application_name modelgate-fcgi)" "
    j.samples.filter((x) => x.pgAll !== null).every((x) => x.pgApp === x.pgAll)" "$F"

RSS_DURING=$(json_value "$F" '((s) => s.length ? Math.max(...s.map((x) => x.rss)) : 0)(
    j.samples.filter((x) => x.open === j.count && x.rss !== null))')
FULL_SAMPLES=$(json_value "$F" 'j.samples.filter((x) => x.open === j.count && x.rss !== null).length')
RSS_PEAK=$(json_value "$F" 'Math.max(...j.samples.filter((x) => x.rss !== null).map((x) => x.rss))')
check "memory sampled while all $N streams were open ($FULL_SAMPLES samples)" test "$FULL_SAMPLES" -ge 1

# ---------------------------------------------------------------------------
# Usage rows, and the state afterwards.

rids=$(json_value "$F" 'j.streams.map((s) => s.requestId).join("\n")')
rows=0
for ((i = 0; i < 150; i++)); do
    rows=$(usage_count)
    [ "$rows" -ge $((ROWS_BEFORE + N)) ] && break
    sleep 0.1
done
check_eq "exactly $N new usage rows" "$((rows - ROWS_BEFORE))" "$N"
check_eq "the $N streams' usage rows: status 200, stream, $TOKENS completion tokens, cost from the upstream" \
    "$(sql "SELECT count(*) FROM usage_events
             WHERE request_id = ANY (string_to_array(:'rids', E'\n'))
               AND status = 200 AND stream AND completion_tokens = $TOKENS
               AND cost_source = 'upstream'" -v rids="$rids")" "$N"

open_now=
for ((i = 0; i < 50; i++)); do
    open_now=$(open_streams)
    [ "$open_now" = 0 ] && break
    sleep 0.1
done
check_eq "the mock has no stream open afterwards" "$open_now" 0

sleep 1
RSS_AFTER=$(rss_total)
alive=0
for pid in "${PIDS[@]}"; do
    pid_runs "$pid" modelgate-fcgi && alive=$((alive + 1))
done
check_eq "all $PROCS responders still run" "$alive" "$PROCS"

per_stream=$(node -e 'const [b, d, n] = process.argv.slice(1).map(Number);
    console.log(((d - b) / n).toFixed(1))' "$RSS_BEFORE" "$RSS_DURING" "$N")
tap_diag "responders' total VmRSS: before $RSS_BEFORE KiB, during $RSS_DURING KiB (peak with all $N open; overall peak $RSS_PEAK KiB), after $RSS_AFTER KiB"
tap_diag "memory per open stream: (during - before) / $N = $per_stream KiB"

reports=$(cat "$MG_T"/sanitizer.* 2>/dev/null)
check_eq "no AddressSanitizer/UndefinedBehaviorSanitizer reports" "${reports:-none}" none

printf '# runtime: %d ms\n' "$(ms_since "$T_BEGIN")"
tap_done
