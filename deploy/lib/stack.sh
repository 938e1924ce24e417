# shellcheck shell=bash
# deploy/lib/stack.sh -- start and stop the pieces of a modelgate stack on
# one machine: a Postgres cluster, the mock upstream, modelgate-fcgi
# responders under spawn-fcgi, and a web server (lighttpd, Apache httpd or
# nginx) in front of them.  A library of functions, sourced by deploy/local,
# tests/integration/lib.sh and tests/bench/run; it runs nothing when
# sourced.  Installed with deploy/ (share/modelgate/deploy/lib/).
#
# Every function is named mg_stack_*; what differs between callers (paths,
# ports, processes, the server) is an argument or one of these variables:
#
#   MG_STACK_FCGI        the responder program (modelgate-fcgi)
#   MG_STACK_MOCK        the mock upstream program (tests/mock/mock-upstream)
#   MG_STACK_SPAWN_FCGI  spawn-fcgi (default: spawn-fcgi on PATH)
#   MG_STACK_SOCK_OWNER  "USER GROUP" owning the responders' socket (mode
#                        0660); empty: the caller's, with spawn-fcgi's mode
#   MG_STACK_DETACH      1: long-running programs start in their own session
#                        (setsid), to outlive the caller's terminal
#   MG_STACK_NOTE        the function that prints a note (mg_stack_note)
#
# Functions that start something print what went wrong and return 1 on
# failure; the caller decides whether that ends the run.

: "${MG_STACK_SPAWN_FCGI:=spawn-fcgi}"
: "${MG_STACK_NOTE:=mg_stack_note}"
: "${MG_STACK_DETACH:=0}"
: "${MG_STACK_SOCK_OWNER:=}"

# mg_stack_note TEXT: the default note printer, a "#" line on stdout.
mg_stack_note() {
    printf '# %s\n' "$*"
}

# ---------------------------------------------------------------------------
# Tools, quoting, templates.

# mg_stack_find_tool NAME: prints the path of a program, also looking in the
# sbin directories that are not on every user's PATH.
mg_stack_find_tool() {
    local d
    if command -v "$1" 2>/dev/null; then
        return 0
    fi
    for d in /usr/sbin /sbin /usr/local/sbin; do
        if [ -x "$d/$1" ]; then
            printf '%s\n' "$d/$1"
            return 0
        fi
    done
    return 1
}

# mg_stack_conninfo_quote VALUE: VALUE as a libpq conninfo value ('...' with
# \ and ' escaped).
mg_stack_conninfo_quote() {
    local v=$1
    v=${v//\\/\\\\}
    v=${v//\'/\\\'}
    printf "'%s'" "$v"
}

# mg_stack_libconfig_quote VALUE: VALUE as a libconfig (and lighttpd, and
# double-quoted Apache) string.
mg_stack_libconfig_quote() {
    local v=$1
    v=${v//\\/\\\\}
    v=${v//\"/\\\"}
    printf '"%s"' "$v"
}

# mg_stack_fill TEMPLATE OUT NAME=VALUE...: writes OUT, a copy of TEMPLATE
# with every @NAME@ replaced by VALUE, literally (VALUE may hold any
# character; quoting it for the file's syntax is the caller's part).  A
# line that is only a @NAME@ whose VALUE is empty is left out.  Fails when
# an @UPPER_CASE@ placeholder is left unfilled.
mg_stack_fill() {
    local tpl=$1 out=$2 kv name text
    shift 2
    text=$(cat -- "$tpl") || return 1
    for kv in "$@"; do
        name=${kv%%=*}
        if [ -z "${kv#*=}" ]; then
            text=${text//$'\n'"@$name@"$'\n'/$'\n'}
        fi
        text=${text//"@$name@"/"${kv#*=}"}
    done
    if [[ $text =~ @[A-Z][A-Z0-9_]*@ ]]; then
        printf '%s: %s is not filled in\n' "$tpl" "${BASH_REMATCH[0]}"
        return 1
    fi
    printf '%s\n' "$text" >"$out"
}

# ---------------------------------------------------------------------------
# Processes and ports.

# mg_stack_free_port [RESERVED...]: prints a TCP port on 127.0.0.1 that
# nothing listens on now and that is not one of RESERVED (needs node).
mg_stack_free_port() {
    local port
    while :; do
        port=$(node -e '
            const s = require("net").createServer();
            s.listen(0, "127.0.0.1", () => {
                process.stdout.write(String(s.address().port) + "\n");
                s.close();
            });') || return 1
        [[ " $* " == *" $port "* ]] || break
    done
    printf '%s\n' "$port"
}

# mg_stack_pid_alive PID: the process exists and is not a zombie.
mg_stack_pid_alive() {
    local stat
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $stat != *") Z "* ]]
}

# mg_stack_pid_runs PID WORD: PID is alive and its command line contains
# WORD (so a recycled pid is never signalled).
mg_stack_pid_runs() {
    local cmd
    mg_stack_pid_alive "$1" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$2"* ]]
}

# mg_stack_wait_gone SECONDS PID...: true once none of the pids is alive.
mg_stack_wait_gone() {
    local limit=$1 i pid alive
    shift
    for ((i = 0; i <= limit * 10; i++)); do
        alive=0
        for pid in "$@"; do
            if mg_stack_pid_alive "$pid"; then
                alive=1
                break
            fi
        done
        [ "$alive" -eq 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# mg_stack_stop_pids SECONDS WHAT PID...: SIGTERM to every pid, up to
# SECONDS for them to go, then a note and SIGKILL for what is left.  WHAT
# names them in the note ("" for just the pid).
mg_stack_stop_pids() {
    local wait=$1 what=$2 pid
    shift 2
    [ "$#" -gt 0 ] || return 0
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    if ! mg_stack_wait_gone "$wait" "$@"; then
        for pid in "$@"; do
            if mg_stack_pid_alive "$pid"; then
                if [ -n "$what" ]; then
                    "$MG_STACK_NOTE" "$what (pid $pid) ignored SIGTERM for ${wait}s; sending SIGKILL"
                else
                    "$MG_STACK_NOTE" "pid $pid ignored SIGTERM for $wait s; sending SIGKILL"
                fi
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
        mg_stack_wait_gone 5 "$@"
    fi
    return 0
}

# mg_stack_stop_running SECONDS WORD PID...: mg_stack_stop_pids for those
# of the pids that still run a command line containing WORD.
mg_stack_stop_running() {
    local wait=$1 word=$2 pid live=()
    shift 2
    for pid in "$@"; do
        mg_stack_pid_runs "$pid" "$word" && live+=("$pid")
    done
    mg_stack_stop_pids "$wait" "$word" "${live[@]}"
}

# mg_stack_child_pids PID: prints the pids of PID's children, one a line.
mg_stack_child_pids() {
    local f stat rest
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        rest=${stat##*) }   # "STATE PPID ..." after "(command) "
        rest=${rest#* }
        if [ "${rest%% *}" = "$1" ]; then
            f=${f#/proc/}
            printf '%s\n' "${f%/stat}"
        fi
    done
}

MG_STACK_HTTP_CODE=

# mg_stack_wait_http URL SECONDS [CODE [PID]]: true once URL answers with
# CODE (any answer when CODE is empty), within SECONDS; false at once when
# PID (if given) is gone.  Sets MG_STACK_HTTP_CODE to the last status.
mg_stack_wait_http() {
    local url=$1 limit=$2 want=${3:-} pid=${4:-} i
    MG_STACK_HTTP_CODE=
    for ((i = 0; i < limit * 10; i++)); do
        MG_STACK_HTTP_CODE=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null)
        if [ -n "$want" ]; then
            [ "$MG_STACK_HTTP_CODE" = "$want" ] && return 0
        elif [ -n "$MG_STACK_HTTP_CODE" ] && [ "$MG_STACK_HTTP_CODE" != 000 ]; then
            return 0
        fi
        if [ -n "$pid" ] && ! mg_stack_pid_alive "$pid"; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# mg_stack_bg OUT COMMAND...: runs COMMAND in the background (in its own
# session under MG_STACK_DETACH=1), stdin from /dev/null, stdout and stderr
# appended to OUT; sets MG_STACK_BG_PID to its pid.
MG_STACK_BG_PID=
mg_stack_bg() {
    local out=$1
    shift
    if [ "$MG_STACK_DETACH" = 1 ]; then
        # setsid execs the command (the shell's child leads no group)
        setsid "$@" </dev/null >>"$out" 2>&1 &
    else
        "$@" </dev/null >>"$out" 2>&1 &
    fi
    MG_STACK_BG_PID=$!
}

# ---------------------------------------------------------------------------
# Postgres: a private cluster run with pg_ctl, reached on a unix socket
# only, with the superuser modelgate and trust authentication.  As root the
# cluster belongs to the postgres user.

MG_STACK_PGBIN=

# mg_stack_as_pg COMMAND...: runs COMMAND as the owner of the cluster
# (postgres when we are root, from /, which postgres can enter).
mg_stack_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# mg_stack_pg_bindir [DATADIR]: sets MG_STACK_PGBIN to the directory of the
# Postgres server programs: that of DATADIR's major version when it holds a
# cluster, else the newest under /usr/lib/postgresql, else pg_ctl's on PATH.
# False when none is found.
mg_stack_pg_bindir() {
    local d ver=
    [ -n "${1:-}" ] && [ -f "$1/PG_VERSION" ] && ver=$(<"$1/PG_VERSION")
    MG_STACK_PGBIN=
    if [ -n "$ver" ] && [ -x "/usr/lib/postgresql/$ver/bin/pg_ctl" ]; then
        MG_STACK_PGBIN=/usr/lib/postgresql/$ver/bin
    else
        for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
            [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && MG_STACK_PGBIN=$d
        done
        if [ -z "$MG_STACK_PGBIN" ] && command -v pg_ctl >/dev/null 2>&1; then
            MG_STACK_PGBIN=$(dirname -- "$(command -v pg_ctl)")
        fi
    fi
    [ -n "$MG_STACK_PGBIN" ] && [ -x "$MG_STACK_PGBIN/pg_ctl" ]
}

# mg_stack_pg_init DATADIR LOG: creates a cluster in DATADIR (initdb's
# output appended to LOG) whose postgresql.conf includes
# modelgate-local.conf, which mg_stack_pg_start writes.
mg_stack_pg_init() {
    mg_stack_as_pg "$MG_STACK_PGBIN/initdb" -D "$1" --auth=trust -U modelgate -E UTF8 \
        --no-locale >>"$2" 2>&1 || {
        tail -n 20 "$2"
        return 1
    }
    printf "\n# deploy/lib/stack.sh: socket, port and the like\ninclude_if_exists = 'modelgate-local.conf'\n" |
        mg_stack_as_pg tee -a "$1/postgresql.conf" >/dev/null
}

# mg_stack_pg_running DATADIR: the cluster in DATADIR runs.
mg_stack_pg_running() {
    [ -f "$1/PG_VERSION" ] || return 1
    mg_stack_as_pg "$MG_STACK_PGBIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# mg_stack_pg_start DATADIR SOCKDIR PORT LOG [NAME=VALUE...]: starts the
# cluster listening on a unix socket in SOCKDIR only, with PORT and the
# settings given (rewritten at every start), and waits until it accepts
# connections (up to 60 s).  The server log is LOG.
mg_stack_pg_start() {
    local data=$1 sock=$2 port=$3 log=$4 kv
    shift 4
    {
        printf "listen_addresses = ''\nport = %s\nunix_socket_directories = '%s'\n" \
            "$port" "${sock//\'/\'\'}"
        for kv in "$@"; do
            printf "%s = '%s'\n" "${kv%%=*}" "${kv#*=}"
        done
    } | mg_stack_as_pg tee "$data/modelgate-local.conf" >/dev/null
    mg_stack_as_pg "$MG_STACK_PGBIN/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null || {
        tail -n 20 "$log"
        return 1
    }
}

# mg_stack_pg_stop DATADIR [MODE]: stops the cluster (pg_ctl -m MODE, fast
# by default) and waits for it.
mg_stack_pg_stop() {
    mg_stack_as_pg "$MG_STACK_PGBIN/pg_ctl" -D "$1" -m "${2:-fast}" -w -t 60 stop >/dev/null
}

# ---------------------------------------------------------------------------
# The mock upstream.

MG_STACK_MOCK_PID=
MG_STACK_MOCK_PORT=

# mg_stack_mock_start OUT ERR [MOCK OPTIONS...]: starts $MG_STACK_MOCK on a
# port the kernel picks, standard output to OUT and errors to ERR (the same
# file for both is fine; it is emptied first), and waits for its
# "listening on PORT" line.  Sets MG_STACK_MOCK_PID and MG_STACK_MOCK_PORT.
mg_stack_mock_start() {
    local out=$1 err=$2 i port=
    shift 2
    MG_STACK_MOCK_PID=
    MG_STACK_MOCK_PORT=
    : >"$out"
    : >"$err"
    if [ "$MG_STACK_DETACH" = 1 ]; then
        setsid "$MG_STACK_MOCK" --port 0 "$@" </dev/null >>"$out" 2>>"$err" &
    else
        "$MG_STACK_MOCK" --port 0 "$@" </dev/null >>"$out" 2>>"$err" &
    fi
    MG_STACK_MOCK_PID=$!
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$out" 2>/dev/null | head -n 1)
        if [ -n "$port" ]; then
            # shellcheck disable=SC2034 # for the caller
            MG_STACK_MOCK_PORT=$port
            return 0
        fi
        mg_stack_pid_alive "$MG_STACK_MOCK_PID" || break
        sleep 0.1
    done
    cat "$err"
    kill "$MG_STACK_MOCK_PID" 2>/dev/null || true
    return 1
}

# ---------------------------------------------------------------------------
# Responders.

MG_STACK_PIDS=()

# mg_stack_responders_start SOCKET PIDFILE PROCESSES CONF LOG [WRAPPER...]:
# PROCESSES copies of "$MG_STACK_FCGI -c CONF" (run under WRAPPER, e.g.
# valgrind, when given) under spawn-fcgi on the unix socket SOCKET, owned
# by MG_STACK_SOCK_OWNER when set; spawn-fcgi's output goes to LOG.  The
# threads of each come from CONF.  Sets MG_STACK_PIDS from PIDFILE (one pid
# a line) and checks that each of them runs.
mg_stack_responders_start() {
    local sock=$1 pidfile=$2 procs=$3 conf=$4 log=$5 pid word owner=()
    shift 5
    word=modelgate-fcgi
    [ "$#" -gt 0 ] && word=${1##*/}
    MG_STACK_PIDS=()
    if [ -n "$MG_STACK_SOCK_OWNER" ]; then
        owner=(-U "${MG_STACK_SOCK_OWNER% *}" -G "${MG_STACK_SOCK_OWNER#* }" -M 0660)
    fi
    rm -f "$pidfile"
    if ! "$MG_STACK_SPAWN_FCGI" -s "$sock" "${owner[@]}" -F "$procs" -P "$pidfile" \
        -- "$@" "$MG_STACK_FCGI" -c "$conf" </dev/null >"$log" 2>&1; then
        cat "$log"
        return 1
    fi
    # spawn-fcgi writes one line per child
    while IFS= read -r pid || [ -n "$pid" ]; do
        [[ $pid =~ ^[0-9]+$ ]] && MG_STACK_PIDS+=("$pid")
    done <"$pidfile"
    for pid in "${MG_STACK_PIDS[@]}"; do
        if ! mg_stack_pid_runs "$pid" "$word"; then
            echo "responder $pid (from $pidfile) is not running"
            return 1
        fi
    done
    if [ "${#MG_STACK_PIDS[@]}" -ne "$procs" ]; then
        echo "$pidfile lists ${#MG_STACK_PIDS[@]} pids, not $procs"
        return 1
    fi
}

# ---------------------------------------------------------------------------
# Web servers: lighttpd, apache (httpd 2.4 with mod_proxy_fcgi) or nginx,
# each with a main configuration BASE.conf that includes the shipped
# deploy/<server>/modelgate.conf.  Each runs in the foreground (lighttpd -D,
# apache2 -D FOREGROUND, nginx "daemon off" in its configuration), so its
# pid is known at once.  nginx's prefix is BASE-prefix/ and its error log
# BASE-error.log.

# mg_stack_server_tool SERVER: prints the path of the server's program.
mg_stack_server_tool() {
    case $1 in
        lighttpd) mg_stack_find_tool lighttpd ;;
        apache) mg_stack_find_tool apache2 ;;
        nginx) mg_stack_find_tool nginx ;;
        *)
            printf 'unknown web server %s (lighttpd, apache or nginx)\n' "$1" >&2
            return 1
            ;;
    esac
}

# mg_stack_server_package SERVER: the Debian package that brings it.
mg_stack_server_package() {
    case $1 in
        apache) printf 'apache2\n' ;;
        nginx) printf 'nginx-light\n' ;;
        *) printf '%s\n' "$1" ;;
    esac
}

# mg_stack_web_user: as root, prints "USER GROUP" for the workers of Apache
# and nginx and the owner of the responders' socket (www-data, or nobody
# where there is no www-data); prints nothing for other users.
mg_stack_web_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    if id -u www-data >/dev/null 2>&1 && getent group www-data >/dev/null 2>&1; then
        printf 'www-data www-data\n'
    elif getent group nogroup >/dev/null 2>&1; then
        printf 'nobody nogroup\n'
    else
        printf 'nobody nobody\n'
    fi
}

MG_STACK_SERVER_PID=

# mg_stack_server_start SERVER CONF LOGBASE URL SECONDS [CODE]: checks CONF
# with the server's configuration test (output in LOGBASE-check.log), runs
# the server in the foreground in the background (output in LOGBASE.out)
# and waits up to SECONDS for URL to answer CODE (any answer when CODE is
# empty).  Sets MG_STACK_SERVER_PID as soon as it runs.  Returns 2 when
# the configuration test fails, 1 when the server does not answer.
mg_stack_server_start() {
    local server=$1 conf=$2 logbase=$3 url=$4 limit=$5 want=${6:-} bin base test run
    base=${conf%.conf}
    MG_STACK_SERVER_PID=
    bin=$(mg_stack_server_tool "$server") || return 1
    case $server in
        lighttpd)
            test=("$bin" -tt -f "$conf")
            run=("$bin" -D -f "$conf")
            ;;
        apache)
            test=("$bin" -t -f "$conf")
            run=("$bin" -D FOREGROUND -f "$conf")
            ;;
        nginx)
            test=("$bin" -t -q -p "$base-prefix/" -e "$base-error.log" -c "$conf")
            run=("$bin" -p "$base-prefix/" -e "$base-error.log" -c "$conf")
            ;;
    esac
    if ! "${test[@]}" >"$logbase-check.log" 2>&1; then
        cat "$logbase-check.log"
        return 2
    fi
    : >"$logbase.out"
    mg_stack_bg "$logbase.out" "${run[@]}"
    MG_STACK_SERVER_PID=$MG_STACK_BG_PID
    mg_stack_wait_http "$url" "$limit" "$want" "$MG_STACK_SERVER_PID" && return 0
    if ! mg_stack_pid_alive "$MG_STACK_SERVER_PID"; then
        echo "$server exited:"
        cat "$logbase.out" "$base-error.log" 2>/dev/null
    else
        echo "no ${want:-answer} from $url within $limit s (last status $MG_STACK_HTTP_CODE)"
        tail -n 20 "$base-error.log" 2>/dev/null
    fi
    return 1
}
