#!/usr/bin/env bash
# tests/integration/test-gateway.sh -- the whole gateway, end to end: a
# throwaway Postgres, the mock upstream, modelgate-fcgi under spawn-fcgi
# behind a web server with the shipped configuration of deploy/, driven
# with curl and with the official openai npm client.  Run by `make check`
# as it is (lighttpd) and through test-gateway-apache.sh and
# test-gateway-nginx.sh.  Every check is the same for the three servers:
# what a client sees must not depend on the web server in front.
#
# Environment:
#   MG_SERVER                lighttpd (default), apache or nginx: the web
#                            server, with deploy/<server>/modelgate.conf
#   MG_SRCDIR, MG_BUILDDIR   source and build trees (default: ../.. of this
#                            script, as for an in-tree build)
#   PGHOST, PGPORT, ...      a Postgres to use; without PGHOST the script
#                            runs itself again under pg_virtualenv, which
#                            makes a throwaway cluster.  A fresh database is
#                            created in it and dropped at the end.
#   MG_REQUIRE_INTEGRATION=1 a missing tool is an error (exit 99), not a
#                            skip (exit 77); tests/run sets it
#   NODE_PATH                where `openai` is installed (default
#                            tests/integration/node_modules)
#   MG_KEEP_TMP=1            keep the temporary directory (configs, logs)
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

# ---------------------------------------------------------------------------
# Prerequisites.

missing=()
case $MG_SERVER in
    lighttpd | apache | nginx) ;;
    *)
        printf 'Bail out! MG_SERVER must be lighttpd, apache or nginx, not %s\n' "$MG_SERVER"
        exit 99
        ;;
esac
mg_server_tool "$MG_SERVER" >/dev/null ||
    missing+=("$MG_SERVER (Debian package $(mg_server_package "$MG_SERVER"))")
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

if [ -z "${NODE_PATH:-}" ] && [ -d "$MG_SRCDIR/tests/integration/node_modules" ]; then
    NODE_PATH=$MG_SRCDIR/tests/integration/node_modules
fi
export NODE_PATH=${NODE_PATH:-}

# ---------------------------------------------------------------------------
# Temporary directory, and cleanup of everything started, whatever happens.

mg_lib_init it

MG_DB=
DB_CREATED=0

show_logs() {
    local f
    for f in "$MG_T"/*.log "$MG_T"/*.out "$MG_T"/*.err; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 60 "$f" | sed 's/^/# /'
    done
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    set +e
    stop_stack
    # background requests still running (after an interruption)
    for pid in $(jobs -p); do
        kill -TERM "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    mg_finish "$rc"
}
mg_traps cleanup

# ---------------------------------------------------------------------------
# Fixed values.

PROVIDER_KEY=sk-or-provider-SECRET123
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY
CHAT_MODEL=openai/gpt-4o-mini
EMB_MODEL=openai/text-embedding-3-small
MAX_BODY=65536
EXPECTED_ROWS=0   # authenticated chat/embeddings requests sent so far

# Random key-shaped strings (mg- + 32 url-safe base64 characters).
random_key() {
    printf 'mg-%s\n' "$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')"
}

# ---------------------------------------------------------------------------
# Setup: database, mock upstream, configuration, keys, two stacks.

mg_fresh_db modelgate_it

start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"
tap_ok "mock upstream listens on $MOCK_PORT"

# GET /metrics answers 127.0.0.1 alone, or the token from anywhere.
METRICS_TOKEN=metrics-token-$RANDOM$RANDOM
printf '%s\n' "$METRICS_TOKEN" >"$MG_T/metrics.token"

# write_conf FILE UPSTREAM-BASE-URL LOG-FILE
write_conf() {
    mg_conf_write "$1" LOG_LEVEL=debug LOG_FILE="$3" BASE_URL="$2" UPSTREAM_TIMEOUT=2 \
        MAX_BODY_BYTES="$MAX_BODY" METRICS_ALLOW=127.0.0.1 \
        METRICS_TOKEN_FILE="$MG_T/metrics.token"
}

CONF=$MG_T/modelgate.conf
LOG=$MG_T/modelgate.log
write_conf "$CONF" "$MOCK_URL/api/v1" "$LOG"

# A second configuration whose upstream is a port nothing listens on:
# port 9 (discard), below 1024, so that no program of another test run at
# the same time (mocks and servers take ports the kernel hands out, from
# 32768 up) can be listening there by the time it is called.
CLOSED_PORT=9
CONF2=$MG_T/modelgate-unreachable.conf
LOG2=$MG_T/modelgate-unreachable.log
write_conf "$CONF2" "http://127.0.0.1:$CLOSED_PORT/api/v1" "$LOG2"

cli() {
    "$CLI" -c "$CONF" --sql-dir "$MG_SRCDIR/sql" "$@"
}

check "modelgate-fcgi -t accepts the configuration" "$FCGI" -t -c "$CONF"

out=$(cli db migrate 2>&1)
if [[ $out =~ ^migrations:\ ([0-9]+)\ applied,\ schema\ version\ ([0-9]+)$ ]] &&
    [ "${BASH_REMATCH[1]}" -ge 1 ]; then
    tap_ok "db migrate applies the migrations ($out)"
    schema_version=${BASH_REMATCH[2]}
else
    bail "db migrate applies the migrations" "$out"
fi
out=$(cli db migrate 2>&1)
check_eq "db migrate again applies nothing" "$out" "migrations: 0 applied, schema version $schema_version"

out=$(cli project create itest 2>&1)
check_eq "project create" "$out" "created project itest"
out=$(cli project create itest 2>&1)
rc=$?
check_eq "project create of an existing name fails" "$rc: $out" "1: modelgate: project 'itest' already exists"
out=$(cli key create no-such-project 2>&1)
check_eq "key create for an unknown project exits 1" "$?" 1

KEY=$(cli key create itest --name main 2>"$MG_T/key.err")
if [[ $KEY =~ ^mg-[A-Za-z0-9_-]{32}$ ]]; then
    tap_ok "key create prints a key alone on stdout"
else
    bail "key create prints a key alone on stdout" "stdout: $KEY
stderr: $(cat "$MG_T/key.err")"
fi
KEY_PREFIX=${KEY:0:11}
KEY2=$(cli key create itest --name to-revoke 2>/dev/null)
KEY2_PREFIX=${KEY2:0:11}
cli key list itest --json >"$MG_T/keys.json" 2>&1
expect_json "key list --json shows prefixes, never keys" "
    Array.isArray(j) && j.length === 2 &&
    j.every((k) => typeof k.prefix === 'string' && k.prefix.length === 11 &&
                   'name' in k && 'created_at' in k && k.revoked_at === null) &&
    j.some((k) => k.prefix === '$KEY_PREFIX' && k.name === 'main') &&
    !JSON.stringify(j).includes('$KEY')" "$MG_T/keys.json"

STACK_PORT=

# start_stack NAME CONF PROCESSES: responders under spawn-fcgi on a unix
# socket, and $MG_SERVER in front of them with the shipped configuration;
# sets STACK_PORT and STACK_PIDS.  Prints what went wrong on failure.
start_stack() {
    STACK_PORT=
    start_responders "$1" "$2" "$3" || return 1
    start_server "$1" "$STACK_SOCK" || return 1
    STACK_PORT=$SERVER_PORT
}

if start_stack main "$CONF" 2 >"$MG_T/stack-main.txt" 2>&1; then
    PORT=$STACK_PORT
    MAIN_PIDS=("${STACK_PIDS[@]}")
    tap_ok "main stack up: $MG_SERVER on $PORT, responders ${MAIN_PIDS[*]}"
else
    bail "main stack starts" "$(cat "$MG_T/stack-main.txt")"
fi
if start_stack unreachable "$CONF2" 1 >"$MG_T/stack-unreachable.txt" 2>&1; then
    PORT2=$STACK_PORT
    tap_ok "second stack up (upstream on closed port $CLOSED_PORT): $MG_SERVER on $PORT2"
else
    bail "second stack starts" "$(cat "$MG_T/stack-unreachable.txt")"
fi
BASE=http://127.0.0.1:$PORT
BASE2=http://127.0.0.1:$PORT2

# ---------------------------------------------------------------------------
# Request helpers.

# post URL BODY-FILE [CURL OPTIONS...]: POST a JSON body with the main key.
post() {
    local url=$1 file=$2
    shift 2
    http POST "$url" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' --data-binary "@$file" "$@"
}

# body NAME JSON: writes a request body to $MG_T/NAME.req, prints the path.
body() {
    printf '%s' "$2" >"$MG_T/$1.req"
    printf '%s' "$MG_T/$1.req"
}

# chat_body MODEL TEXT: a minimal chat request.
chat_body() {
    printf '{"model":"%s","messages":[{"role":"user","content":"%s"}]}' "$1" "$2"
}

# expect_usage DESCRIPTION REQUEST-ID STATUS ENDPOINT [MODEL]: exactly one
# usage row for the request, with this status and endpoint, an error_type
# exactly when the status is not 200, and the model when given.
expect_usage() {
    local desc=$1 rid=$2 status=$3 endpoint=$4 model=${5:-}
    usage_json "$rid" "$MG_T/usage.json"
    expect_json "$desc" "
        j.n === 1 && j.row.status === $status && j.row.endpoint === '$endpoint' &&
        j.row.stream === false && j.project === 'itest' &&
        ($status === 200 ? j.row.error_type === null
                         : typeof j.row.error_type === 'string' && j.row.error_type.length > 0) &&
        ('$model' === '' || j.row.model === '$model') &&
        Number.isInteger(j.row.latency_ms) && j.row.latency_ms >= 0" "$MG_T/usage.json"
}

mock_get() {
    curl -sS --max-time 10 -o "$MG_T/mock-$1.json" "$MOCK_URL/__mock/$1"
}

# mock_calls: chat + embeddings requests the mock has received.
mock_calls() {
    mock_get stats && json_value "$MG_T/mock-stats.json" 'j.chat + j.embeddings'
}

# ---------------------------------------------------------------------------
# Health.

http GET "$BASE/healthz"
expect_http "GET /healthz: 200 {status: ok, database: ok}" 200 \
    "jsonHeaders(h) && j.status === 'ok' && j.database === 'ok'"

# The MCP server, routed by the shipped configuration: a key in
# Authorization (passed on by the web server), a JSON-RPC answer.
http POST "$BASE/mcp" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' \
    --data '{"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}}'
expect_http "POST /mcp initialize: 200, the version asked, modelgate's serverInfo" 200 \
    "jsonHeaders(h) && j.id === 7 && j.result.protocolVersion === '2025-06-18' &&
     j.result.serverInfo.name === 'modelgate' && typeof j.result.serverInfo.version === 'string'"
http POST "$BASE/mcp" -H 'Content-Type: application/json' \
    --data '{"jsonrpc": "2.0", "id": 8, "method": "ping"}'
expect_http "POST /mcp without a key: 401" 401

# ---------------------------------------------------------------------------
# Chat completion through the web server.

# Unknown fields (foo, provider, metadata) must reach the upstream as sent.
CHAT_REQ=$(body chat "$(cat <<EOF
{"model": "$CHAT_MODEL",
 "messages": [{"role": "system", "content": "be brief"},
              {"role": "user", "content": "hello gateway"}],
 "temperature": 0.25, "max_tokens": 50,
 "foo": {"bar": 1, "list": [1, "two", null]},
 "provider": {"order": ["Mock"], "allow_fallbacks": false},
 "metadata": {"trace": "it-1"}}
EOF
)")
post "$BASE/v1/chat/completions" "$CHAT_REQ" \
    -H 'X-Stainless-Lang: js' -H 'X-Stainless-Retry-Count: 0' -H 'OpenAI-Organization: org-x'
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "chat: 200 with the upstream's completion as JSON, x-request-id set" 200 "
    jsonHeaders(h) && j.object === 'chat.completion' && /^gen-/.test(j.id) &&
    j.model === '$CHAT_MODEL' && j.choices.length === 1 &&
    j.choices[0].message.role === 'assistant' &&
    j.choices[0].message.content === 'mock reply: hello gateway' &&
    j.choices[0].finish_reason === 'stop' &&
    Number.isInteger(j.usage.prompt_tokens) && j.usage.prompt_tokens > 0 &&
    j.usage.completion_tokens === 4 &&
    j.usage.total_tokens === j.usage.prompt_tokens + j.usage.completion_tokens &&
    typeof j.usage.cost === 'number'"
save_last chat
CHAT_RID=$(header x-request-id)
CHAT_COST=$(json_value "$MG_T/chat.json" '(t.match(/"cost":([-+0-9.eE]+)/) || [])[1] || ""')

mock_get last
expect_json "upstream got the provider key, not the client key nor x-stainless/OpenAI headers" "
    j.method === 'POST' && j.path === '/api/v1/chat/completions' &&
    j.headers.authorization === 'Bearer $PROVIDER_KEY' &&
    !JSON.stringify(j).includes('$KEY') &&
    !Object.keys(j.headers).some((k) => k.startsWith('x-stainless') || k === 'openai-organization')" \
    "$MG_T/mock-last.json"
expect_json "upstream got the request body unchanged, unknown fields included" \
    "deepEq(JSON.parse(j.body), f[1])" "$MG_T/mock-last.json" "$CHAT_REQ"

usage_json "$CHAT_RID" "$MG_T/usage-chat.json" "$CHAT_COST"
expect_json "usage row for the chat: model, endpoint, status, tokens, exact cost, upstream id, key" "
    ((r, c) => j.n === 1 && r.model === '$CHAT_MODEL' && r.endpoint === 'chat.completions' &&
        r.stream === false && r.status === 200 && r.error_type === null &&
        r.prompt_tokens === c.usage.prompt_tokens &&
        r.completion_tokens === c.usage.completion_tokens &&
        r.total_tokens === c.usage.total_tokens &&
        '$CHAT_COST' !== '' && r.cost_eq === true && r.cost_source === 'upstream' &&
        r.upstream_id === c.id && Number.isInteger(r.latency_ms) && r.latency_ms >= 0 &&
        j.project === 'itest' && j.key_prefix === '$KEY_PREFIX')(j.row, f[1])" \
    "$MG_T/usage-chat.json" "$MG_T/chat.json"

# ---------------------------------------------------------------------------
# Embeddings: float, base64, and base64 converted by the gateway.

post "$BASE/v1/embeddings" "$(body emb-float "{\"model\":\"$EMB_MODEL\",\"input\":[\"alpha\",\"beta gamma\"],\"encoding_format\":\"float\"}")"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "embeddings float: 200, two vectors of 8 numbers" 200 "
    jsonHeaders(h) && j.object === 'list' && j.data.length === 2 &&
    j.data.every((d, i) => d.object === 'embedding' && d.index === i &&
        Array.isArray(d.embedding) && d.embedding.length === 8 &&
        d.embedding.every(Number.isFinite)) &&
    j.usage.prompt_tokens > 0"
save_last emb-float
EMB_RID=$(header x-request-id)
EMB_COST=$(json_value "$MG_T/emb-float.json" '(t.match(/"cost":([-+0-9.eE]+)/) || [])[1] || ""')

usage_json "$EMB_RID" "$MG_T/usage-emb.json" "$EMB_COST"
expect_json "usage row for the embeddings: endpoint embeddings, tokens, exact cost" "
    ((r, e) => j.n === 1 && r.endpoint === 'embeddings' && r.model === '$EMB_MODEL' &&
        r.status === 200 && r.error_type === null &&
        r.prompt_tokens === e.usage.prompt_tokens && r.total_tokens === e.usage.total_tokens &&
        '$EMB_COST' !== '' && r.cost_eq === true && r.cost_source === 'upstream' &&
        r.upstream_id === e.id)(j.row, f[1])" \
    "$MG_T/usage-emb.json" "$MG_T/emb-float.json"

post "$BASE/v1/embeddings" "$(body emb-b64 "{\"model\":\"$EMB_MODEL\",\"input\":[\"alpha\",\"beta gamma\"],\"encoding_format\":\"base64\"}")"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "embeddings base64: 200, base64 strings" 200 "
    jsonHeaders(h) && j.data.length === 2 && j.data.every((d) => typeof d.embedding === 'string')"
save_last emb-b64
expect_json "embeddings base64 decode (LE float32) to the float variant's values" "
    f[0].data.every((d, i) => sameF32(f32(d.embedding), f[1].data[i].embedding))" \
    "$MG_T/emb-b64.json" "$MG_T/emb-float.json"

post "$BASE/v1/embeddings" "$(body emb-conv "{\"model\":\"$EMB_MODEL;ignore_base64=1\",\"input\":[\"alpha\",\"beta gamma\"],\"encoding_format\":\"base64\"}")"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "embeddings base64 from an upstream that answers floats: still base64 strings" 200 "
    jsonHeaders(h) && j.data.length === 2 && j.data.every((d) => typeof d.embedding === 'string')"
save_last emb-conv
expect_json "the gateway's own base64 decodes to the float variant's values" "
    f[0].data.every((d, i) => sameF32(f32(d.embedding), f[1].data[i].embedding))" \
    "$MG_T/emb-conv.json" "$MG_T/emb-float.json"
expect_usage "usage row for the converted embeddings" "$(header x-request-id)" 200 embeddings \
    "$EMB_MODEL;ignore_base64=1"

post "$BASE/v1/embeddings" "$(body emb-dim "{\"model\":\"$EMB_MODEL\",\"input\":\"one text\",\"dimensions\":5}")"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "embeddings with dimensions 5 (passed through): one vector of 5 floats" 200 "
    j.data.length === 1 && Array.isArray(j.data[0].embedding) && j.data[0].embedding.length === 5"

# ---------------------------------------------------------------------------
# Models.

http GET "$BASE/v1/models" -H "Authorization: Bearer $KEY"
expect_http "GET /v1/models: a list of OpenAI model objects with chat and embedding models" 200 "
    jsonHeaders(h) && j.object === 'list' && Array.isArray(j.data) && j.data.length > 0 &&
    j.data.every((m) => m.object === 'model' && typeof m.id === 'string' &&
        typeof m.owned_by === 'string' && Number.isInteger(m.created)) &&
    ['$CHAT_MODEL', '$EMB_MODEL'].every((id) => j.data.some((m) => m.id === id))"

http GET "$BASE/v1/models/openai%2Fgpt-4o-mini" -H "Authorization: Bearer $KEY"
expect_http "GET /v1/models/openai%2Fgpt-4o-mini: the model" 200 "
    jsonHeaders(h) && j.id === '$CHAT_MODEL' && j.object === 'model' &&
    typeof j.owned_by === 'string' && Number.isInteger(j.created)"
http GET "$BASE/v1/models/openai/gpt-4o-mini" -H "Authorization: Bearer $KEY"
expect_http "GET /v1/models/openai/gpt-4o-mini: the model" 200 \
    "j.id === '$CHAT_MODEL' && j.object === 'model'"
http GET "$BASE/v1/models/openai%2Ftext-embedding-3-small" -H "Authorization: Bearer $KEY"
expect_http "GET /v1/models/openai%2Ftext-embedding-3-small: the embedding model" 200 \
    "j.id === '$EMB_MODEL' && j.object === 'model'"
http GET "$BASE/v1/models/openai%2Fno-such-model" -H "Authorization: Bearer $KEY"
expect_http "GET /v1/models/<unknown>: 404 model_not_found" 404 \
    "jsonHeaders(h) && isErr(j, 'model_not_found')"

# ---------------------------------------------------------------------------
# Refused before admission: routes, methods, keys.  No usage row, nothing
# upstream.

rows_before=$(usage_count)
calls_before=$(mock_calls)
HELLO=$(body hello "$(chat_body "$CHAT_MODEL" hello)")

http GET "$BASE/v1/nope" -H "Authorization: Bearer $KEY"
expect_http "GET /v1/nope: 404 not_found error object" 404 "jsonHeaders(h) && isErr(j, 'not_found')"
post "$BASE/v1/chat" "$HELLO"
expect_http "POST /v1/chat: 404 not_found error object" 404 "jsonHeaders(h) && isErr(j, 'not_found')"
http GET "$BASE/v1/chat/completions" -H "Authorization: Bearer $KEY"
expect_http "GET /v1/chat/completions: 405 with Allow: POST" 405 "
    jsonHeaders(h) && isErr(j, 'method_not_allowed') && h.allow === 'POST'"
post "$BASE/v1/models" "$(body empty '{}')"
expect_http "POST /v1/models: 405 with Allow: GET" 405 "
    jsonHeaders(h) && isErr(j, 'method_not_allowed') && h.allow === 'GET'"
http GET "$BASE/v1/embeddings" -H "Authorization: Bearer $KEY"
expect_http "GET /v1/embeddings: 405 with Allow: POST" 405 "
    jsonHeaders(h) && isErr(j, 'method_not_allowed') && h.allow === 'POST'"

http POST "$BASE/v1/chat/completions" -H 'Content-Type: application/json' --data-binary "@$HELLO"
expect_http "no Authorization header: 401 invalid_api_key" 401 \
    "jsonHeaders(h) && isErr(j, 'invalid_api_key')"
http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer $(random_key)" \
    -H 'Content-Type: application/json' --data-binary "@$HELLO"
expect_http "unknown key: 401 invalid_api_key" 401 "jsonHeaders(h) && isErr(j, 'invalid_api_key')"
http POST "$BASE/v1/chat/completions" -H 'Authorization: Bearer sk-not-a-modelgate-key' \
    -H 'Content-Type: application/json' --data-binary "@$HELLO"
expect_http "malformed key: 401 invalid_api_key" 401 "jsonHeaders(h) && isErr(j, 'invalid_api_key')"
http POST "$BASE/v1/embeddings" -H "Authorization: Basic $(printf 'u:%s' "$KEY" | base64 -w0)" \
    -H 'Content-Type: application/json' --data-binary "{\"model\":\"$EMB_MODEL\",\"input\":\"x\"}"
expect_http "Basic instead of Bearer: 401 invalid_api_key" 401 "jsonHeaders(h) && isErr(j, 'invalid_api_key')"
http GET "$BASE/v1/models"
expect_http "GET /v1/models without a key: 401" 401 "jsonHeaders(h) && isErr(j)"

check_eq "refused requests wrote no usage row" "$(usage_count)" "$rows_before"
check_eq "refused requests never reached the upstream" "$(mock_calls)" "$calls_before"

# Revoked key.
http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer $KEY2" \
    -H 'Content-Type: application/json' --data-binary "@$HELLO"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "second key works before it is revoked" 200 "j.choices[0].message.content === 'mock reply: hello'"
out=$(cli key revoke "$KEY2_PREFIX" 2>&1)
check_eq "key revoke PREFIX" "$out" "revoked key $KEY2_PREFIX"
# admission from leases binds a revocation within a second (its check of
# the admission changes)
[ "${MG_TEST_ADMISSION:-strict}" = lease ] && sleep 1.1
http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer $KEY2" \
    -H 'Content-Type: application/json' --data-binary "@$HELLO"
expect_http "revoked key: 401 invalid_api_key" 401 "jsonHeaders(h) && isErr(j, 'invalid_api_key')"
cli key list itest --json >"$MG_T/keys.json" 2>&1
expect_json "key list shows the revocation" "
    j.some((k) => k.prefix === '$KEY2_PREFIX' && typeof k.revoked_at === 'string') &&
    j.some((k) => k.prefix === '$KEY_PREFIX' && k.revoked_at === null)" "$MG_T/keys.json"
check_eq "the revoked key's 401 wrote no usage row" "$(usage_count)" "$EXPECTED_ROWS"

# ---------------------------------------------------------------------------
# Bad input from an authenticated client: OpenAI errors, a usage row each,
# nothing upstream.

calls_before=$(mock_calls)
node -e '
    const n = Number(process.argv[1]) + 4000;
    process.stdout.write(JSON.stringify({model: process.argv[2],
        messages: [{role: "user", content: "x".repeat(n)}]}));' \
    "$MAX_BODY" "$CHAT_MODEL" >"$MG_T/big.req"

post "$BASE/v1/chat/completions" "$MG_T/big.req"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "body over server.max_body_bytes (Content-Length): 413 request_too_large" 413 \
    "jsonHeaders(h) && isErr(j, 'request_too_large')"
expect_usage "usage row for the 413" "$(header x-request-id)" 413 chat.completions

post "$BASE/v1/chat/completions" "$MG_T/big.req" -H 'Transfer-Encoding: chunked'
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "body over server.max_body_bytes (chunked): 413 request_too_large" 413 \
    "jsonHeaders(h) && isErr(j, 'request_too_large')"

post "$BASE/v1/chat/completions" "$(body badjson '{"model": "x", "messages": [')"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "invalid JSON: 400 invalid_request_error" 400 \
    "jsonHeaders(h) && isErr(j) && j.error.type === 'invalid_request_error'"
expect_usage "usage row for the 400" "$(header x-request-id)" 400 chat.completions

post "$BASE/v1/chat/completions" "$(body nomodel '{"messages":[{"role":"user","content":"hi"}]}')"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "chat without model: 400 param model" 400 "
    jsonHeaders(h) && isErr(j, undefined, 'model') && j.error.type === 'invalid_request_error'"

post "$BASE/v1/chat/completions" "$(body msgstr "{\"model\":\"$CHAT_MODEL\",\"messages\":\"hi\"}")"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "chat with messages not an array: 400 param messages" 400 "
    jsonHeaders(h) && isErr(j, undefined, 'messages') && j.error.type === 'invalid_request_error'"

post "$BASE/v1/embeddings" "$(body noinput "{\"model\":\"$EMB_MODEL\"}")"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "embeddings without input: 400 param input" 400 "
    jsonHeaders(h) && isErr(j, undefined, 'input') && j.error.type === 'invalid_request_error'"
expect_usage "usage row for the embeddings 400" "$(header x-request-id)" 400 embeddings

check_eq "bad input never reached the upstream" "$(mock_calls)" "$calls_before"

post "$BASE/v1/chat/completions" "$(body chunked "$(chat_body "$CHAT_MODEL" "chunked hello")")" \
    -H 'Transfer-Encoding: chunked'
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "chunked request body: 200" 200 \
    "jsonHeaders(h) && j.choices[0].message.content === 'mock reply: chunked hello'"

# ---------------------------------------------------------------------------
# Upstream failures: mapped statuses, no provider details, a usage row each.

# upstream_case DESCRIPTION PATH MODEL STATUS JS-EXPRESSION
upstream_case() {
    local desc=$1 path=$2 model=$3 status=$4 expr=$5 endpoint=chat.completions req
    if [ "$path" = /v1/embeddings ]; then
        endpoint=embeddings
        req=$(body upstream "{\"model\":\"$model\",\"input\":\"upstream case\"}")
    else
        req=$(body upstream "$(chat_body "$model" "upstream case")")
    fi
    post "$BASE$path" "$req"
    EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
    expect_http "$desc" "$status" "jsonHeaders(h) && isErr(j) && ($expr)"
    expect_usage "${desc%%:*}: one usage row, status $status, error_type set" \
        "$(header x-request-id)" "$status" "$endpoint" "$model"
}

upstream_case "upstream 500: 502" /v1/chat/completions "$CHAT_MODEL;fail=500" 502 \
    "j.error.type === 'upstream_error' || j.error.type === 'server_error'"
upstream_case "upstream 502: 502" /v1/chat/completions "$CHAT_MODEL;fail=502" 502 true
upstream_case "upstream 400: 400 with the upstream's message" /v1/chat/completions \
    "$CHAT_MODEL;fail=400" 400 "j.error.message === 'mock failure 400'"
upstream_case "upstream 404: 404" /v1/chat/completions "$CHAT_MODEL;fail=404" 404 true
upstream_case "upstream 401: 502 without the provider's message or key" /v1/chat/completions \
    "$CHAT_MODEL;fail=401" 502 "
    !t.includes('No auth credentials') && !t.includes('$PROVIDER_KEY') && !t.includes('SECRET123')"
upstream_case "upstream 402: 503, generic (no provider account details)" /v1/chat/completions \
    "$CHAT_MODEL;fail=402" 503 "!/credits/i.test(t) && !t.includes('Mock')"
upstream_case "upstream 429: 503, with the upstream's Retry-After" /v1/chat/completions \
    "$CHAT_MODEL;fail=429" 503 "h['retry-after'] === '1'"
upstream_case "upstream closes without answering: 502" /v1/chat/completions \
    "$CHAT_MODEL;cut=before" 502 true
upstream_case "upstream answers 200 with garbage: 502" /v1/chat/completions \
    "$CHAT_MODEL;badjson=1" 502 true
upstream_case "embeddings, upstream 500: 502" /v1/embeddings "$EMB_MODEL;fail=500" 502 true

post "$BASE/v1/chat/completions" "$(body slow "$(chat_body "$CHAT_MODEL;sleep=3000" slow)")"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "upstream slower than upstream.timeout (2 s): 504 within ~3 s (took ${HTTP_TIME}s)" 504 \
    "jsonHeaders(h) && isErr(j) && $HTTP_TIME >= 1.5 && $HTTP_TIME < 3.5"
expect_usage "upstream timeout: one usage row, status 504" "$(header x-request-id)" 504 chat.completions

http POST "$BASE2/v1/chat/completions" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data-binary "@$HELLO"
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
expect_http "upstream on a closed port: 502 upstream_unreachable" 502 \
    "jsonHeaders(h) && isErr(j, 'upstream_unreachable')"
expect_usage "upstream unreachable: one usage row, status 502" "$(header x-request-id)" 502 chat.completions

check_eq "usage rows: exactly one per authenticated chat/embeddings request" \
    "$(usage_count)" "$EXPECTED_ROWS"

# ---------------------------------------------------------------------------
# Concurrency: 40 requests of 0.5 s each at once (2 processes x 8 threads).

rows_before=$(usage_count)
par_pids=()
t0=$EPOCHREALTIME
for i in $(seq 1 40); do
    curl -sS --max-time 30 -o "$MG_T/par-$i.body" -w '%{http_code}' \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        --data-binary "$(chat_body "$CHAT_MODEL;sleep=500" "parallel $i")" \
        "$BASE/v1/chat/completions" >"$MG_T/par-$i.status" 2>/dev/null &
    par_pids+=("$!")
done
wait "${par_pids[@]}"
t1=$EPOCHREALTIME
EXPECTED_ROWS=$((EXPECTED_ROWS + 40))
elapsed_ms=$(( (${t1/./} - ${t0/./}) / 1000 ))
bad=
for i in $(seq 1 40); do
    if [ "$(cat "$MG_T/par-$i.status")" != 200 ] ||
        ! grep -qF "\"mock reply: parallel $i\"" "$MG_T/par-$i.body"; then
        bad+=" $i:$(cat "$MG_T/par-$i.status")"
    fi
done
check_eq "40 concurrent chats: all 200 with their own answer" "${bad:-none}" none
check "40 concurrent 0.5 s chats took ${elapsed_ms} ms (< 10000: served in parallel)" \
    test "$elapsed_ms" -lt 10000
check_eq "40 concurrent chats: 40 new usage rows" "$(($(usage_count) - rows_before))" 40

# ---------------------------------------------------------------------------
# Memory: large answers do not stay with the threads that served them.
# 16 embeddings answers of 1.6 MB at once (every thread of both processes);
# once idle, each responder's private memory is back near its size at rest,
# as the buffers that grew are freed after each request and the upkeep
# thread hands the freed heap memory back to the system.

# private_kib PID: the process's Private_Clean + Private_Dirty, in KiB.
private_kib() {
    awk '/^Private_(Clean|Dirty):/ { n += $2 } END { print n + 0 }' "/proc/$1/smaps_rollup"
}

big_emb=$(body big-emb "{\"model\":\"$EMB_MODEL;dim=16384\",\"input\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\"]}")
seq 16 | xargs -P 16 -I{} curl -sS --max-time 30 -o /dev/null -w '%{http_code}\n' \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data-binary "@$big_emb" "$BASE/v1/embeddings" >"$MG_T/big-emb.status" 2>/dev/null
EXPECTED_ROWS=$((EXPECTED_ROWS + 16))
check_eq "16 concurrent 1.6 MB embeddings answers: all 200" \
    "$(sort "$MG_T/big-emb.status" | uniq -c | tr -s ' ')" " 16 200"
if fcgi_sanitized; then
    tap_skip "idle responders' private memory after large answers" "instrumented build (sanitizers or valgrind)"
else
    for ((i = 0; i < 50; i++)); do
        largest=0
        for pid in "${MAIN_PIDS[@]}"; do
            kib=$(private_kib "$pid")
            [ "$kib" -gt "$largest" ] && largest=$kib
        done
        [ "$largest" -le 16384 ] && break
        sleep 0.1
    done
    check "idle responders after 16 large answers: private memory <= 16 MiB each (largest $largest KiB)" \
        test "$largest" -le 16384
fi

# ---------------------------------------------------------------------------
# The official openai npm client.

if NODE_PATH=$NODE_PATH node -e 'require.resolve("openai")' >/dev/null 2>&1; then
    MG_BASE_URL=$BASE/v1 MG_API_KEY=$KEY MG_MOCK_URL=$MOCK_URL \
        node "$HERE/openai-client.cjs" >"$MG_T/sdk.out" 2>&1
    sdk_rc=$?
    sdk_calls=
    while IFS= read -r line; do
        if [[ $line =~ ^ok\ [0-9]+\ -\ (.*)$ ]]; then
            tap_ok "openai SDK: ${BASH_REMATCH[1]}"
        elif [[ $line =~ ^not\ ok\ [0-9]+\ -\ (.*)$ ]]; then
            tap_not_ok "openai SDK: ${BASH_REMATCH[1]}"
        elif [[ $line =~ ^#\ authenticated-calls:\ ([0-9]+)$ ]]; then
            sdk_calls=${BASH_REMATCH[1]}
        elif [[ $line =~ ^1\.\.[0-9]+$ ]]; then
            :
        else
            printf '# %s\n' "$line"
        fi
    done <"$MG_T/sdk.out"
    check_eq "openai-client.cjs exit status" "$sdk_rc" 0
    EXPECTED_ROWS=$((EXPECTED_ROWS + ${sdk_calls:-0}))
elif [ "${MG_REQUIRE_INTEGRATION:-0}" = 1 ]; then
    tap_not_ok "openai npm package installed" \
        "require('openai') fails with NODE_PATH='$NODE_PATH'; run npm ci in tests/integration"
else
    tap_skip "openai SDK checks" "the openai npm package is not installed (npm ci in tests/integration)"
fi

# ---------------------------------------------------------------------------
# GET /metrics through $MG_SERVER: its shipped configuration routes it, and
# the REMOTE_ADDR the responder gets is the client's own address: with
# metrics.allow = 127.0.0.1, a client connecting from 127.0.0.2 (to the
# same listener) is refused, unless it shows the token, which needs the
# Authorization header passed on.

http GET "$BASE/metrics" --interface 127.0.0.2
expect_http "GET /metrics from 127.0.0.2 (not in metrics.allow): 403, an OpenAI error" 403 \
    "j.error.type === 'invalid_request_error' && j.error.code === 'forbidden'"
check "the responder was given the client's address (REMOTE_ADDR 127.0.0.2)" \
    grep -qF "metrics refused to 127.0.0.2" "$LOG"
http GET "$BASE/metrics" --interface 127.0.0.2 -H "Authorization: Bearer wrong-$METRICS_TOKEN"
expect_http "GET /metrics from 127.0.0.2 with a wrong token: 403" 403
http GET "$BASE/metrics" --interface 127.0.0.2 -H "Authorization: Bearer $METRICS_TOKEN"
expect_http "GET /metrics from 127.0.0.2 with the token: 200 ($MG_SERVER passes Authorization)" \
    200 "t.includes('# TYPE modelgate_requests_total counter')"
http GET "$BASE/metrics"
expect_http "GET /metrics from 127.0.0.1: 200, the text exposition" 200 \
    "h['content-type'].startsWith('text/plain; version=0.0.4') &&
     t.includes('modelgate_requests_total{endpoint=\"chat.completions\",status_class=\"2xx\",stream=\"false\"}')"
check "the scrape counts the two refusals" grep -qxF \
    'modelgate_requests_total{endpoint="metrics",status_class="4xx",stream="false"} 2' "$MG_T/last.body"
if [ "${MG_TEST_ADMISSION:-strict}" = lease ]; then
    check "lease: requests were admitted from leases, and the answers kept were checked" \
        awk '$1 == "modelgate_lease_admissions_total" && $2 > 0 { a = 1 }
             $1 == "modelgate_lease_checks_total" && $2 > 0 { c = 1 }
             END { exit !(a && c) }' "$MG_T/last.body"
fi

# ---------------------------------------------------------------------------
# SIGTERM: requests in flight finish, then the responders exit.

calls_before=$(mock_calls)
curl -sS --max-time 30 -D "$MG_T/term.headers" -o "$MG_T/term.body" -w '%{http_code}' \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data-binary "$(chat_body "$CHAT_MODEL;sleep=1500" "in flight")" \
    "$BASE/v1/chat/completions" >"$MG_T/term.status" 2>/dev/null &
term_curl=$!
EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
for ((i = 0; i < 100; i++)); do
    [ "$(mock_calls)" -gt "$calls_before" ] && break
    sleep 0.05
done
check "the slow request reached the upstream" test "$(mock_calls)" -gt "$calls_before"
kill -TERM "${MAIN_PIDS[@]}"
t0=$EPOCHREALTIME
wait "$term_curl"
check_eq "request in flight during SIGTERM completes with 200" "$(cat "$MG_T/term.status")" 200
check "the request in flight during SIGTERM carries its answer" grep -qF '"mock reply: in flight"' "$MG_T/term.body"
if wait_gone 8 "${MAIN_PIDS[@]}"; then
    t1=$EPOCHREALTIME
    tap_ok "all responders exit after SIGTERM ($(( (${t1/./} - ${t0/./}) / 1000 )) ms)"
else
    tap_not_ok "all responders exit after SIGTERM" \
        "still running 8 s after SIGTERM: $(for p in "${MAIN_PIDS[@]}"; do pid_alive "$p" && printf '%s ' "$p"; done)"
fi
term_rid=$(tr -d '\r' <"$MG_T/term.headers" | sed -n 's/^[Xx]-[Rr]equest-[Ii][Dd]: *//p' | tail -n 1)
expect_usage "the in-flight request was settled (usage row, status 200)" "$term_rid" 200 \
    chat.completions "$CHAT_MODEL;sleep=1500"

# ---------------------------------------------------------------------------
# Shutdown of the rest: everything started here stops on SIGTERM.

# The web servers' workers (Apache's and nginx's; lighttpd has none) must
# go with their main process.
LIVE_PIDS=()
for pid in "${RESPONDER_PIDS[@]}"; do
    pid_runs "$pid" modelgate-fcgi && LIVE_PIDS+=("$pid")
done
WORKER_PIDS=()
for pid in "${SERVER_PIDS[@]}"; do
    mapfile -t -O "${#WORKER_PIDS[@]}" WORKER_PIDS < <(child_pids "$pid")
done
kill -TERM "${SERVER_PIDS[@]}" "${LIVE_PIDS[@]}" "$MOCK_PID" 2>/dev/null
if wait_gone 10 "${SERVER_PIDS[@]}" "${WORKER_PIDS[@]}" "${LIVE_PIDS[@]}" "$MOCK_PID"; then
    tap_ok "$MG_SERVER (main process and ${#WORKER_PIDS[@]} workers), the other responder and the mock exit on SIGTERM"
else
    tap_not_ok "$MG_SERVER, its workers, the other responder and the mock exit on SIGTERM" \
        "still running: $(for p in "${SERVER_PIDS[@]}" "${WORKER_PIDS[@]}" "${LIVE_PIDS[@]}" "$MOCK_PID"; do
            pid_alive "$p" && printf '%s ' "$p"; done)"
fi
reports=$(cat "$MG_T"/sanitizer.* 2>/dev/null)
check_eq "no AddressSanitizer/UndefinedBehaviorSanitizer reports" "${reports:-none}" none

# ---------------------------------------------------------------------------
# Totals and secrets.

check_eq "usage rows in total: one per authenticated chat/embeddings request ($EXPECTED_ROWS)" \
    "$(usage_count)" "$EXPECTED_ROWS"

not_in_files() {
    local needle=$1 f found=
    shift
    for f in "$@"; do
        [ -e "$f" ] || continue
        if grep -qF -- "$needle" "$f"; then
            found+=" ${f##*/}"
        fi
    done
    if [ -n "$found" ]; then
        echo "found in:$found"
        return 1
    fi
}

LOGS=("$LOG" "$LOG2" "$MG_T"/*-"$MG_SERVER"-error.log "$MG_T"/*-"$MG_SERVER"-access.log)
check "the responder logs exist and name the key by its prefix" grep -qF -- "$KEY_PREFIX" "$LOG"
check "the provider key appears in no log" not_in_files "$PROVIDER_KEY" "${LOGS[@]}"
check "client keys appear in no log (only their prefix)" \
    not_in_files "${KEY:11}" "${LOGS[@]}"
check "the revoked client key appears in no log" not_in_files "${KEY2:11}" "${LOGS[@]}"
check_eq "the provider key appears in no usage row" \
    "$(sql "SELECT count(*) FROM usage_events u WHERE strpos(u::text, :'k') > 0" -v k=SECRET123)" 0

tap_done
