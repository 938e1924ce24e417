#!/usr/bin/env bash
# tests/integration/test-hostile.sh -- hostile input at every door of the
# running stack: Postgres, the mock upstream, two modelgate-fcgi under
# spawn-fcgi behind lighttpd with the shipped deploy/lighttpd/modelgate.conf
# (a second lighttpd on the same responders takes header lines up to its
# most, 64 KiB - 1, so that a huge Authorization reaches a responder).
# Run by `make check`.
#
#   - every method (GET POST PUT DELETE PATCH HEAD OPTIONS) on every route:
#     its normal answer or a 405 (with Allow) / 404 error object; HEAD
#     without a body (over a raw socket);
#   - JSON nested 100,000 deep (at the top, in messages, in input, in an
#     unknown member); a 1 MB model; models with CR/LF (escaped and raw),
#     NUL, control characters, a C1 control and broken UTF-8: 400 error
#     objects on model, nothing upstream;
#   - max_tokens / max_completion_tokens negative, zero, huge, past 64
#     bits, fractional, a string, a boolean: 400 naming the member;
#   - paths and query strings: what reaches a responder is a 404 / 400
#     error object; what lighttpd refuses itself (NUL, CR/LF, control
#     bytes and broken UTF-8 after decoding: 400; ..%2F..%2Fetc%2Fpasswd,
#     which its normalisation takes out of /v1/: its own 404, no file) is
#     checked by status; MCP with a broken UTF-8 argument;
#   - keys with the wrong prefix, wrong case, a byte more or less, words
#     after them; 60,000 bytes of Authorization at a responder, 64 KiB at
#     the shipped lighttpd (its own 431); 200 header lines;
#   - a Content-Length shorter and longer than the body, negative, past
#     64 bits, not a number, twice; bodies (plain and chunked) that never
#     end, which lighttpd's max-read-idle (lowered to 4 s here) ends;
#   - 500 clients sending one byte a second for 8 s (headers that never
#     end, bodies and chunked bodies that trickle): a chat still answers
#     within 2 s, every connection is closed by lighttpd within its idle
#     timeout + 3 s once they stop, and lighttpd's and the responders'
#     descriptors are back where they were;
# then: no responder died, every log line is one line with no raw
# control byte, no C1 control and only valid UTF-8; neither the client
# keys nor the provider key is in the log, lighttpd's logs or any row of
# the database (pg_dump); the usage rows hold no control byte; the mock
# never saw a bad model or a client's header.
#
# Environment: as for test-gateway.sh (MG_SRCDIR, MG_BUILDDIR, PGHOST...,
# NODE_PATH, MG_REQUIRE_INTEGRATION, MG_KEEP_TMP).  Output is TAP.

# shellcheck source-path=SCRIPTDIR
set -u
set -o pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=lib.sh disable=SC1091
. "$HERE/lib.sh"
mg_script_start "$HERE/$(basename -- "${BASH_SOURCE[0]}")" node curl lighttpd spawn-fcgi pg_dump

mg_stack_test hostile
hostile() { node "$HERE/hostile.cjs" "$@"; }

show_logs() {
    local f
    for f in "$MG_T"/*.log "$MG_T"/*.err "$MG_T"/*.txt; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 40 "$f" | sed 's/^/# /'
    done
}

PROVIDER_KEY=sk-or-provider-HOSTILE987
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY
IDLE=4          # lighttpd's server.max-read-idle in this test, seconds
SLOW_CLIENTS=500
SLOW_DRIP=8     # seconds the slow clients send a byte a second

mg_fresh_db modelgate_hostile

start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"

CONF=$MG_T/modelgate.conf
LOG=$MG_T/modelgate.log
mg_conf_write "$CONF" LOG_LEVEL=debug LOG_FILE="$LOG" THREADS=8 MAX_BODY_BYTES=4194304 \
    UPSTREAM_TIMEOUT=5 || bail "configuration written" "$CONF"
recon_db "$CONF"
KEY=$KA

# The shipped snippet with lighttpd's idle timeout lowered; a second
# server takes header lines up to 128 KiB.
MG_LIGHTTPD_EXTRA="server.max-read-idle = $IDLE"
if start_responders main "$CONF" 2 >"$MG_T/stack.txt" 2>&1 &&
    start_server main "$STACK_SOCK" >>"$MG_T/stack.txt" 2>&1; then
    BASE=http://127.0.0.1:$SERVER_PORT
    PORT=$SERVER_PORT
    LIGHTTPD_PID=$SERVER_PID
    MAIN_PIDS=("${STACK_PIDS[@]}")
    tap_ok "stack up: lighttpd on $PORT, responders ${MAIN_PIDS[*]}"
else
    bail "the stack starts" "$(cat "$MG_T/stack.txt")"
fi
MG_LIGHTTPD_EXTRA="server.max-read-idle = $IDLE
server.max-request-field-size = 65535"
if start_server big "$STACK_SOCK" >>"$MG_T/stack.txt" 2>&1; then
    BIG=http://127.0.0.1:$SERVER_PORT
    tap_ok "second lighttpd (64 KiB - 1 of header lines) on $SERVER_PORT"
else
    bail "the second lighttpd starts" "$(cat "$MG_T/stack.txt")"
fi

mock_calls() {
    curl -sS --max-time 10 -o "$MG_T/mock-stats.json" "$MOCK_URL/__mock/stats" &&
        json_value "$MG_T/mock-stats.json" 'j.chat + j.embeddings'
}

# responders_alive WHEN: a check that every responder still runs.
responders_alive() {
    local pid dead=()
    for pid in "${MAIN_PIDS[@]}"; do
        pid_runs "$pid" modelgate-fcgi || dead+=("$pid")
    done
    check_eq "every responder still runs $1" "${dead[*]}" ""
}

# body NAME: the body file $MG_T/NAME.req, written from stdin.
body() {
    cat >"$MG_T/$1.req"
    printf '%s' "$MG_T/$1.req"
}

# post PATH FILE [CURL OPTIONS...]: a POST with the key.
post() {
    local path=$1 file=$2
    shift 2
    http POST "$BASE$path" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' --data-binary "@$file" "$@"
}

# expect_err DESCRIPTION STATUS [CODE [PARAM]]: the last answer is an
# OpenAI error object with this status (and code, param), as JSON.
expect_err() {
    local code=${3:-} param=${4:-}
    expect_http "$1" "$2" "jsonHeaders(h) && isErr(j) &&
        ('$code' === '' || j.error.code === '$code') &&
        ('$param' === '' || j.error.param === '$param')"
}

CHAT='{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
EMB='{"model":"openai/text-embedding-3-small","input":"hi"}'
MCP='{"jsonrpc":"2.0","id":1,"method":"ping"}'

# ---------------------------------------------------------------------------
# Every method on every route.

# raw NAME WAIT-MS [half-close]: the request $MG_T/NAME.http (from stdin)
# over a raw socket; the result in $MG_T/NAME.json.
raw() {
    cat >"$MG_T/$1.http"
    hostile raw "$PORT" "$MG_T/$1.http" "$2" "${3:-}" >"$MG_T/$1.json"
}

# route PATH OK-METHOD OK-STATUS AUTH: checks the seven methods on PATH.
# OK-METHOD (GET or POST) gets OK-STATUS; HEAD is GET's; the others 405
# with Allow: OK-METHOD.
methods_on() {
    local path=$1 okm=$2 okst=$3 m args want allow
    for m in GET POST PUT DELETE PATCH HEAD OPTIONS; do
        args=(-H "Authorization: Bearer $KEY")
        case $path in
            /v1/chat/completions) args+=(-H 'Content-Type: application/json' --data-binary "$CHAT") ;;
            /v1/embeddings) args+=(-H 'Content-Type: application/json' --data-binary "$EMB") ;;
            /mcp) args+=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' --data-binary "$MCP") ;;
        esac
        # every method but GET with a body (lighttpd answers a POST
        # without one itself, 411, below)
        [ "$m" = GET ] && args=("${args[@]:0:2}")
        [ "${#args[@]}" = 2 ] && [ "$m" != GET ] && args+=(--data-binary '{}')
        if [ "$m" = HEAD ]; then
            printf 'HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' \
                "$path" "$KEY" | raw head 5000
        else
            http "$m" "$BASE$path" "${args[@]}"
        fi
        if [ "$m" = "$okm" ] || { [ "$m" = HEAD ] && [ "$okm" = GET ]; }; then
            want=$okst
            allow=
        else
            want=405
            allow=$okm
        fi
        if [ "$m" = HEAD ]; then
            expect_json "HEAD $path: $want, no body" "j.responses.length === 1 &&
                j.responses[0].status === $want && j.after_head === 0 &&
                ('$allow' === '' || j.responses[0].headers.allow === '$allow')" "$MG_T/head.json"
        elif [ "$want" = 405 ]; then
            expect_http "$m $path: 405 error object, Allow: $allow" 405 \
                "jsonHeaders(h) && isErr(j, 'method_not_allowed') && h.allow === '$allow'"
        else
            expect_http "$m $path: $want" "$want" "!('error' in (j || {}))"
        fi
    done
}

methods_on /v1/chat/completions POST 200
methods_on /v1/embeddings POST 200
methods_on /v1/models GET 200
methods_on /v1/models/openai%2Fgpt-4o-mini GET 200
methods_on /v1/usage GET 200
methods_on /v1/usage/requests GET 200
methods_on /v1/quota GET 200
methods_on /healthz GET 200
methods_on /metrics GET 200
methods_on /mcp POST 200
for m in GET POST PUT DELETE PATCH OPTIONS; do
    args=()
    [ "$m" = GET ] || args=(--data-binary '{}')
    http "$m" "$BASE/v1/no-such-route" -H "Authorization: Bearer $KEY" "${args[@]}"
    expect_err "$m /v1/no-such-route: 404 error object" 404 not_found
done
# lighttpd's own refusal, before any responder (deploy/errors cannot
# answer it: lighttpd refuses while it reads the headers, before the
# conditions that choose the error documents)
http POST "$BASE/v1/models" -H "Authorization: Bearer $KEY"
check_eq "POST without a Content-Length: lighttpd's 411" "$HTTP_STATUS" 411
responders_alive "after every method on every route"

# ---------------------------------------------------------------------------
# Bodies: nesting, huge and bad models, bad max_tokens.  None reaches the
# upstream.

calls_before=$(mock_calls)

deep() {
    node -e 'const n = 100000, [o, c] = process.argv[1] === "obj" ? ["{\"a\":", "}"] : ["[", "]"];
        process.stdout.write(process.argv[2] + o.repeat(n) + "1" + c.repeat(n) + process.argv[3]);' "$@"
}
post /v1/chat/completions "$(deep arr '' '' | body deep-top)"
expect_err "arrays nested 100,000 deep as the body: 400 invalid_json" 400 invalid_json
post /v1/chat/completions "$(deep arr '{"model":"m","messages":' '}' | body deep-msgs)"
expect_err "messages nested 100,000 deep: 400 invalid_json" 400 invalid_json
post /v1/chat/completions "$(deep obj '{"model":"m","messages":[{"role":"user","content":"x"}],"x":' '}' | body deep-member)"
expect_err "an unknown member of objects nested 100,000 deep: 400 invalid_json" 400 invalid_json
post /v1/embeddings "$(deep arr '{"model":"m","input":' '}' | body deep-input)"
expect_err "embeddings input nested 100,000 deep: 400 invalid_json" 400 invalid_json

post /v1/chat/completions "$(node -e 'process.stdout.write(JSON.stringify({model: "m".repeat(1 << 20),
    messages: [{role: "user", content: "x"}]}))' | body big-model)"
expect_err "a 1 MB model: 400 invalid_value on model" 400 invalid_value model

# Bad models: each sent raw in a chat and an embeddings body.  printf
# writes the bytes; JSON escapes stay escapes.
bad_models=(
    'a\\r\\nX-Injected: yes'        # CR LF escaped
    'a\r\nX-Injected: yes'          # CR LF raw in the string
    'a\\u0000b'                     # NUL
    'a\\u000d\\u000aX-Injected: yes'
    'a\x01b\x7fc'                   # control characters raw
    'a\\u001b[31mred'               # an escape sequence
    'a\x1b[2Jb'
    'a\xffb\xfe'                    # invalid UTF-8
    'a\xc3\x28b'                    # a broken two-byte sequence
    'a\xc0\xafb'                    # an overlong '/'
    'a\xed\xa0\x80b'                # a UTF-16 surrogate in UTF-8
    'a\xc2\x9bb'                    # a C1 control (CSI)
)
i=0
for m in "${bad_models[@]}"; do
    i=$((i + 1))
    # shellcheck disable=SC2059 # the model holds the escapes printf reads
    printf "{\"model\":\"$m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" >"$MG_T/bad-$i.req"
    post /v1/chat/completions "$MG_T/bad-$i.req"
    expect_err "chat, bad model #$i ($m): 400 on model" 400 "" model
    # shellcheck disable=SC2059
    printf "{\"model\":\"$m\",\"input\":\"x\",\"stream\":true}" >"$MG_T/bad-emb-$i.req"
    post /v1/embeddings "$MG_T/bad-emb-$i.req"
    expect_err "embeddings, bad model #$i: 400 on model" 400 "" model
done

for v in -1 0 1.5 1e3 '"100"' true '[]' '{}' 100000001 9223372036854775808 \
    -9223372036854775809 99999999999999999999999999999999 1e400; do
    for name in max_tokens max_completion_tokens; do
        post /v1/chat/completions "$(printf '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"x"}],"%s":%s}' "$name" "$v" | body mt)"
        expect_err "$name $v: 400 on $name" 400 "" "$name"
    done
done
check_eq "no bad body reached the upstream" "$(mock_calls)" "$calls_before"
post /v1/chat/completions "$(printf '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":100000000,"stream":true}' | body mt-ok)"
expect_http "max_tokens 100000000 (the largest), streamed: 200" 200 "t.includes('data: [DONE]')"
responders_alive "after the hostile bodies"

# ---------------------------------------------------------------------------
# Paths.

# What reaches a responder: a 404 error object.
for p in '..%2Fx' 'a%2F..%2F..%2Fb' '%2e%2e%2fx' 'a%20b%22%7d' "$(printf 'x%.0s' {1..4000})"; do
    http GET "$BASE/v1/models/$p" -H "Authorization: Bearer $KEY"
    expect_http "GET /v1/models/${p:0:40}: 404 error object" 404 "jsonHeaders(h) &&
        (isErr(j, 'model_not_found') || isErr(j, 'not_found'))"
done
# What lighttpd refuses itself, before any responder: NUL, control
# characters and broken UTF-8 in the path (400); a path that its
# normalisation takes out of /v1/ (its own 404, never a file outside the
# document root).
for p in '%00' 'a%00b' 'a%0d%0aX-Injected:%20yes' 'a%1b%5b2J' 'a%ff%fe' 'a%c0%af'; do
    http GET "$BASE/v1/models/$p" -H "Authorization: Bearer $KEY"
    check_eq "GET /v1/models/$p: lighttpd's 400" "$HTTP_STATUS" 400
    check "... no injected header" test "$(header x-injected)" = ""
done
for p in '..%2F..%2Fetc%2Fpasswd' '..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd'; do
    http GET "$BASE/v1/models/$p" -H "Authorization: Bearer $KEY"
    check "GET /v1/models/$p: lighttpd's 404, no file ($HTTP_STATUS)" \
        eval "[ '$HTTP_STATUS' = 404 ] && ! grep -q root: '$MG_T/last.body'"
done
http GET "$BASE/v1/../../etc/passwd" --path-as-is -H "Authorization: Bearer $KEY"
check "GET /v1/../../etc/passwd: no file ($HTTP_STATUS)" eval "! grep -q root: '$MG_T/last.body'"

# Query strings of the usage routes (and MCP's tools, the same layer):
# lighttpd refuses control characters and broken UTF-8 itself; what
# reaches a responder is refused with an error object.
for q in 'model=%ff' 'project=a%c0%af' 'model=a%0d%0ab' 'key=%1b%5b2J'; do
    http GET "$BASE/v1/usage?$q" -H "Authorization: Bearer $KEY"
    check_eq "GET /v1/usage?$q: lighttpd's 400" "$HTTP_STATUS" 400
done
for q in 'model=a%e2%80%a8' 'model=a%c2%9b' "model=$(printf 'x%.0s' {1..3000})" \
    "model=$(printf 'x%.0s' {1..5000})" 'limit=1' 'model=a&model=b'; do
    http GET "$BASE/v1/usage?$q" -H "Authorization: Bearer $KEY"
    expect_err "GET /v1/usage?${q:0:40}: 400 error object" 400
done
http GET "$BASE/v1/usage/requests?limit=99999999999999999999999" -H "Authorization: Bearer $KEY"
expect_err "GET /v1/usage/requests?limit=10^23: 400" 400
http GET "$BASE/v1/usage/requests?limit=-1" -H "Authorization: Bearer $KEY"
expect_err "GET /v1/usage/requests?limit=-1: 400" 400
http POST "$BASE/mcp" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' \
    --data-binary "$(printf '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"usage_summary","arguments":{"model":"a\xffb\\r\\n"}}}')"
expect_http "MCP tools/call with a broken UTF-8 model: an answer, not a 5xx ($HTTP_STATUS)" "$HTTP_STATUS" \
    "s < 500 && j !== undefined && (j.error !== undefined || j.result !== undefined)"
responders_alive "after the hostile paths"

# ---------------------------------------------------------------------------
# Keys and headers.

printf '%s' "$CHAT" >"$MG_T/chat.req"
key_case() {
    local desc=$1 value=$2
    http POST "$BASE/v1/chat/completions" -H "Authorization: $value" \
        -H 'Content-Type: application/json' --data-binary "@$MG_T/chat.req"
    expect_err "$desc: 401 invalid_api_key" 401 invalid_api_key
}
key_case "a key with the wrong prefix" "Bearer sk-${KEY#mg-}"
key_case "a key in upper case" "Bearer ${KEY^^}"
key_case "a key with its prefix in upper case" "Bearer MG-${KEY#mg-}"
key_case "a key with a byte more" "Bearer ${KEY}x"
key_case "a key with a byte less" "Bearer ${KEY%?}"
key_case "a key followed by a word" "Bearer $KEY junk"
key_case "a key followed by a second key" "Bearer $KEY $KEY"
key_case "a key followed by a comma" "Bearer $KEY,"
key_case "a key with a NUL escape after it" "Bearer $KEY%00"
key_case "Basic instead of Bearer" "Basic $KEY"
key_case "Bearer with no key" "Bearer"
http POST "$BASE/v1/chat/completions" -H "Authorization: bearer   $KEY  " \
    -H 'Content-Type: application/json' --data-binary "@$MG_T/chat.req"
expect_http "lower-case bearer and spaces around the key: 200 (RFC 7235)" 200

# lighttpd takes 64 KiB - 1 of header lines at most (all of them):
# 60,000 bytes of Authorization reach a responder through the second
# server; 64 KiB are refused by the shipped one itself (431).
LONG=$(head -c 49152 /dev/urandom | base64 -w0 | tr '+/' '-_' | head -c 60000)
printf 'Authorization: Bearer mg-%s\n' "$LONG" >"$MG_T/long-auth.hdr"
http POST "$BIG/v1/chat/completions" -H "@$MG_T/long-auth.hdr" \
    -H 'Content-Type: application/json' --data-binary "@$MG_T/chat.req"
expect_err "a 60,000-byte Authorization that reaches a responder: 401" 401 invalid_api_key
printf 'Authorization: Bearer %s%s\n' "$KEY" "$LONG" >"$MG_T/long-auth.hdr"
http POST "$BIG/v1/chat/completions" -H "@$MG_T/long-auth.hdr" \
    -H 'Content-Type: application/json' --data-binary "@$MG_T/chat.req"
expect_err "the key and 60,000 bytes more: 401" 401 invalid_api_key
printf 'Authorization: Bearer %s %s\n' "$KEY" "$LONG" >"$MG_T/long-auth.hdr"
http POST "$BIG/v1/chat/completions" -H "@$MG_T/long-auth.hdr" \
    -H 'Content-Type: application/json' --data-binary "@$MG_T/chat.req"
expect_err "the key, a space and 60,000 bytes more: 401" 401 invalid_api_key
LONG=$(head -c 65536 /dev/zero | tr '\0' a)
printf 'Authorization: Bearer mg-%s\n' "$LONG" >"$MG_T/long-auth.hdr"
http POST "$BASE/v1/chat/completions" -H "@$MG_T/long-auth.hdr" \
    -H 'Content-Type: application/json' --data-binary "@$MG_T/chat.req"
check_eq "a 64 KiB Authorization through the shipped lighttpd: its own 431" "$HTTP_STATUS" 431

hdrs=()
for ((i = 0; i < 200; i++)); do hdrs+=(-H "X-Hostile-$i: value $i"); done
http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data-binary "@$MG_T/chat.req" "${hdrs[@]}"
expect_http "200 header lines: the normal answer" 200 "j.object === 'chat.completion'"
curl -sS --max-time 10 -o "$MG_T/mock-last.json" "$MOCK_URL/__mock/last"
expect_json "the upstream got none of the client's header lines" \
    "!Object.keys(j.headers).some((k) => k.startsWith('x-hostile'))" "$MG_T/mock-last.json"
hdrs=()
for ((i = 0; i < 200; i++)); do hdrs+=(-H "X-Hostile-$i: $(printf 'v%.0s' {1..100})"); done
http POST "$BIG/v1/chat/completions" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data-binary "@$MG_T/chat.req" "${hdrs[@]}"
expect_http "200 header lines of 100 bytes: the normal answer" 200 "j.object === 'chat.completion'"
responders_alive "after the hostile keys and headers"

# ---------------------------------------------------------------------------
# Content-Length and bodies that lie, over a raw socket.

req_head() {   # req_head CONTENT-LENGTH-LINE
    printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n%s\r\n' "$KEY" "$1"
}

{ req_head "Content-Length: $((${#CHAT} - 10))"$'\r\n'; printf '%s' "$CHAT"; } | raw cl-short 5000
expect_json "Content-Length 10 bytes short: 400 invalid_json first" "
    j.responses.length >= 1 && j.responses[0].status === 400 &&
    /json/.test(j.responses[0].headers['content-type']) &&
    JSON.parse(j.responses[0].body).error.code === 'invalid_json'" "$MG_T/cl-short.json"

{ req_head "Content-Length: $((${#CHAT} + 100))"$'\r\n'; printf '%s' "$CHAT"; } | raw cl-long-eof 10000 half-close
expect_json "Content-Length 100 bytes long, then the client's end: closed, no answer from a responder" "
    j.closed && j.responses.every((r) => r.status < 500)" "$MG_T/cl-long-eof.json"

{ req_head "Content-Length: $((${#CHAT} + 100))"$'\r\n'; printf '%s' "$CHAT"; } | raw cl-long $(((IDLE + 6) * 1000))
expect_json "a body that never ends: closed by lighttpd within max-read-idle + 3 s" "
    j.closed && j.ms < ($IDLE + 3) * 1000" "$MG_T/cl-long.json"
tap_diag "closed after $(json_value "$MG_T/cl-long.json" 'j.ms') ms; answers: $(json_value "$MG_T/cl-long.json" 'j.responses.map((r) => r.status).join(",") || "none"')"

{ printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\n' "$KEY"; } |
    raw chunked-long $(((IDLE + 6) * 1000))
expect_json "a chunked body that never ends: closed by lighttpd within max-read-idle + 3 s" "
    j.closed && j.ms < ($IDLE + 3) * 1000" "$MG_T/chunked-long.json"

for cl in -1 99999999999999999999 '1, 2' 'abc' '0x10'; do
    { req_head "Content-Length: $cl"$'\r\n'; printf '%s' "$CHAT"; } | raw cl-bad 5000
    expect_json "Content-Length: $cl: refused before any responder (4xx), connection closed" "
        j.responses.length === 1 && j.responses[0].status >= 400 && j.responses[0].status < 500" \
        "$MG_T/cl-bad.json"
done
{ req_head "Content-Length: 5"$'\r\nContent-Length: 7\r\n'; printf '%s' "$CHAT"; } | raw cl-twice 5000
expect_json "two different Content-Length lines: 400" \
    "j.responses.length >= 1 && j.responses[0].status === 400" "$MG_T/cl-twice.json"
responders_alive "after the lying bodies"

# ---------------------------------------------------------------------------
# 500 slow clients.

# fds PID: the number of open descriptors of a process.
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
sleep 1
lt_fds0=$(fds "$LIGHTTPD_PID")
resp_fds0=$(for p in "${MAIN_PIDS[@]}"; do fds "$p"; done | awk '{ n += $1 } END { print n }')
hostile slow "$PORT" "$SLOW_CLIENTS" "$SLOW_DRIP" $((IDLE + 10)) "$KEY" >"$MG_T/slow.json" &
slow_pid=$!
sleep 3
lt_fds_busy=$(fds "$LIGHTTPD_PID")
worst=0
for ((i = 0; i < 5; i++)); do
    post /v1/chat/completions "$MG_T/chat.req"
    [ "$HTTP_STATUS" = 200 ] || break
    worst=$(node -e 'console.log(Math.max(+process.argv[1], +process.argv[2]))' "$worst" "$HTTP_TIME")
    sleep 0.5
done
check_eq "while $SLOW_CLIENTS clients trickle, chat answers 200 (5 times)" "$HTTP_STATUS" 200
check "... each within 2 s (slowest ${worst}s)" node -e 'process.exit(+process.argv[1] < 2 ? 0 : 1)' "$worst"
check "lighttpd holds the slow clients' connections ($lt_fds_busy descriptors, $lt_fds0 before)" \
    test "$lt_fds_busy" -ge $((lt_fds0 + SLOW_CLIENTS * 9 / 10))
wait "$slow_pid"
expect_json "every slow client connected and was closed by lighttpd once idle" "
    j.connected === $SLOW_CLIENTS && j.refused === 0 && j.closed === $SLOW_CLIENTS && j.open === 0" \
    "$MG_T/slow.json"
expect_json "... within max-read-idle ($IDLE s) + 3 s of their last byte" \
    "j.last_close_ms !== null && j.last_close_ms < ($IDLE + 3) * 1000" "$MG_T/slow.json"
tap_diag "slow clients: $(cat "$MG_T/slow.json")"
sleep 1
lt_fds1=$(fds "$LIGHTTPD_PID")
resp_fds1=$(for p in "${MAIN_PIDS[@]}"; do fds "$p"; done | awk '{ n += $1 } END { print n }')
check "lighttpd's descriptors back to where they were ($lt_fds1, $lt_fds0 before)" \
    test "$lt_fds1" -le $((lt_fds0 + 2))
check_eq "the responders' descriptors unchanged" "$resp_fds1" "$resp_fds0"
post /v1/chat/completions "$MG_T/chat.req"
expect_http "a chat after the slow clients: 200" 200 "j.object === 'chat.completion'"
responders_alive "after the slow clients"

# ---------------------------------------------------------------------------
# What was left behind: logs, rows, what the upstream saw.

settled || tap_diag "usage rows still pending"
check "every log line is one line: starts with its time" \
    eval "! grep -a -v -n -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z (error|warn|info|debug) \\[[0-9]+\\] ' '$LOG'"
check "no raw control byte in the log (besides each line's end)" \
    eval "! LC_ALL=C grep -a -n -P '[\\x00-\\x08\\x0b-\\x1f\\x7f]' '$LOG'"
check "the log is valid UTF-8 throughout" iconv -f UTF-8 -t UTF-8 -o /dev/null "$LOG"
check "no C1 control in the log" eval "! grep -a -n -P '[\\x{80}-\\x{9f}]' '$LOG'"
check "the log holds no client key and not the provider key" \
    eval "! grep -a -n -F -e '$KA' -e '$KB' -e '$PROVIDER_KEY' -e '${KA#mg-}' '$LOG'"
check "lighttpd's logs hold no key" \
    eval "! grep -a -n -F -e '$KA' -e '$KB' -e '$PROVIDER_KEY' '$MG_T'/*lighttpd*.log"
pg_dump --data-only "$MG_DB" >"$MG_T/dump.sql" 2>"$MG_T/pg_dump.err"
check "pg_dump of the database" test -s "$MG_T/dump.sql"
check "no client key and no provider key in any row" \
    eval "! grep -a -n -F -e '$KA' -e '$KB' -e '$PROVIDER_KEY' '$MG_T/dump.sql'"
check_eq "no usage row holds a control byte or a bad model" \
    "$(sql "SELECT count(*) FROM usage_events u WHERE u::text ~ '[\\x01-\\x1f\\x7f]' OR u.model LIKE '%Injected%'")" 0
check "some usage rows were written" test "$(usage_count)" -gt 10
curl -sS --max-time 10 -o "$MG_T/mock-last.json" "$MOCK_URL/__mock/last"
expect_json "the upstream's last request: the provider key, no client key, no injected header" "
    j.headers.authorization === 'Bearer $PROVIDER_KEY' && !JSON.stringify(j).includes('$KA') &&
    !Object.keys(j.headers).some((k) => /inject|hostile/i.test(k))" "$MG_T/mock-last.json"
responders_alive "at the end"

tap_done
