# shellcheck shell=bash
# tests/integration/lib.sh -- helpers for the integration tests, sourced by
# test-gateway.sh.
#
# Reporting is TAP: every check prints "ok N - what" or "not ok N - what"
# followed by "#" lines that show what was seen.  tap_done prints the plan
# and returns 1 when anything failed.
#
# State lives in MG_T (the test's temporary directory, set by the caller
# before mg_lib_init).  HTTP answers go to $MG_T/last.{status,headers,body}
# and are checked with small JavaScript expressions run by node (check.js,
# written by mg_lib_init): node is always there, jq is not.

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
# Processes and ports.

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    node -e '
        const s = require("net").createServer();
        s.listen(0, "127.0.0.1", () => {
            process.stdout.write(String(s.address().port) + "\n");
            s.close();
        });'
}

# pid_alive PID: the process exists and is not a zombie.
pid_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $stat != *") Z "* ]]
}

# pid_runs PID WORD: PID is alive and its command line contains WORD (so a
# recycled pid is never signalled).
pid_runs() {
    local cmd
    pid_alive "$1" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$2"* ]]
}

# wait_gone SECONDS PID...: true once none of the pids is alive.
wait_gone() {
    local limit=$1 i pid alive
    shift
    for ((i = 0; i <= limit * 10; i++)); do
        alive=0
        for pid in "$@"; do
            if pid_alive "$pid"; then
                alive=1
                break
            fi
        done
        [ "$alive" -eq 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# stop_pids PID...: SIGTERM, up to 10 s, then SIGKILL for what is left.
stop_pids() {
    local pid
    [ "$#" -gt 0 ] || return 0
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null
    done
    if ! wait_gone 10 "$@"; then
        for pid in "$@"; do
            if pid_alive "$pid"; then
                printf '# pid %s ignored SIGTERM for 10 s; sending SIGKILL\n' "$pid"
                kill -KILL "$pid" 2>/dev/null
            fi
        done
        wait_gone 5 "$@"
    fi
    return 0
}

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
# not JSON) and the helpers of check.js.
expect_http() {
    local desc=$1 want=$2 expr=${3:-true} out
    if out=$(node "$MG_T/check.js" http "$expr" "$want" "$MG_T/last.status" \
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
    if out=$(node "$MG_T/check.js" json "$expr" "$@" 2>&1); then
        tap_ok "$desc"
    else
        tap_not_ok "$desc" "$out"
    fi
}

# json_value FILE JS-EXPRESSION: prints the value of the expression (j is
# the parsed file, t its text).
json_value() {
    node "$MG_T/check.js" value "$2" "$1"
}

# ---------------------------------------------------------------------------
# Postgres (the PG* environment variables say where; MG_DB which database).

# sql QUERY [PSQL OPTIONS...]: runs QUERY, prints unaligned rows.  The
# query comes on standard input so psql variables (-v name=value, used as
# :'name') are substituted: values never get pasted into SQL text.
sql() {
    local q=$1
    shift
    psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$MG_DB" "$@" <<<"$q"
}

usage_count() {
    sql 'SELECT count(*) FROM usage_events'
}

# usage_json REQUEST-ID FILE [COST-TEXT]: writes a JSON summary of the usage
# rows of one request: {n, row, project, key_prefix}; row has the usage
# columns plus cost_text (the numeric as text) and cost_eq (cost equals
# COST-TEXT as numeric, null without it).
usage_json() {
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
# Strings for configuration files.

# conninfo_quote VALUE: VALUE as a libpq conninfo value ('...' with \ and '
# escaped).
conninfo_quote() {
    local v=$1
    v=${v//\\/\\\\}
    v=${v//\'/\\\'}
    printf "'%s'" "$v"
}

# libconfig_quote VALUE: VALUE as a libconfig (and lighttpd) string.
libconfig_quote() {
    local v=$1
    v=${v//\\/\\\\}
    v=${v//\"/\\\"}
    printf '"%s"' "$v"
}

# ---------------------------------------------------------------------------
# check.js: the JSON and HTTP checker behind expect_http / expect_json.

mg_lib_init() {
    cat >"$MG_T/check.js" <<'EOF'
'use strict';
// node check.js http EXPR WANT-STATUS STATUS-FILE HEADERS-FILE BODY-FILE
// node check.js json EXPR FILE...
// node check.js value EXPR FILE
const fs = require('fs');

const [mode, expr, ...args] = process.argv.slice(2);

function readText(p) {
    try { return fs.readFileSync(p, 'utf8'); } catch (e) { return ''; }
}
function parse(text) {
    try { return JSON.parse(text); } catch (e) { return undefined; }
}
// Headers of the last response in a curl -D file, lower-case names.
function parseHeaders(text) {
    let h = {};
    for (const raw of text.split('\n')) {
        const line = raw.replace(/\r$/, '');
        if (/^HTTP\//.test(line)) { h = {}; continue; }
        const i = line.indexOf(':');
        if (i <= 0) continue;
        const k = line.slice(0, i).trim().toLowerCase();
        const v = line.slice(i + 1).trim();
        h[k] = k in h ? h[k] + ', ' + v : v;
    }
    return h;
}

// The OpenAI error object: all four keys, with the right types.
function isErr(j, code, param) {
    if (!j || typeof j !== 'object' || !j.error || typeof j.error !== 'object') return false;
    const e = j.error;
    for (const k of ['message', 'type', 'param', 'code'])
        if (!(k in e)) return false;
    if (typeof e.message !== 'string' || e.message.length === 0) return false;
    if (typeof e.type !== 'string' || e.type.length === 0) return false;
    if (e.param !== null && typeof e.param !== 'string') return false;
    if (e.code !== null && typeof e.code !== 'string') return false;
    if (code !== undefined && e.code !== code) return false;
    if (param !== undefined && e.param !== param) return false;
    return true;
}
// A JSON content type and an x-request-id, as on every gateway answer.
function jsonHeaders(h) {
    return /^application\/json\b/.test(h['content-type'] || '') &&
        /^req_[0-9a-f]{8,}$/.test(h['x-request-id'] || '');
}
// Little-endian float32 values of a base64 string.
function f32(b64) {
    if (typeof b64 !== 'string') return null;
    const b = Buffer.from(b64, 'base64');
    if (b.length % 4 !== 0) return null;
    const out = [];
    for (let i = 0; i < b.length; i += 4) out.push(b.readFloatLE(i));
    return out;
}
// Float arrays equal once both are rounded to float32.
function sameF32(a, b) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
        a.every((x, i) => typeof x === 'number' && Math.fround(x) === Math.fround(b[i]));
}
function deepEq(a, b) {
    if (a === b) return true;
    if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
    if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
    return ka.every((k) => deepEq(a[k], b[k]));
}

function run(names, values) {
    const fn = new Function(...names, 'isErr', 'jsonHeaders', 'f32', 'sameF32', 'deepEq',
        '"use strict"; return (' + expr + ');');
    return fn(...values, isErr, jsonHeaders, f32, sameF32, deepEq);
}
function clip(s, n) {
    s = String(s);
    return s.length > n ? s.slice(0, n) + '... (' + s.length + ' bytes)' : s;
}

let ok = false, result, error, diag = [];
try {
    if (mode === 'http') {
        const [want, statusFile, headersFile, bodyFile] = args;
        const s = Number(readText(statusFile).trim());
        const h = parseHeaders(readText(headersFile));
        const t = readText(bodyFile);
        const j = parse(t);
        diag.push('status: ' + s + ' (want ' + want + ')');
        diag.push('content-type: ' + (h['content-type'] || '-') +
            ', x-request-id: ' + (h['x-request-id'] || '-'));
        diag.push('body: ' + clip(t, 600));
        if (s === Number(want)) {
            result = run(['s', 'h', 't', 'j'], [s, h, t, j]);
            ok = result === true;
        }
    } else if (mode === 'json') {
        const texts = args.map(readText);
        const f = texts.map(parse);
        texts.forEach((t, i) => diag.push('f[' + i + ']: ' + clip(t, 600)));
        result = run(['f', 'j'], [f, f[0]]);
        ok = result === true;
    } else if (mode === 'value') {
        const t = readText(args[0]);
        const v = run(['j', 't'], [parse(t), t]);
        process.stdout.write((typeof v === 'string' ? v : JSON.stringify(v)) + '\n');
        process.exit(0);
    } else {
        throw new Error('unknown mode ' + mode);
    }
} catch (e) {
    error = e;
}
if (ok) process.exit(0);
console.log('check: ' + expr.replace(/\s+/g, ' ').trim());
if (error) console.log('error: ' + error.message);
else if (result !== undefined) console.log('result: ' + JSON.stringify(result));
for (const line of diag) console.log(line);
process.exit(1);
EOF
}
