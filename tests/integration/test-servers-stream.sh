#!/usr/bin/env bash
# tests/integration/test-servers-stream.sh -- streamed chat completions go
# through lighttpd, Apache httpd (mod_proxy_fcgi) and nginx unbuffered,
# each with its shipped configuration of deploy/.  Run by `make check`.
#
# The mock upstream sends 10 content events 200 ms apart (model
# "x;tokens=10;delay=200").  The mock does not say when it sent what, so
# everything is timed at the client (sse-timing.cjs): the same request goes
# straight to the mock's /api/v1/chat/completions and, right after, through
# a web server to the gateway.  Through every server:
#   - the first content event arrives less than 100 ms later than it does
#     straight from the mock (time to first byte, and to first content);
#   - consecutive content events arrive >= 120 ms apart, and the first and
#     last >= 1.5 s apart: they come as they are sent, not together at the
#     end;
#   - the response is 200, Content-Type text/event-stream, Cache-Control
#     no-cache, chunked; it ends with "data: [DONE]", nothing follows, the
#     body ends properly and the connection closes.
# The times measured are printed (as "#" lines, and in a table at the end).
#
# Environment: as for test-gateway.sh (MG_SRCDIR, MG_BUILDDIR, PGHOST...,
# MG_REQUIRE_INTEGRATION, MG_KEEP_TMP); MG_STREAM_SERVERS lists the
# servers to go through (default "lighttpd apache nginx").
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

read -r -a SERVERS <<<"${MG_STREAM_SERVERS:-lighttpd apache nginx}"
MODEL='x;tokens=10;delay=200'
TOKENS=10
MIN_GAP_MS=120       # content events are sent 200 ms apart
MIN_SPREAD_MS=1500   # first to last: 9 x 200 ms = 1.8 s
MAX_EXTRA_MS=100     # through a server vs straight to the mock

# ---------------------------------------------------------------------------
# Prerequisites.  A missing web server skips that server only (fails with
# MG_REQUIRE_INTEGRATION=1).

missing=()
SPAWN_FCGI=$(find_tool spawn-fcgi) || missing+=(spawn-fcgi)
find_tool node >/dev/null || missing+=(node)
find_tool curl >/dev/null || missing+=(curl)
find_tool psql >/dev/null || missing+=("psql (postgresql-client)")
if [ -z "${PGHOST:-}" ]; then
    find_tool pg_virtualenv >/dev/null || missing+=("pg_virtualenv (postgresql-common)")
fi
mg_check_servers MG_STREAM_SERVERS "${SERVERS[@]}"
mg_missing_exit "${missing[@]}"

mg_find_programs

mg_need_pg "$SELF" "$@"

# ---------------------------------------------------------------------------
# Temporary directory, and cleanup of everything started, whatever happens.

mg_lib_init srv

MG_DB=
DB_CREATED=0

show_logs() {
    local f
    for f in "$MG_T"/*.log "$MG_T"/*.out "$MG_T"/*.err "$MG_T"/*.json; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 40 "$f" | sed 's/^/# /'
    done
}

mg_traps mg_stack_cleanup

# ---------------------------------------------------------------------------
# Setup: database, mock upstream, key, responders.

PROVIDER_KEY=sk-or-provider-TIMING456
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY

mg_fresh_db modelgate_srv

start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"
tap_ok "mock upstream listens on $MOCK_PORT"

CONF=$MG_T/modelgate.conf
LOG=$MG_T/modelgate.log
mg_conf_write "$CONF" LOG_FILE="$LOG" POOL_SIZE=2 THREADS=4

cli() {
    "$CLI" -c "$CONF" --sql-dir "$MG_SRCDIR/sql" "$@"
}
out=$(cli db migrate 2>&1) || bail "db migrate" "$out"
out=$(cli project create timing 2>&1) || bail "project create" "$out"
KEY=$(cli key create timing --name timing 2>"$MG_T/key.err")
[[ $KEY =~ ^mg-[A-Za-z0-9_-]{32}$ ]] || bail "key create" "$KEY $(cat "$MG_T/key.err")"
tap_ok "database migrated, project and key created"

# One responder process, shared by the servers (started one at a time).
if start_responders stream "$CONF" 1 >"$MG_T/start-responders.txt" 2>&1; then
    tap_ok "responder up on $STACK_SOCK (pid ${STACK_PIDS[*]})"
else
    bail "responder starts" "$(cat "$MG_T/start-responders.txt")"
fi
SOCK=$STACK_SOCK

# ---------------------------------------------------------------------------
# Measurements.

# timed NAME URL KEY: one streamed request with sse-timing.cjs; the result
# is $MG_T/NAME.json.
timed() {
    node "$HERE/sse-timing.cjs" "$2" "$3" "$MODEL" >"$MG_T/$1.json" 2>"$MG_T/$1.err"
}

# expect_stream DESCRIPTION-PREFIX NAME: the checks every stream must pass,
# straight from the mock or through a server.
expect_stream() {
    local what=$1 f=$MG_T/$2.json
    expect_json "$what: 200, text/event-stream, Cache-Control no-cache, chunked" "
        j.error === null && j.status === 200 &&
        /^text\/event-stream\b/.test(j.headers['content-type'] || '') &&
        /\bno-cache\b/.test(j.headers['cache-control'] || '') &&
        j.headers['transfer-encoding'] === 'chunked' && !('content-length' in j.headers)" "$f"
    expect_json "$what: $TOKENS content events, in order" "
        j.contents.length === $TOKENS &&
        j.contents.every((c, i) => c.trim() === 'tok' + (i + 1))" "$f"
    expect_json "$what: consecutive content events >= $MIN_GAP_MS ms apart" "
        j.gaps.length === $TOKENS - 1 && j.gaps.every((g) => g >= $MIN_GAP_MS)" "$f"
    expect_json "$what: first to last content event >= $MIN_SPREAD_MS ms" \
        "j.spread >= $MIN_SPREAD_MS" "$f"
    expect_json "$what: ends with data: [DONE], nothing after it, body complete, connection closed" "
        j.lastData === '[DONE]' && j.tDone !== null && j.afterDone === '' &&
        j.complete === true && j.tEnd !== null && j.tClose !== null &&
        j.tClose - j.tDone < 1000" "$f"
}

SUMMARY=()

for server in "${SERVERS[@]}"; do
    if ! mg_server_tool "$server" >/dev/null; then
        tap_skip "streaming through $server" "$server is not installed (Debian package $(mg_server_package "$server"))"
        continue
    fi
    MG_SERVER=$server
    if start_server stream "$SOCK" >"$MG_T/start-$server.txt" 2>&1; then
        tap_ok "$server up on $SERVER_PORT (shipped deploy/ configuration)"
    else
        tap_not_ok "$server starts" "$(cat "$MG_T/start-$server.txt")"
        continue
    fi
    base=http://127.0.0.1:$SERVER_PORT

    # A plain request first, so the measured one finds the server, the
    # responder and its database connection warm, as the direct one does.
    http POST "$base/v1/chat/completions" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' \
        --data-binary '{"model":"x","messages":[{"role":"user","content":"warm"}]}'
    expect_http "$server: a non-streamed chat (warm-up) is 200" 200 \
        "j.choices[0].message.content === 'mock reply: warm'"

    timed "direct-$server" "$MOCK_URL/api/v1/chat/completions" "$PROVIDER_KEY"
    timed "$server" "$base/v1/chat/completions" "$KEY"

    expect_stream "straight to the mock (before $server)" "direct-$server"
    expect_stream "through $server" "$server"

    d_fb=$(json_value "$MG_T/direct-$server.json" 'j.tFirstByte')
    d_fc=$(json_value "$MG_T/direct-$server.json" 'j.tFirstContent')
    s_fb=$(json_value "$MG_T/$server.json" 'j.tFirstByte')
    s_fc=$(json_value "$MG_T/$server.json" 'j.tFirstContent')
    gaps=$(json_value "$MG_T/$server.json" 'j.gaps.map((g) => Math.round(g)).join(" ")')
    spread=$(json_value "$MG_T/$server.json" 'Math.round(j.spread)')
    expect_json "through $server: time to first byte ${s_fb} ms vs ${d_fb} ms direct (< +$MAX_EXTRA_MS ms)" \
        "typeof f[0].tFirstByte === 'number' && typeof f[1].tFirstByte === 'number' &&
         f[0].tFirstByte - f[1].tFirstByte < $MAX_EXTRA_MS" \
        "$MG_T/$server.json" "$MG_T/direct-$server.json"
    expect_json "through $server: first content event ${s_fc} ms vs ${d_fc} ms direct (< +$MAX_EXTRA_MS ms)" \
        "typeof f[0].tFirstContent === 'number' && typeof f[1].tFirstContent === 'number' &&
         f[0].tFirstContent - f[1].tFirstContent < $MAX_EXTRA_MS" \
        "$MG_T/$server.json" "$MG_T/direct-$server.json"
    tap_diag "$server: content events ${gaps// / ms, } ms apart, first to last ${spread} ms"
    SUMMARY+=("$(printf '%-9s %9s %9s %9s %9s %7s' "$server" "$s_fb" "$d_fb" "$s_fc" "$d_fc" "$spread")")

    # Stop it, with its workers, before the next one.
    workers=()
    mapfile -t workers < <(child_pids "$SERVER_PID")
    kill -TERM "$SERVER_PID" 2>/dev/null
    if wait_gone 10 "$SERVER_PID" "${workers[@]}"; then
        tap_ok "$server (main process and ${#workers[@]} workers) exits on SIGTERM"
    else
        tap_not_ok "$server and its workers exit on SIGTERM" \
            "still running: $(for p in "$SERVER_PID" "${workers[@]}"; do pid_alive "$p" && printf '%s ' "$p"; done)"
        stop_pids "$SERVER_PID" "${workers[@]}"
    fi
done

# ---------------------------------------------------------------------------
# The times of this run, then shutdown.

printf '# times in ms from the request to the first body byte and to the first\n'
printf '# content event, through the server and straight to the mock:\n'
printf '# %-9s %9s %9s %9s %9s %7s\n' server 'TTFB' 'direct' 'content' 'direct' spread
for line in "${SUMMARY[@]}"; do
    printf '# %s\n' "$line"
done

stop_responders
check_eq "usage rows: one per chat through a server (the warm-up and the stream)" \
    "$(sql 'SELECT count(*) FROM usage_events')" "$((2 * ${#SUMMARY[@]}))"
reports=$(cat "$MG_T"/sanitizer.* 2>/dev/null)
check_eq "no AddressSanitizer/UndefinedBehaviorSanitizer reports" "${reports:-none}" none

tap_done
