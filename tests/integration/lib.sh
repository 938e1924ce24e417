# shellcheck shell=bash
# tests/integration/lib.sh -- helpers for the integration tests, sourced by
# the tests/integration/test-*.sh scripts.
#
# Reporting is TAP: every check prints "ok N - what" or "not ok N - what"
# followed by "#" lines that show what was seen.  tap_done prints the plan
# and returns 1 when anything failed.
#
# State lives in MG_T (the test's temporary directory, made by
# mg_lib_init).  HTTP answers go to $MG_T/last.{status,headers,body}
# and are checked with small JavaScript expressions run by node
# (check.cjs, next to this file): node is always there, jq is not.

MG_TAP_N=0
MG_TAP_FAILED=0

tap_diag() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        printf '#   %s\n' "$line"
    done <<<"$*"
}

tap_ok() {
    MG_TAP_N=$((MG_TAP_N + 1))
    printf 'ok %d - %s\n' "$MG_TAP_N" "$1"
}

# tap_not_ok DESCRIPTION [DIAGNOSTICS]
tap_not_ok() {
    MG_TAP_N=$((MG_TAP_N + 1))
    MG_TAP_FAILED=$((MG_TAP_FAILED + 1))
    printf 'not ok %d - %s\n' "$MG_TAP_N" "$1"
    if [ -n "${2:-}" ]; then
        tap_diag "$2"
    fi
}

tap_skip() {
    MG_TAP_N=$((MG_TAP_N + 1))
    printf 'ok %d - %s # SKIP %s\n' "$MG_TAP_N" "$1" "$2"
}

# tap_done: prints the plan and a summary line; false if a check failed.
tap_done() {
    printf '1..%d\n' "$MG_TAP_N"
    printf '# %d passed, %d failed\n' "$((MG_TAP_N - MG_TAP_FAILED))" "$MG_TAP_FAILED"
    [ "$MG_TAP_FAILED" -eq 0 ]
}

# check DESCRIPTION COMMAND [ARGS...]: ok when the command succeeds; its
# output becomes the diagnostics otherwise.
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then
        tap_ok "$desc"
    else
        tap_not_ok "$desc" "$out"
    fi
}

# check_eq DESCRIPTION GOT WANT
check_eq() {
    if [ "$2" = "$3" ]; then
        tap_ok "$1"
    else
        tap_not_ok "$1" "got:  '$2'
want: '$3'"
    fi
}

# bail DESCRIPTION [DIAGNOSTICS]: a setup step failed; nothing after it
# can run.
bail() {
    tap_not_ok "$1" "${2:-}"
    printf 'Bail out! %s\n' "$1"
    tap_done
    exit 1
}

# ---------------------------------------------------------------------------
# Processes and ports: deploy/lib/stack.sh, shared with deploy/local and
# tests/bench/run, under the short names the tests use.

# shellcheck source=deploy/lib/stack.sh
. "$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../../deploy/lib" && pwd -P)/stack.sh"

# shellcheck disable=SC2086 # a list of ports, split on purpose
free_port() { mg_stack_free_port $MG_RESERVED_PORTS; }
pid_alive() { mg_stack_pid_alive "$@"; }
pid_runs() { mg_stack_pid_runs "$@"; }
wait_gone() { mg_stack_wait_gone "$@"; }
child_pids() { mg_stack_child_pids "$@"; }
find_tool() { mg_stack_find_tool "$@"; }
conninfo_quote() { mg_stack_conninfo_quote "$@"; }
libconfig_quote() { mg_stack_libconfig_quote "$@"; }

# stop_pids PID...: SIGTERM, up to 10 s, then SIGKILL for what is left.
stop_pids() { mg_stack_stop_pids 10 "" "$@"; }

# ---------------------------------------------------------------------------
# HTTP.

HTTP_STATUS=
HTTP_TIME=

# http METHOD URL [CURL OPTIONS...]: one request.  Sets HTTP_STATUS (000
# when there was no answer) and HTTP_TIME (seconds); the answer is in
# $MG_T/last.headers and $MG_T/last.body.
http() {
    local method=$1 url=$2 w
    shift 2
    rm -f "$MG_T/last.headers" "$MG_T/last.body"
    w=$(curl -sS --max-time "${MG_HTTP_MAX_TIME:-30}" -X "$method" \
        -D "$MG_T/last.headers" -o "$MG_T/last.body" \
        -w '%{http_code} %{time_total}' "$@" "$url" 2>"$MG_T/last.curl-error")
    HTTP_STATUS=${w%% *}
    HTTP_TIME=${w##* }
    [ -n "$HTTP_STATUS" ] || HTTP_STATUS=000
    [ -n "$HTTP_TIME" ] || HTTP_TIME=0
    printf '%s\n' "$HTTP_STATUS" >"$MG_T/last.status"
    touch "$MG_T/last.headers" "$MG_T/last.body"
}

# header NAME: value of a header of the last answer (last one wins).
header() {
    local name=${1,,} line key value=
    while IFS= read -r line; do
        line=${line%$'\r'}
        if [[ $line == HTTP/* ]]; then
            value=
            continue
        fi
        key=${line%%:*}
        if [ "${key,,}" = "$name" ]; then
            value=${line#*:}
            value=${value# }
        fi
    done <"$MG_T/last.headers"
    printf '%s' "$value"
}

# save_last NAME: keeps the last answer's body as $MG_T/NAME.json.
save_last() {
    cp "$MG_T/last.body" "$MG_T/$1.json"
}

# expect_http DESCRIPTION STATUS [JS-EXPRESSION]: the last answer has this
# status and the expression holds.  The expression sees s (status), h
# (headers, lower-case names), t (body text), j (body parsed, undefined if
# not JSON) and the helpers of check.cjs.
expect_http() {
    local desc=$1 want=$2 expr=${3:-true} out
    if out=$(node "$MG_CHECK" http "$expr" "$want" "$MG_T/last.status" \
        "$MG_T/last.headers" "$MG_T/last.body" 2>&1); then
        tap_ok "$desc"
    else
        tap_not_ok "$desc" "$out"
    fi
}

# expect_json DESCRIPTION JS-EXPRESSION FILE...: the expression holds for
# the JSON files, given as f[0], f[1], ... (j is f[0]).
expect_json() {
    local desc=$1 expr=$2 out
    shift 2
    if out=$(node "$MG_CHECK" json "$expr" "$@" 2>&1); then
        tap_ok "$desc"
    else
        tap_not_ok "$desc" "$out"
    fi
}

# json_value FILE JS-EXPRESSION: prints the value of the expression (j is
# the parsed file, t its text).
json_value() {
    node "$MG_CHECK" value "$2" "$1"
}

# ---------------------------------------------------------------------------
# Postgres (the PG* environment variables say where; MG_DB which database).

# sql QUERY [PSQL OPTIONS...]: runs QUERY, prints unaligned rows.  The
# query comes on standard input so psql variables (-v name=value, used as
# :'name') are substituted: values never get pasted into SQL text.
# A request is settled by a responder thread just after its client has the
# answer, so sql first gives settlements in progress a moment (up to
# 300 ms); a row still pending after that is a request in flight.  sql_now
# reads at once (for watching requests in flight).
sql() {
    local i n
    for ((i = 0; i < 15; i++)); do
        n=$(psql -X -A -t -q -d "$MG_DB" -c \
            'SELECT count(*) FROM usage_events WHERE settled_at IS NULL' 2>/dev/null) || break
        [ "$n" = 0 ] && break
        sleep 0.02
    done
    sql_now "$@"
}

sql_now() {
    local q=$1
    shift
    psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$MG_DB" "$@" <<<"$q"
}

usage_count() {
    sql 'SELECT count(*) FROM usage_events'
}

# wait_row REQUEST-ID SECONDS: true once the request has a usage row
# (pending or settled), false after SECONDS without one.
wait_row() {
    local i
    for ((i = 0; i < $2 * 50; i++)); do
        [ "$(sql_now "SELECT count(*) FROM usage_events WHERE request_id = :'r'" -v r="$1")" -ge 1 ] &&
            return 0
        sleep 0.02
    done
    return 1
}

# usage_json REQUEST-ID FILE [COST-TEXT]: writes a JSON summary of the usage
# rows of one request: {n, row, project, key_prefix}; row has the usage
# columns plus cost_text (the numeric as text) and cost_eq (cost equals
# COST-TEXT as numeric, null without it).  Every request that reached
# the gateway ends with one row, but with admission from leases that row
# is first inserted when the request settles, just after its client has
# the answer (later still under valgrind): usage_json waits up to 10 s
# for the request's row to appear.
usage_json() {
    wait_row "$1" 10 || true
    sql "SELECT json_build_object(
            'n', (SELECT count(*) FROM usage_events WHERE request_id = :'rid'),
            'row', (SELECT to_jsonb(u) || jsonb_build_object(
                        'cost_text', u.cost::text,
                        'cost_eq', u.cost = NULLIF(:'cost', '')::numeric)
                      FROM usage_events u WHERE u.request_id = :'rid' LIMIT 1),
            'project', (SELECT p.name FROM usage_events u
                          JOIN projects p ON p.id = u.project_id
                         WHERE u.request_id = :'rid' LIMIT 1),
            'key_prefix', (SELECT k.prefix FROM usage_events u
                             JOIN api_keys k ON k.id = u.key_id
                            WHERE u.request_id = :'rid' LIMIT 1))" \
        -v rid="$1" -v cost="${3:-}" >"$2"
}

# ---------------------------------------------------------------------------
# check.cjs (next to this file): the JSON and HTTP checker behind
# expect_http / expect_json.

MG_CHECK=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)/check.cjs

# mg_lib_init NAME: the test's temporary directory, $TMPDIR/modelgate-NAME.*
# (exported as MG_T, removed by mg_finish), and the sanitizer builds'
# reports sent there (spawn-fcgi sends the responders' standard error to
# /dev/null; any report fails the run, see fcgi_sanitized).  Bails out when
# the directory cannot be made or check.cjs is not there.
mg_lib_init() {
    MG_T=$(mktemp -d "${TMPDIR:-/tmp}/modelgate-$1.XXXXXX") || {
        printf 'Bail out! mktemp failed\n'
        exit 99
    }
    export MG_T
    if [ ! -r "$MG_CHECK" ]; then
        printf 'Bail out! missing %s\n' "$MG_CHECK"
        exit 99
    fi
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$MG_T/sanitizer"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$MG_T/sanitizer"
}

# ---------------------------------------------------------------------------
# Tools and the throwaway Postgres.

# mg_fresh_db PREFIX: creates the test's own database PREFIX_PID_RANDOM
# (exported as MG_DB; DB_CREATED=1 so the cleanup drops it) and sets
# conninfo to the libpq connection string for it from the PG* variables.
# Bails out when createdb fails.
mg_fresh_db() {
    local out kv var
    MG_DB=$1_$$_$RANDOM
    if out=$(createdb "$MG_DB" 2>&1); then
        DB_CREATED=1
        tap_ok "a fresh database $MG_DB"
    else
        bail "createdb $MG_DB" "$out"
    fi
    export MG_DB
    conninfo=
    for kv in host:PGHOST port:PGPORT user:PGUSER password:PGPASSWORD; do
        var=${kv#*:}
        if [ -n "${!var:-}" ]; then
            conninfo+="${kv%%:*}=$(conninfo_quote "${!var}") "
        fi
    done
    conninfo+="dbname=$(conninfo_quote "$MG_DB")"
}

# mg_finish RC: the common end of a test's cleanup: drops the test
# database (when DB_CREATED=1), shows the logs after a failure, removes the
# temp dir (unless MG_KEEP_TMP=1) and exits with RC.
mg_finish() {
    local rc=$1
    if [ "${DB_CREATED:-0}" = 1 ]; then
        dropdb --if-exists "$MG_DB" >/dev/null 2>&1 ||
            printf '# could not drop database %s\n' "$MG_DB"
    fi
    if [ "$rc" -ne 0 ] || [ "$MG_TAP_FAILED" -gt 0 ]; then
        if declare -F show_logs >/dev/null; then show_logs; fi
    fi
    if [ "${MG_KEEP_TMP:-0}" = 1 ]; then
        printf '# kept %s\n' "$MG_T"
    else
        rm -rf "$MG_T"
    fi
    exit "$rc"
}

# mg_traps FUNCTION: runs FUNCTION at exit; signals end the test with the
# shell's usual status so that FUNCTION still runs.
mg_traps() {
    # shellcheck disable=SC2064
    trap "$1" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# mg_missing_exit ITEM...: returns when nothing is named; otherwise skips
# the test (exit 77), or fails it (exit 99) under MG_REQUIRE_INTEGRATION=1.
mg_missing_exit() {
    [ "$#" -gt 0 ] || return 0
    if [ "${MG_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        printf 'Bail out! missing: %s (MG_REQUIRE_INTEGRATION=1)\n' "$*"
        exit 99
    fi
    printf '1..0 # SKIP missing: %s\n' "$*"
    exit 77
}

# mg_find_programs: sets FCGI, CLI and MOCK to the built programs, and
# fails the test when one of them is not built.
# mg_script_start SCRIPT TOOL...: the start of a test script that needs
# Postgres: MG_SRCDIR and MG_BUILDDIR (default: the tree of SCRIPT), the
# tools it needs besides psql (spawn-fcgi's path goes to SPAWN_FCGI;
# pg_virtualenv, and pg_ctlcluster when named, only without PGHOST), a
# skip or a bail out when one is missing, the programs built, then SCRIPT
# again under pg_virtualenv unless PGHOST is set.
mg_script_start() {
    local script=$1 tool missing=()
    shift
    : "${MG_SRCDIR:=$(cd -- "$(dirname -- "$script")/../.." && pwd -P)}"
    : "${MG_BUILDDIR:=$MG_SRCDIR}"
    export MG_SRCDIR MG_BUILDDIR
    find_tool psql >/dev/null || missing+=("psql (postgresql-client)")
    if [ -z "${PGHOST:-}" ]; then
        find_tool pg_virtualenv >/dev/null || missing+=("pg_virtualenv (postgresql-common)")
    fi
    for tool in "$@"; do
        case $tool in
            spawn-fcgi) SPAWN_FCGI=$(find_tool spawn-fcgi) || missing+=(spawn-fcgi) ;;
            pg_ctlcluster)
                [ -n "${PGHOST:-}" ] || find_tool pg_ctlcluster >/dev/null ||
                    missing+=("pg_ctlcluster (postgresql-common)")
                ;;
            *) find_tool "$tool" >/dev/null || missing+=("$tool") ;;
        esac
    done
    mg_missing_exit "${missing[@]}"
    mg_find_programs
    mg_need_pg "$script"
}

# mg_stack_test NAME: the start of a test that runs a stack: its
# temporary directory (mg_lib_init NAME), no database, mock or server yet,
# lighttpd in front, and a cleanup at exit that stops what it started and
# drops its database.
mg_stack_test() {
    mg_lib_init "$1"
    MG_DB=
    DB_CREATED=0
    MOCK_PID=
    MG_SERVER=lighttpd
    mg_traps mg_stack_cleanup
}

mg_stack_cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    stop_stack
    wait 2>/dev/null
    mg_finish "$rc"
}

# mg_need_node_module MODULE: skips the test (or fails it under
# MG_REQUIRE_INTEGRATION=1) when node cannot load MODULE.
mg_need_node_module() {
    node -e 'require(process.argv[1])' "$1" 2>/dev/null && return 0
    mg_missing_exit "$1 (npm ci in tests/integration)"
}

mg_find_programs() {
    local prog
    FCGI=$MG_BUILDDIR/app/modelgate-fcgi
    CLI=$MG_BUILDDIR/app/modelgate
    MOCK=$MG_BUILDDIR/tests/mock/mock-upstream
    for prog in "$FCGI" "$CLI" "$MOCK"; do
        if [ ! -x "$prog" ]; then
            printf 'Bail out! not built: %s (run make)\n' "$prog"
            exit 99
        fi
    done
}

# fcgi_sanitized: true when modelgate-fcgi (after mg_find_programs) was
# built with AddressSanitizer (./configure --enable-sanitizers) or runs
# under valgrind (tests/memcheck sets MG_MEMCHECK): either way its memory
# is not its own to measure.
fcgi_sanitized() {
    [ -n "${MG_MEMCHECK:-}" ] || grep -q -a __asan_init "$FCGI"
}

# mg_need_pg SCRIPT [ARGS...]: without PGHOST, runs SCRIPT again under
# pg_virtualenv (a throwaway cluster in a temporary directory: -t, so runs
# never share one, even as root) and does not return.  The cluster gets a
# port the kernel has just handed out: pg_virtualenv would otherwise take
# the first free port from 5432 on, and two tests started at the same
# moment (make -j2 check) would both take it.
mg_need_pg() {
    local script=$1 port
    shift
    [ -z "${PGHOST:-}" ] || return 0
    if [ -n "${MG_IT_UNDER_PG_VIRTUALENV:-}" ]; then
        printf 'Bail out! pg_virtualenv did not set PGHOST\n'
        exit 99
    fi
    export MG_IT_UNDER_PG_VIRTUALENV=1
    if port=$(free_port) && [ -n "$port" ]; then
        export PGPORT=$port
    fi
    exec pg_virtualenv -t "$script" "$@"
}

# ---------------------------------------------------------------------------
# The mock upstream.

MOCK_PID=
MOCK_PORT=
MOCK_URL=

# start_mock [MOCK OPTIONS...]: starts the mock upstream ($MOCK) on a free
# port; sets MOCK_PID, MOCK_PORT and MOCK_URL.  Prints what went wrong on
# failure.
start_mock() {
    MOCK_URL=
    MG_STACK_MOCK=$MOCK mg_stack_mock_start "$MG_T/mock.out" "$MG_T/mock.err" "$@"
    local rc=$?
    # shellcheck disable=SC2034 # for the caller
    MOCK_PID=$MG_STACK_MOCK_PID
    MOCK_PORT=$MG_STACK_MOCK_PORT
    # shellcheck disable=SC2034 # for the caller
    [ "$rc" -eq 0 ] && MOCK_URL=http://127.0.0.1:$MOCK_PORT
    return "$rc"
}

# ---------------------------------------------------------------------------
# Responders and web servers.
#
# MG_SERVER picks the web server in front of the responders: lighttpd (the
# default), apache (httpd 2.4, mod_proxy_fcgi) or nginx.  Each one runs with
# a main configuration written to $MG_T that includes the shipped snippet
# of deploy/<server>/ -- the production configuration -- and listens on
# 127.0.0.1 only.  All three run in the foreground (lighttpd -D, apache2
# -D FOREGROUND, nginx "daemon off"), so the pid of the main process is
# known at once, with no pid file to wait for.
#
# As root, Apache and nginx run their workers as www-data, as on Debian, so
# the responders' socket is given to www-data with mode 0660 (as
# deploy/spawn-fcgi/modelgate-spawn does) and $MG_T is opened for
# traversal (0711).

: "${MG_SERVER:=lighttpd}"
RESPONDER_PIDS=()   # every responder started
SERVER_PIDS=()      # the main process of every web server started
MG_RESERVED_PORTS=  # ports start_server must not take (space separated)

mg_server_tool() { mg_stack_server_tool "$@"; }
mg_server_package() { mg_stack_server_package "$@"; }

# mg_check_servers NAME SERVER...: bails out on a server that is not
# lighttpd, apache or nginx (NAME: the variable that listed them), and adds
# each server that is not installed to the caller's missing array when
# MG_REQUIRE_INTEGRATION=1 (else a missing server skips that server only).
mg_check_servers() {
    local name=$1 server
    shift
    for server in "$@"; do
        case $server in
            lighttpd | apache | nginx) ;;
            *)
                printf 'Bail out! %s: unknown server %s\n' "$name" "$server"
                exit 99
                ;;
        esac
        if ! mg_server_tool "$server" >/dev/null && [ "${MG_REQUIRE_INTEGRATION:-0}" = 1 ]; then
            missing+=("$server (Debian package $(mg_server_package "$server"))")
        fi
    done
}
mg_web_user() { mg_stack_web_user; }

STACK_SOCK=
STACK_PIDS=()

# start_responders NAME CONF PROCESSES: PROCESSES modelgate-fcgi ($FCGI)
# under spawn-fcgi ($SPAWN_FCGI) on the unix socket $MG_T/NAME.sock; sets
# STACK_SOCK and STACK_PIDS and adds to RESPONDER_PIDS.  Prints what went
# wrong on failure.
start_responders() {
    local name=$1 conf=$2 procs=$3 web rc=0
    STACK_SOCK=
    web=$(mg_web_user)
    if [ -n "$web" ]; then
        chmod 0711 "$MG_T" || return 1
    fi
    MG_STACK_FCGI=$FCGI MG_STACK_SPAWN_FCGI=$SPAWN_FCGI MG_STACK_SOCK_OWNER=$web \
        mg_stack_responders_start "$MG_T/$name.sock" "$MG_T/$name-fcgi.pid" "$procs" \
        "$conf" "$MG_T/$name-spawn.log" || rc=1
    # shellcheck disable=SC2034 # for the caller
    STACK_PIDS=("${MG_STACK_PIDS[@]}")
    RESPONDER_PIDS+=("${MG_STACK_PIDS[@]}")
    # shellcheck disable=SC2034 # for the caller
    [ "$rc" -eq 0 ] && STACK_SOCK=$MG_T/$name.sock
    return "$rc"
}

# stop_responders: SIGTERM (later SIGKILL) to every responder started that
# still runs.
stop_responders() {
    mg_stack_stop_running 10 modelgate-fcgi "${RESPONDER_PIDS[@]}"
}

# stop_servers: stops every web server started (SIGTERM, later SIGKILL),
# then any worker process that outlived its main process.  A main process
# is known by its configuration file in $MG_T, so a recycled pid is never
# signalled.
stop_servers() {
    local pid workers=() live=()
    for pid in "${SERVER_PIDS[@]}"; do
        pid_runs "$pid" "$MG_T/" || continue
        live+=("$pid")
        mapfile -t -O "${#workers[@]}" workers < <(child_pids "$pid")
    done
    stop_pids "${live[@]}"
    live=()
    for pid in "${workers[@]}"; do
        pid_alive "$pid" && live+=("$pid")
    done
    stop_pids "${live[@]}"
}

# stop_stack: the end of every test's cleanup: the web servers, the
# responders and the mock upstream it started (none is fine).
stop_stack() {
    stop_servers
    stop_responders
    if [ -n "$MOCK_PID" ]; then
        stop_pids "$MOCK_PID"
    fi
}

SERVER_PORT=
SERVER_PID=

# start_server NAME SOCKET: starts $MG_SERVER on a free port of 127.0.0.1
# with the shipped configuration, which sends /v1/ and /healthz to the
# responders on SOCKET, and waits for a 200 from /healthz.  Sets
# SERVER_PORT and SERVER_PID and adds to SERVER_PIDS.  The server's files
# are $MG_T/NAME-$MG_SERVER* (configuration, logs).  Prints what went wrong
# on failure.
start_server() {
    local name=$1 sock=$2 port base rc=0
    SERVER_PORT=
    SERVER_PID=
    mg_server_tool "$MG_SERVER" >/dev/null || return 1
    port=$(free_port) || return 1
    base=$MG_T/$name-$MG_SERVER
    case $MG_SERVER in
        lighttpd) mg_lighttpd_conf "$base" "$port" "$sock" ;;
        apache) mg_apache_conf "$base" "$port" "$sock" ;;
        nginx) mg_nginx_conf "$base" "$port" "$sock" ;;
    esac || return 1
    mg_stack_server_start "$MG_SERVER" "$base.conf" "$base" \
        "http://127.0.0.1:$port/healthz" 20 200 || rc=1
    [ -n "$MG_STACK_SERVER_PID" ] && SERVER_PIDS+=("$MG_STACK_SERVER_PID")
    [ "$rc" -eq 0 ] || return 1
    # shellcheck disable=SC2034 # for the caller
    SERVER_PORT=$port
    # shellcheck disable=SC2034 # for the caller
    SERVER_PID=$MG_STACK_SERVER_PID
}

# The main configurations come from the templates in conf/ (next to this
# file), filled by mg_stack_fill; values are quoted here for each syntax.
MG_CONF_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)/conf

# What the servers serve is a copy of the shipped deploy/<server>/modelgate.conf
# with only paths replaced (the socket, the error documents), plus
# MG_DEPLOY_EDITS: literal replacements a test needs (an array of FROM TO
# pairs, e.g. a shorter timeout), applied to every server's copy; each
# FROM must be in the file.
MG_DEPLOY_EDITS=()

# mg_deploy_copy SERVER OUT [FROM TO]...: OUT, deploy/SERVER/modelgate.conf
# with each FROM replaced by TO, then MG_DEPLOY_EDITS.  Fails naming a FROM
# that the file does not hold.
mg_deploy_copy() {
    local server=$1 out=$2
    shift 2
    # literal replacements (not sed: a path may hold any character)
    node -e '
        const fs = require("fs");
        const [src, dst, ...edits] = process.argv.slice(1);
        let text = fs.readFileSync(src, "utf8");
        for (let i = 0; i + 1 < edits.length; i += 2) {
            if (!text.includes(edits[i])) {
                console.log(src + " has no \"" + edits[i] + "\" to replace");
                process.exit(1);
            }
            text = text.split(edits[i]).join(edits[i + 1]);
        }
        fs.writeFileSync(dst, text);' \
        "$MG_SRCDIR/deploy/$server/modelgate.conf" "$out" "$@" "${MG_DEPLOY_EDITS[@]}"
}

# The shipped configurations read the error documents (deploy/errors/)
# where make install puts them.
MG_ERRORS_INSTALLED=/usr/local/share/modelgate/errors

# mg_errors_dir: prints $MG_T/errors, a copy of deploy/errors/ that the
# servers' workers (www-data when run as root) can read.
mg_errors_dir() {
    local dir=$MG_T/errors
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir" || return 1
        cp -- "$MG_SRCDIR"/deploy/errors/*.html "$dir/" || return 1
        chmod 0755 "$dir" || return 1
        chmod 0644 "$dir"/*.html || return 1
    fi
    printf '%s\n' "$dir"
}

# mg_lighttpd_conf BASE PORT SOCKET: BASE.conf for lighttpd from
# conf/lighttpd.conf.in, including BASE-modelgate.conf: a copy of
# deploy/lighttpd/modelgate.conf (mg_deploy_copy) that reads the error
# documents from mg_errors_dir.  MG_LIGHTTPD_EXTRA, when set, is added to
# the main configuration as it is (settings of the main server, e.g. its
# limits, that a test needs besides the shipped snippet).
mg_lighttpd_conf() {
    local base=$1 errors
    mkdir -p "$MG_T/www" "$MG_T/upload" || return 1
    errors=$(mg_errors_dir) || return 1
    mg_deploy_copy lighttpd "$base-modelgate.conf" \
        "\"$MG_ERRORS_INSTALLED/\"" "$(libconfig_quote "$errors/")" || return 1
    mg_stack_fill "$MG_CONF_DIR/lighttpd.conf.in" "$base.conf" \
        PORT="$2" WWW="$(libconfig_quote "$MG_T/www")" \
        UPLOAD="$(libconfig_quote "$MG_T/upload")" \
        PIDFILE="$(libconfig_quote "$base.pid")" \
        ERRORLOG="$(libconfig_quote "$base-error.log")" \
        EXTRA="${MG_LIGHTTPD_EXTRA:-}" SOCKET="$(libconfig_quote "$3")" \
        SNIPPET="$(libconfig_quote "$base-modelgate.conf")"
}

# mg_apache_conf BASE PORT SOCKET: BASE.conf for Apache httpd 2.4 from
# conf/apache.conf.in, with the modules Debian enables by default that
# matter here (the module directory is Debian's, or MG_APACHE_MODULES),
# including BASE-modelgate.conf, a copy of deploy/apache/modelgate.conf
# (mg_deploy_copy), after defining MODELGATE_SOCKET and MODELGATE_ERRORS
# (mg_errors_dir) as that file documents.
mg_apache_conf() {
    local base=$1 web m errors loads=
    local mods=${MG_APACHE_MODULES:-/usr/lib/apache2/modules}
    mkdir -p "$base-root" "$base-run" "$MG_T/www" || return 1
    errors=$(mg_errors_dir) || return 1
    mg_deploy_copy apache "$base-modelgate.conf" || return 1
    for m in mpm_event authz_core alias env setenvif headers proxy proxy_fcgi; do
        if [ ! -f "$mods/mod_$m.so" ]; then
            echo "no $mods/mod_$m.so (set MG_APACHE_MODULES to Apache's module directory)"
            return 1
        fi
        loads+="LoadModule ${m}_module $(libconfig_quote "$mods/mod_$m.so")"$'\n'
    done
    web=$(mg_web_user)
    mg_stack_fill "$MG_CONF_DIR/apache.conf.in" "$base.conf" \
        ROOT="$(libconfig_quote "$base-root")" RUNDIR="$(libconfig_quote "$base-run")" \
        PIDFILE="$(libconfig_quote "$base.pid")" ERRORLOG="$(libconfig_quote "$base-error.log")" \
        PORT="$2" USER="${web:+User ${web% *}}" GROUP="${web:+Group ${web#* }}" \
        LOADS="$loads" WWW="$(libconfig_quote "$MG_T/www")" SOCKET="$(libconfig_quote "$3")" \
        ERRORS="$(libconfig_quote "$errors")" SNIPPET="$(libconfig_quote "$base-modelgate.conf")"
}

# mg_nginx_conf BASE PORT SOCKET: BASE.conf for nginx from
# conf/nginx.conf.in.  Its server block includes BASE-modelgate.conf: a
# copy of deploy/nginx/modelgate.conf (mg_deploy_copy) with the test's
# socket (the shipped file names /run/modelgate/gateway.sock and says to
# edit those lines for another path).
mg_nginx_conf() {
    local base=$1 web
    mkdir -p "$base-prefix" "$base-temp" || return 1
    mg_deploy_copy nginx "$base-modelgate.conf" \
        "fastcgi_pass unix:/run/modelgate/gateway.sock;" "fastcgi_pass unix:$3;" || return 1
    web=$(mg_web_user)
    mg_stack_fill "$MG_CONF_DIR/nginx.conf.in" "$base.conf" \
        BASE="$base" PORT="$2" USER="${web:+user $web;}"
}

# mg_conf_write FILE [NAME=VALUE...]: FILE, a modelgate.conf from
# conf/modelgate.conf.in.  Every placeholder has a default below (most are
# modelgate's own defaults); a test gives only the values it needs
# otherwise.  LOG_FILE defaults to FILE with .log for .conf, CONNINFO to
# $conninfo, BASE_URL to the mock's $MOCK_URL/api/v1.  String values are
# given plain and quoted here.
mg_conf_write() {
    local out=$1 kv name args=()
    local -A v=(
        [LOG_LEVEL]=info [LOG_FILE]=${1%.conf}.log [CONNINFO]=${conninfo:-}
        [POOL_SIZE]=4 [DB_CONNECT_TIMEOUT]=5
        [BASE_URL]=${MOCK_URL:-http://127.0.0.1:9}/api/v1
        [UPSTREAM_CONNECT_TIMEOUT]=2 [UPSTREAM_TIMEOUT]=30
        [THREADS]=8 [MAX_BODY_BYTES]=33554432 [SHUTDOWN_GRACE]=10
        [HEARTBEAT_INTERVAL]=5 [CLIENT_CLOSE]=abort [MAX_DRAINS]=64
        [DEFAULT_MAX_TOKENS]=4096 [FALLBACK_PROMPT_PRICE]=0.00001
        [FALLBACK_COMPLETION_PRICE]=0.00003 [REAP_AFTER]=900 [REAP_INTERVAL]=60
        [ADMISSION]=${MG_TEST_ADMISSION:-strict} [LEASE_TIMEOUT]=30
        [CATALOG_REFRESH]=0 [RECON_VERIFY]=needed [RECON_MAX_RPS]=0
        [MANAGEMENT_KEY_FILE]= [CLOSE_AFTER]=1800
        [DASHBOARD_DIR]=${MG_SRCDIR:-}/app/dashboard
        [METRICS_DIR]= [METRICS_ALLOW]='127.0.0.0/8, ::1' [METRICS_TOKEN_FILE]=
        [METRICS_PER_MODEL]=0 [METRICS_PER_PROJECT]=0
    )
    shift
    for kv in "$@"; do
        name=${kv%%=*}
        if [ -z "${v[$name]+set}" ]; then
            echo "mg_conf_write: unknown setting $name"
            return 1
        fi
        v[$name]=${kv#*=}
    done
    for name in LOG_LEVEL LOG_FILE CONNINFO BASE_URL CLIENT_CLOSE ADMISSION \
        FALLBACK_PROMPT_PRICE FALLBACK_COMPLETION_PRICE RECON_VERIFY MANAGEMENT_KEY_FILE \
        DASHBOARD_DIR METRICS_DIR METRICS_ALLOW METRICS_TOKEN_FILE; do
        v[$name]=$(libconfig_quote "${v[$name]}")
    done
    for name in "${!v[@]}"; do
        args+=("$name=${v[$name]}")
    done
    mg_stack_fill "$MG_CONF_DIR/modelgate.conf.in" "$out" WRITER="${0##*/}" "${args[@]}"
}

# ---------------------------------------------------------------------------
# Reconciliation (test-reconcile*.sh).

# chat KEY MODEL [STREAM]: one chat completion through $BASE; its status
# in HTTP_STATUS.
chat() {
    http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer $1" \
        -H 'Content-Type: application/json' \
        --data "{\"model\": \"$2\", \"stream\": ${3:-false}, \"messages\": [{\"role\": \"user\", \"content\": \"count the words of this prompt please\"}]}"
}

# settled: waits up to 10 s until no usage row is pending.
settled() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(sql_now 'SELECT count(*) FROM usage_events WHERE settled_at IS NULL')" = 0 ] &&
            return 0
        sleep 0.1
    done
    return 1
}

# billed_table KEY: the table test_billed (upstream_id, billed): what the
# mock billed for the generation of every usage row, by GET /generation
# with KEY.
billed_table() {
    local id rows
    rows=$(sql_now "SELECT upstream_id FROM usage_events WHERE upstream_id IS NOT NULL ORDER BY 1")
    : >"$MG_T/billed.csv"
    for id in $rows; do
        curl -sS --max-time 5 -H "Authorization: Bearer $1" \
            "$MOCK_URL/api/v1/generation?id=$id" >"$MG_T/gen.json" || return 1
        printf '%s,%s\n' "$id" "$(json_value "$MG_T/gen.json" 'j.data.total_cost')" \
            >>"$MG_T/billed.csv"
    done
    sql_now "CREATE TABLE test_billed (upstream_id text PRIMARY KEY, billed numeric NOT NULL)" &&
        sql_now "\\copy test_billed FROM '$MG_T/billed.csv' WITH (FORMAT csv)"
}

# cli ARGS...: the CLI with the configuration $MG_CLI_CONF.
MG_CLI_CONF=
cli() {
    "$CLI" -c "$MG_CLI_CONF" --sql-dir "$MG_SRCDIR/sql" "$@"
}

# recon_db CONF: the database of CONF migrated, the projects alpha and
# beta made with a key each (KA, KB); cli uses CONF from then on.
recon_db() {
    local out p
    MG_CLI_CONF=$1
    out=$(cli db migrate 2>&1) || bail "db migrate" "$out"
    for p in alpha beta; do
        out=$(cli project create "$p" 2>&1) || bail "project create $p" "$out"
    done
    KA=$(cli key create alpha 2>"$MG_T/key.err") || bail "key create alpha" "$(cat "$MG_T/key.err")"
    KB=$(cli key create beta 2>"$MG_T/key.err") || bail "key create beta" "$(cat "$MG_T/key.err")"
}

# billed_rows: "MATCHED/ALL": the rows of test_billed whose usage row's
# charge (cost plus adjustments) and upstream cost are the mock's bill.
billed_rows() {
    sql_now "SELECT count(*) FILTER (WHERE u.cost + coalesce(a.amount, 0) = b.billed
                                      AND u.upstream_cost = b.billed) || '/' || count(*)
               FROM usage_events u JOIN test_billed b USING (upstream_id)
               LEFT JOIN usage_adjustments a USING (request_id, created_at)"
}

# spent_off: how many projects' spent differs from their rows' costs plus
# their adjustments.
spent_off() {
    sql_now "SELECT count(*) FROM project_quota q
              WHERE q.spent <> (SELECT coalesce(sum(u.cost), 0) FROM usage_events u
                                 WHERE u.project_id = q.project_id)
                              + (SELECT coalesce(sum(a.amount), 0) FROM usage_adjustments a
                                  WHERE a.project_id = q.project_id)"
}

# mg_stack_up CONF: two responders with CONF behind lighttpd; BASE is its
# URL.  Bails out when they do not start.
mg_stack_up() {
    if start_responders main "$1" 2 >"$MG_T/stack.txt" 2>&1 &&
        start_server main "$STACK_SOCK" >>"$MG_T/stack.txt" 2>&1; then
        BASE=http://127.0.0.1:$SERVER_PORT
        tap_ok "stack up: lighttpd on $SERVER_PORT, two responders"
    else
        bail "the stack starts" "$(cat "$MG_T/stack.txt")"
    fi
}
