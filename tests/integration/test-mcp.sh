#!/usr/bin/env bash
# test-mcp.sh -- the MCP server with the official TypeScript SDK's Client
# (@modelcontextprotocol/sdk), on stdio (`modelgate mcp`, the operator's
# scope) and over Streamable HTTP through lighttpd (POST /mcp, a key's
# scope), with a real Postgres and the mock upstream:
#
#   1. stdio: the handshake, the six tools with their schemas and
#      annotations, each tool's structuredContent equal to the CLI's
#      --format json for the same question, bad arguments as tool errors,
#      an unknown tool as a protocol error;
#   2. the JSON-RPC faults on raw lines (a line that is not JSON, a batch,
#      an unknown method, a missing jsonrpc), version negotiation, and a
#      broken pipe ending `modelgate mcp` cleanly;
#   3. HTTP with a project key: its own project only, by any argument;
#      the operator's tools neither listed nor callable; with an admin
#      key every project; a revoked key 401; notifications 202, GET 405,
#      an unknown protocol version 400;
#   4. 50 clients at once over HTTP, every one answered.
#
# Runs under pg_virtualenv when PGHOST is not set.  Output is TAP; exits 0
# when every check passed, 1 when one failed, 77 when skipped, 99 on a
# setup error.

# shellcheck source-path=SCRIPTDIR
set -u
set -o pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
. "$HERE/lib.sh"
mg_script_start "$HERE/$(basename -- "${BASH_SOURCE[0]}")" node curl lighttpd spawn-fcgi

mg_stack_test mcp

MCP_CLIENT=$HERE/mcp-client.cjs
mg_need_node_module @modelcontextprotocol/sdk/client/index.js

PROVIDER_KEY=sk-or-provider-MCP246
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY

mg_fresh_db modelgate_mcp
start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"
CONF=$MG_T/modelgate.conf
mg_conf_write "$CONF" LOG_FILE="$MG_T/modelgate.log" || bail "configuration written" "$CONF"
recon_db "$CONF"
out=$(cli models sync 2>&1) || bail "models sync" "$out"
out=$(cli project set alpha --spend-cap 5 --models openai/gpt-4o-mini,mock/echo 2>&1) ||
    bail "project set alpha" "$out"
ADMIN=$(cli admin-key create --name ops 2>"$MG_T/key.err") ||
    bail "admin-key create" "$(cat "$MG_T/key.err")"
KA2=$(cli key create alpha --name spare 2>"$MG_T/key.err") ||
    bail "key create alpha" "$(cat "$MG_T/key.err")"

mg_stack_up "$CONF"

chat "$KA" "openai/gpt-4o-mini"
chat "$KA" "mock/echo" true
chat "$KB" "mock/echo"
chat "$KB" "anthropic/claude-sonnet-4"
settled || bail "the requests settle"

TOMORROW=$(date -u -d tomorrow +%Y-%m-%d)

# mcp_run NAME PLAN-JSON TRANSPORT ARGS...: runs the SDK's client; its
# output in $MG_T/NAME.json.
mcp_run() {
    local name=$1 plan=$2
    shift 2
    printf '%s\n' "$plan" >"$MG_T/$name-plan.json"
    node "$MCP_CLIENT" run "$MG_T/$name-plan.json" "$@" >"$MG_T/$name.json" \
        2>"$MG_T/$name.err"
}

# ---------------------------------------------------------------------------
# 1. stdio, the operator.

PLAN='[
 {"name": "usage_summary", "arguments": {"since": "today", "until": "'"$TOMORROW"'", "by": ["project", "model"]}},
 {"name": "list_requests", "arguments": {"project": "beta", "limit": 1, "until": "'"$TOMORROW"'"}},
 {"name": "get_quota", "arguments": {}},
 {"name": "list_models", "arguments": {"project": "alpha"}},
 {"name": "reconciliation_status", "arguments": {"since": "today", "until": "'"$TOMORROW"'"}},
 {"name": "list_projects"},
 {"name": "usage_summary", "arguments": {"by": ["colour"]}},
 {"name": "usage_summary", "arguments": {"since": "2030-01-01"}},
 {"name": "list_requests", "arguments": {"limit": "ten"}},
 {"name": "get_quota", "arguments": {"colour": "blue"}},
 {"name": "get_quota", "arguments": {"project": "nobody"}},
 {"name": "no_such_tool", "arguments": {}}
]'
if mcp_run stdio "$PLAN" stdio "$CLI" -c "$CONF" --sql-dir "$MG_SRCDIR/sql" mcp; then
    tap_ok "the SDK's client over stdio: connected, listed, called, closed"
else
    bail "the SDK's client over stdio" "$(cat "$MG_T/stdio.err")"
fi
expect_json "initialize: serverInfo modelgate with its version, the tools capability" \
    "j.server.name === 'modelgate' && j.server.version === '$(cli --version | sed 's/^modelgate //')' &&
     j.capabilities.tools !== undefined && j.ping === true" "$MG_T/stdio.json"
expect_json "tools/list: six tools, each read-only with an input and an output schema" \
    "deepEq(j.tools.map((t) => t.name), ['usage_summary', 'list_requests', 'get_quota',
        'list_models', 'reconciliation_status', 'list_projects']) &&
     j.tools.every((t) => t.inputSchema.type === 'object' && t.outputSchema.type === 'object' &&
        t.annotations.readOnlyHint === true && t.description.length > 40)" "$MG_T/stdio.json"

# cli_json NAME ARGS...: the CLI's --format json answer in $MG_T/NAME.cli.json
cli_json() {
    local name=$1
    shift
    cli "$@" --format json >"$MG_T/$name.cli.json" 2>"$MG_T/$name.cli.err"
}
cli_json usage usage --since today --until "$TOMORROW" --by project,model
cli_json requests requests --project beta --limit 1 --until "$TOMORROW"
cli_json quota quota
cli_json catalog catalog --project alpha
cli_json reconcile reconcile --since today --until "$TOMORROW"
cli_json projects projects
i=0
for n in usage requests quota catalog reconcile projects; do
    expect_json "tools/call $(json_value "$MG_T/stdio.json" "j.calls[$i].name"): structuredContent is the CLI's --format json ($n)" \
        "((c, o) => (delete c.structuredContent.reconciled_through) &&
            (delete o.reconciled_through) && c.isError === false &&
            deepEq(c.structuredContent, o) && c.content[0].type === 'text' &&
            c.content[0].text.length > 20)(f[0].calls[$i].result, f[1])" \
        "$MG_T/stdio.json" "$MG_T/$n.cli.json"
    i=$((i + 1))
done
expect_json "the usage totals cover the four requests of both projects" \
    "j.calls[0].result.structuredContent.totals.requests === 4" "$MG_T/stdio.json"
expect_json "list_models: alpha's two models, with prices per million tokens" \
    "((d) => deepEq(d.map((m) => m.id), ['mock/echo', 'openai/gpt-4o-mini']) &&
        d.every((m) => typeof m.prompt_per_million === 'string' &&
                       m.provider === m.id.split('/')[0]))(j.calls[3].result.structuredContent.data)" \
    "$MG_T/stdio.json"
expect_json "bad arguments are tool errors a model can act on" \
    "((e) => e.every((r) => r.isError === true && r.content[0].text.length > 10) &&
        /colour/.test(e[0].content[0].text) && /before/.test(e[1].content[0].text) &&
        /whole number/.test(e[2].content[0].text) && /colour/.test(e[3].content[0].text) &&
        /nobody/.test(e[4].content[0].text))(j.calls.slice(6, 11).map((c) => c.result))" "$MG_T/stdio.json"
expect_json "an unknown tool is a protocol error (-32602)" \
    "/-32602/.test(j.calls[11].error) && /Unknown tool/.test(j.calls[11].error)" "$MG_T/stdio.json"

# ---------------------------------------------------------------------------
# 2. Raw lines on stdio.

printf '%s\n' 'this is not json' '[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]' \
    '{"jsonrpc": "2.0", "id": 2, "method": "resources/list"}' \
    '{"id": 3, "method": "ping"}' \
    '{"jsonrpc": "2.0", "method": "notifications/initialized"}' \
    '{"jsonrpc": "2.0", "id": "four", "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}' \
    '{"jsonrpc": "2.0", "id": 5, "method": "initialize", "params": {"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}' \
    '{"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"arguments": {}}}' \
    '{"jsonrpc": "2.0", "id": 7, "method": "ping"}' |
    cli mcp >"$MG_T/raw.out" 2>"$MG_T/raw.err"
check_eq "raw lines: exit 0 at the end of the input, nothing on stderr" \
    "$? $(wc -c <"$MG_T/raw.err")" "0 0"
{ printf '['; paste -sd, "$MG_T/raw.out"; printf ']'; } >"$MG_T/raw.json"
expect_json "raw lines: parse error, no batches, method not found, invalid request, no answer to a notification, versions negotiated, invalid params, and still answering" \
    "((a) => a.length === 8 && a[0].error.code === -32700 && a[0].id === null &&
     a[1].error.code === -32600 && a[2].error.code === -32601 && a[2].id === 2 &&
     a[3].error.code === -32600 && a[3].id === 3 &&
     a[4].id === 'four' && a[4].result.protocolVersion === '2025-06-18' &&
     a[5].result.protocolVersion === '2025-11-25' &&
     a[6].error.code === -32602 && a[7].id === 7 && deepEq(a[7].result, {}))(j)" "$MG_T/raw.json"
# the reader goes away after the first answer
( yes '{"jsonrpc": "2.0", "id": 1, "method": "ping"}' | head -n 20000 |
    cli mcp 2>"$MG_T/pipe.err" | head -n 1 >"$MG_T/pipe.out"
    printf '%s\n' "${PIPESTATUS[2]}" >"$MG_T/pipe.rc" )
check_eq "a broken pipe ends modelgate mcp cleanly (status 0, nothing on stderr)" \
    "$(cat "$MG_T/pipe.rc") $(wc -c <"$MG_T/pipe.err") $(cat "$MG_T/pipe.out")" \
    '0 0 {"jsonrpc":"2.0","id":1,"result":{}}'

# ---------------------------------------------------------------------------
# 3. HTTP through lighttpd, a project key.

BETA_PREFIX=$(sql_now "SELECT prefix FROM api_keys k JOIN projects p ON p.id = k.project_id
                        WHERE p.name = 'beta' LIMIT 1")
PLAN='[
 {"name": "get_quota", "arguments": {}},
 {"name": "usage_summary", "arguments": {"since": "today", "until": "'"$TOMORROW"'", "by": ["project"]}},
 {"name": "usage_summary", "arguments": {"project": "beta"}},
 {"name": "list_requests", "arguments": {"project": "beta"}},
 {"name": "usage_summary", "arguments": {"key": "'"$BETA_PREFIX"'"}},
 {"name": "list_models", "arguments": {"project": "beta"}},
 {"name": "list_projects", "arguments": {}},
 {"name": "reconciliation_status", "arguments": {}},
 {"name": "list_requests", "arguments": {"model": "anthropic/claude-sonnet-4"}}
]'
if mcp_run http-alpha "$PLAN" http "$BASE/mcp" "$KA"; then
    tap_ok "the SDK's client over Streamable HTTP through lighttpd, alpha's key"
else
    bail "the SDK's client over HTTP" "$(cat "$MG_T/http-alpha.err")"
fi
expect_json "a project key lists the four project tools only" \
    "deepEq(j.tools.map((t) => t.name), ['usage_summary', 'list_requests', 'get_quota', 'list_models'])" \
    "$MG_T/http-alpha.json"
cli_json quota-alpha quota --project alpha
cli_json usage-alpha usage --project alpha --since today --until "$TOMORROW" --by project
expect_json "its quota and usage are alpha's alone, as the CLI gives them for alpha" \
    "deepEq(f[0].calls[0].result.structuredContent, f[1]) &&
     deepEq(f[0].calls[1].result.structuredContent, f[2]) &&
     f[1].data.length === 1 && f[1].data[0].project === 'alpha'" \
    "$MG_T/http-alpha.json" "$MG_T/quota-alpha.cli.json" "$MG_T/usage-alpha.cli.json"
expect_json "no argument reaches beta: naming it, its key or its model, every operator tool" \
    "((r) => [2, 3, 5].every((i) => r[i].isError && /belongs to project \"alpha\"/.test(r[i].content[0].text)) &&
     r[4].isError && /in project alpha/.test(r[4].content[0].text) &&
     [6, 7].every((i) => r[i].isError && /admin key/.test(r[i].content[0].text)) &&
     r[8].isError === false &&
     r[8].structuredContent.data.length === 0)(j.calls.map((c) => c.result))" "$MG_T/http-alpha.json"
if mcp_run http-admin '[{"name": "list_projects", "arguments": {}}, {"name": "get_quota", "arguments": {}}]' \
    http "$BASE/mcp" "$ADMIN"; then
    expect_json "an admin key: the six tools, every project" \
        "j.tools.length === 6 && deepEq(j.calls[0].result.structuredContent, f[1]) &&
         j.calls[1].result.structuredContent.data.length === 2" \
        "$MG_T/http-admin.json" "$MG_T/projects.cli.json"
else
    tap_not_ok "the SDK's client over HTTP, an admin key" "$(cat "$MG_T/http-admin.err")"
fi
out=$(cli key revoke "${KA2:0:11}" 2>&1) || bail "key revoke" "$out"
http POST "$BASE/mcp" -H "Authorization: Bearer $KA2" -H 'Content-Type: application/json' \
    --data '{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
expect_http "a revoked key: 401" 401 "j.error.code === 'invalid_api_key'"
if ! mcp_run http-revoked '[]' http "$BASE/mcp" "$KA2"; then
    check "the SDK's client with a revoked key fails to connect (401)" grep -q invalid_api_key \
        "$MG_T/http-revoked.err"
else
    tap_not_ok "the SDK's client with a revoked key fails to connect (401)" \
        "$(cat "$MG_T/http-revoked.json")"
fi
http POST "$BASE/mcp" -H "Authorization: Bearer $KA" -H 'Content-Type: application/json' \
    --data '{"jsonrpc": "2.0", "method": "notifications/initialized"}'
check_eq "a notification: 202, no body" "$HTTP_STATUS $(wc -c <"$MG_T/last.body")" "202 0"
http GET "$BASE/mcp" -H "Authorization: Bearer $KA" -H 'Accept: text/event-stream'
expect_http "GET /mcp (no event stream): 405, Allow: POST" 405 "/POST/.test(h.allow)"
http POST "$BASE/mcp" -H "Authorization: Bearer $KA" -H 'Content-Type: application/json' \
    -H 'MCP-Protocol-Version: 1999-01-01' --data '{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
expect_http "an unknown MCP-Protocol-Version: 400" 400 "j.error.code === -32600"
http POST "$BASE/mcp" -H "Authorization: Bearer $KA" -H 'Content-Type: application/json' \
    --data '{"jsonrpc": "2.0", "id": 1, "method": '
expect_http "a message cut short: 200 with a parse error" 200 "j.error.code === -32700"

# ---------------------------------------------------------------------------
# 4. Fifty clients at once.

node "$MCP_CLIENT" many 50 "$BASE/mcp" "$KB" >"$MG_T/many.json" 2>"$MG_T/many.err"
expect_json "50 HTTP clients at once (connect, get_quota, close): all answered" \
    "j.ok === 50 && j.failed === 0" "$MG_T/many.json"
check "no key in the log" bash -c '! grep -q -e "$1" -e "$2" -e "$3" "$4"' _ \
    "$KA" "$ADMIN" "$PROVIDER_KEY" "$MG_T/modelgate.log"

tap_done
