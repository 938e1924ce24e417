#!/usr/bin/env bash
# tests/integration/test-server-errors.sh -- the errors that lighttpd,
# Apache httpd (mod_proxy_fcgi) and nginx answer themselves on the
# gateway's routes are OpenAI error objects, each server with its shipped
# configuration of deploy/.  Run by `make check`.
#
# Through every server, with one responder behind it:
#   - a body over the server's own limit (32 MiB; lighttpd
#     server.max-request-size, nginx client_max_body_size), sent with a
#     Content-Length and chunked: 413 and deploy/errors/413.html.  Apache
#     sets no limit on proxied requests: there the responder answers 413
#     itself (its own error object, with an x-request-id);
#   - a responder that never answers (stopped with SIGSTOP): the server's
#     FastCGI timeout, lowered from 600 s to 2 s for the test, gives 504
#     and deploy/errors/504.html; after SIGCONT /healthz is 200 again;
#   - every responder stopped (its socket then refuses connections, then
#     is removed): 503 and deploy/errors/503.html from lighttpd and
#     Apache, 502 and deploy/errors/502.html from nginx, on /v1/, /healthz
#     and /mcp;
#   - a responder that closes every connection without an answer (as one
#     that crashes in the middle of a request): 500 from lighttpd, 503 from
#     Apache, 502 from nginx, each with its document;
#   - the dashboard is unchanged: 200 text/html while the responder runs,
#     and the server's own page (not JSON) when it is stopped.
# A server's own error document is checked byte for byte, served as
# application/json without an x-request-id (the responder never saw the
# request).  The official openai npm client (server-errors.cjs) is run in
# the first three cases: it raises openai.APIError (413) or
# InternalServerError (502-504) with the status, the document's code and
# type, and the message "<status> <the document's message>".
#
# Environment: as for test-gateway.sh (MG_SRCDIR, MG_BUILDDIR, PGHOST...,
# NODE_PATH, MG_REQUIRE_INTEGRATION, MG_KEEP_TMP); MG_ERROR_SERVERS lists
# the servers to go through (default "lighttpd apache nginx").
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

read -r -a SERVERS <<<"${MG_ERROR_SERVERS:-lighttpd apache nginx}"
LIMIT=33554432   # 32 MiB: every server's limit and the responder's
TIMEOUT=2        # the servers' FastCGI timeout in this test, seconds

# What each server answers when no responder can be reached, and when a
# responder closes the connection without an answer.
declare -A DOWN=([lighttpd]=503 [apache]=503 [nginx]=502)
declare -A BROKEN=([lighttpd]=500 [apache]=503 [nginx]=502)

# The shipped configurations' timeouts, and the test's.
declare -A TIMEOUT_FROM=(
    [lighttpd]='"read-timeout" => 600,'
    [apache]='timeout=600'
    [nginx]='fastcgi_read_timeout 600s;'
)
declare -A TIMEOUT_TO=(
    [lighttpd]="\"read-timeout\" => $TIMEOUT,"
    [apache]="timeout=$TIMEOUT"
    [nginx]="fastcgi_read_timeout ${TIMEOUT}s;"
)

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
mg_check_servers MG_ERROR_SERVERS "${SERVERS[@]}"
mg_missing_exit "${missing[@]}"

mg_find_programs

mg_need_pg "$SELF" "$@"

if [ -z "${NODE_PATH:-}" ] && [ -d "$MG_SRCDIR/tests/integration/node_modules" ]; then
    NODE_PATH=$MG_SRCDIR/tests/integration/node_modules
fi
export NODE_PATH=${NODE_PATH:-}
mg_need_node_module openai

# ---------------------------------------------------------------------------
# Temporary directory, and cleanup of everything started, whatever happens.

mg_lib_init srverr

MG_DB=
DB_CREATED=0

show_logs() {
    local f
    for f in "$MG_T"/*.log "$MG_T"/*.out "$MG_T"/*.err "$MG_T"/*.txt; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 40 "$f" | sed 's/^/# /'
    done
}

# resume_responders: SIGCONT to every responder started that still runs
# (one stopped with SIGSTOP would not see the SIGTERM of stop_stack).
resume_responders() {
    local pid
    for pid in "${RESPONDER_PIDS[@]}"; do
        pid_runs "$pid" modelgate-fcgi && kill -CONT "$pid" 2>/dev/null
    done
    return 0
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    set +e
    resume_responders
    stop_broken
    stop_stack
    for pid in $(jobs -p); do
        kill -TERM "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    mg_finish "$rc"
}
mg_traps cleanup

# ---------------------------------------------------------------------------
# Setup: database, project and key, the bodies to send, what to expect.

mg_fresh_db modelgate_srverr

CONF=$MG_T/modelgate.conf
LOG=$MG_T/modelgate.log
mg_conf_write "$CONF" LOG_FILE="$LOG" POOL_SIZE=2 THREADS=4 MAX_BODY_BYTES="$LIMIT"

cli() {
    "$CLI" -c "$CONF" --sql-dir "$MG_SRCDIR/sql" "$@"
}
out=$(cli db migrate 2>&1) || bail "db migrate" "$out"
out=$(cli project create errors 2>&1) || bail "project create" "$out"
KEY=$(cli key create errors --name errors 2>"$MG_T/key.err")
[[ $KEY =~ ^mg-[A-Za-z0-9_-]{32}$ ]] || bail "key create" "$KEY $(cat "$MG_T/key.err")"
tap_ok "database migrated, project and key created"

# A chat request one byte over the limit (its content does not matter:
# the servers refuse it by its size).
BIG=$MG_T/big.json
big_head='{"model":"x","messages":[{"role":"user","content":"'
big_tail='"}]}'
{
    printf '%s' "$big_head"
    head -c "$((LIMIT + 1 - ${#big_head} - ${#big_tail}))" /dev/zero | tr '\0' a
    printf '%s' "$big_tail"
} >"$BIG"
check_eq "the big body is the limit + 1 byte" "$(stat -c %s "$BIG")" "$((LIMIT + 1))"
SMALL='{"model":"x","messages":[{"role":"user","content":"hello"}]}'

# The shipped documents: their text as a JavaScript string, and their code.
declare -A DOC CODE
for status in 413 500 502 503 504; do
    f=$MG_SRCDIR/deploy/errors/$status.html
    DOC[$status]=$(node -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(process.argv[1], "utf8")))' "$f") ||
        bail "read $f"
    CODE[$status]=$(json_value "$f" 'j.error.code')
done

# ---------------------------------------------------------------------------
# Checks.

# post PATH [CURL OPTIONS...]: a POST with the key and a JSON content type.
post() {
    local path=$1
    shift
    http POST "$BASE$path" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@"
}

# expect_doc DESCRIPTION STATUS: the last answer is the server's own error
# document for STATUS: that status, application/json, without an
# x-request-id, an OpenAI error object that is deploy/errors/STATUS.html
# byte for byte.
expect_doc() {
    expect_http "$1" "$2" "/^application\/json\b/.test(h['content-type'] || '') &&
        !('x-request-id' in h) && isErr(j, '${CODE[$2]}') && t === ${DOC[$2]}"
}

# client NAME [PROMPT-BYTES]: the openai client's chat through $BASE; what
# it raised is $MG_T/NAME.json.
client() {
    node "$HERE/server-errors.cjs" "$BASE/v1" "$KEY" "${2:-}" >"$MG_T/$1.json" 2>"$MG_T/$1.err"
}

# expect_client DESCRIPTION NAME STATUS CLASS: the client raised CLASS (an
# openai.APIError) with STATUS, and the code, type and message of
# deploy/errors/STATUS.html.
expect_client() {
    expect_json "$1" "j.raised === true && j.name === '$4' && j.isAPIError === true &&
        j.status === $3 && j.code === f[1].error.code && j.type === f[1].error.type &&
        j.param === null && j.message === '$3 ' + f[1].error.message" \
        "$MG_T/$2.json" "$MG_SRCDIR/deploy/errors/$3.html"
}

# start_broken SOCKET: a listener on SOCKET that takes each connection
# (printing "connection" to $MG_T/broken.out) and closes it 200 ms later
# without a word, as a responder that crashes in the middle of a request;
# BROKEN_PID is its pid.  False when it does not listen within 5 s.
BROKEN_PID=
start_broken() {
    local i
    rm -f "$1"
    node -e '
        const net = require("net"), fs = require("fs");
        const path = process.argv[1];
        net.createServer((c) => {
            console.log("connection");
            c.on("data", () => {});
            c.on("error", () => {});
            setTimeout(() => c.destroy(), 200);
        }).listen(path, () => {
            fs.chmodSync(path, 0o666);
            console.log("listening");
        });' "$1" >"$MG_T/broken.out" 2>&1 &
    BROKEN_PID=$!
    for ((i = 0; i < 50; i++)); do
        grep -q '^listening$' "$MG_T/broken.out" && return 0
        sleep 0.1
    done
    return 1
}

stop_broken() {
    if [ -n "$BROKEN_PID" ] && pid_runs "$BROKEN_PID" "$MG_T/"; then
        stop_pids "$BROKEN_PID"
    fi
    BROKEN_PID=
}

# server_errors SERVER: one responder and SERVER in front of it, then
# every case.
server_errors() {
    local s=$1 down=${DOWN[$1]} broken=${BROKEN[$1]} pid i
    MG_SERVER=$s
    MG_DEPLOY_EDITS=("${TIMEOUT_FROM[$s]}" "${TIMEOUT_TO[$s]}")
    if start_responders "$s" "$CONF" 1 >"$MG_T/start-$s.txt" 2>&1 &&
        start_server "$s" "$STACK_SOCK" >>"$MG_T/start-$s.txt" 2>&1; then
        tap_ok "$s up on $SERVER_PORT (shipped deploy/ configuration, timeout ${TIMEOUT} s), one responder"
    else
        tap_not_ok "$s and a responder start" "$(cat "$MG_T/start-$s.txt")"
        return
    fi
    BASE=http://127.0.0.1:$SERVER_PORT

    http GET "$BASE/dashboard/"
    expect_http "$s: GET /dashboard/: 200 text/html" 200 \
        "/^text\/html\b/.test(h['content-type'] || '')"

    # -- a body over the limit ------------------------------------------
    if [ "$s" = apache ]; then
        post /v1/chat/completions --data-binary "@$BIG"
        expect_http "$s: a body over 32 MiB reaches the responder (Apache sets no limit on proxied requests): its 413 request_too_large" \
            413 "jsonHeaders(h) && isErr(j, 'request_too_large')"
        post /v1/chat/completions -H 'Transfer-Encoding: chunked' --data-binary "@$BIG"
        expect_http "$s: the same, chunked: the responder's 413" \
            413 "jsonHeaders(h) && isErr(j, 'request_too_large')"
        client "$s-413" "$LIMIT"
        expect_json "$s: the openai client raises APIError 413 request_too_large with the responder's message" \
            "j.raised === true && j.name === 'APIError' && j.isAPIError === true &&
             j.status === 413 && j.code === 'request_too_large' &&
             /^413 The request body is larger than this gateway accepts/.test(j.message)" \
            "$MG_T/$s-413.json"
    else
        post /v1/chat/completions --data-binary "@$BIG"
        expect_doc "$s: a body over its 32 MiB limit (Content-Length): 413 request_too_large" 413
        post /v1/chat/completions -H 'Transfer-Encoding: chunked' --data-binary "@$BIG"
        expect_doc "$s: a body over its 32 MiB limit (chunked): 413 request_too_large" 413
        client "$s-413" "$LIMIT"
        expect_client "$s: the openai client raises APIError 413 with the document's message" \
            "$s-413" 413 APIError
    fi

    # -- a responder that never answers ----------------------------------
    for pid in "${STACK_PIDS[@]}"; do
        kill -STOP "$pid"
    done
    client "$s-504" &
    pid=$!
    post /v1/chat/completions --data-binary "$SMALL"
    expect_doc "$s: the responder stopped (SIGSTOP): 504 gateway_timeout after ${HTTP_TIME} s" 504
    check "$s: ... not before the ${TIMEOUT} s timeout" \
        node -e 'process.exit(Number(process.argv[1]) >= Number(process.argv[2]) ? 0 : 1)' \
        "$HTTP_TIME" "$TIMEOUT"
    wait "$pid"
    expect_client "$s: the openai client raises InternalServerError 504 with the document's message" \
        "$s-504" 504 InternalServerError
    resume_responders
    http GET "$BASE/healthz"
    expect_http "$s: after SIGCONT: GET /healthz 200 again" 200 "j.status === 'ok'"

    # -- every responder stopped ------------------------------------------
    stop_pids "${STACK_PIDS[@]}"
    post /v1/chat/completions --data-binary "$SMALL"
    expect_doc "$s: every responder stopped: POST /v1/chat/completions: $down" "$down"
    http GET "$BASE/healthz"
    expect_doc "$s: ... GET /healthz: $down" "$down"
    post /mcp --data-binary '{"jsonrpc":"2.0","id":1,"method":"ping"}'
    expect_doc "$s: ... POST /mcp: $down" "$down"
    http GET "$BASE/dashboard/"
    expect_http "$s: ... GET /dashboard/: $down, the server's own page (not JSON)" "$down" \
        "!/json/.test(h['content-type'] || '') && j === undefined"
    client "$s-$down"
    expect_client "$s: ... the openai client raises InternalServerError $down with the document's message" \
        "$s-$down" "$down" InternalServerError
    rm -f "$STACK_SOCK"
    post /v1/chat/completions --data-binary "$SMALL"
    expect_doc "$s: ... and its socket removed: POST /v1/chat/completions: $down" "$down"

    # -- a responder that closes the connection without an answer ---------
    # (lighttpd leaves a backend it could not reach alone for a second)
    if start_broken "$STACK_SOCK"; then
        for ((i = 0; i < 50; i++)); do
            post /v1/chat/completions --data-binary "$SMALL"
            # (nginx answers 502 for a socket it cannot reach too: wait
            # until the listener has seen a connection)
            [ "$HTTP_STATUS" = "$broken" ] && grep -q '^connection$' "$MG_T/broken.out" && break
            sleep 0.1
        done
        expect_doc "$s: a responder that closes without an answer: $broken" "$broken"
        check "$s: ... that responder was reached" grep -q '^connection$' "$MG_T/broken.out"
    else
        tap_not_ok "$s: a listener on the socket that closes without an answer" \
            "$(cat "$MG_T/broken.out")"
    fi
    stop_broken

    stop_servers
}

for server in "${SERVERS[@]}"; do
    if ! mg_server_tool "$server" >/dev/null; then
        tap_skip "errors of $server" "$server is not installed (Debian package $(mg_server_package "$server"))"
        continue
    fi
    server_errors "$server"
done

reports=$(cat "$MG_T"/sanitizer.* 2>/dev/null)
check_eq "no AddressSanitizer/UndefinedBehaviorSanitizer reports" "${reports:-none}" none

tap_done
