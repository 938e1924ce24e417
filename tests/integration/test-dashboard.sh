#!/usr/bin/env bash
# test-dashboard.sh -- the dashboard (/dashboard/) in headless Chromium
# (Debian's chromium, driven by playwright-core) through lighttpd, with a
# real Postgres and the mock upstream:
#
#   1. the page's headers: a Content-Security-Policy of 'self' only,
#      nosniff, no referrer, no framing; nothing fetched from elsewhere;
#   2. sign-in: no key, a wrong key and a revoked key each get a clear
#      message; the key lives in sessionStorage only (no URL, no cookie);
#   3. a project key, in New York time: the endpoint, the code for curl,
#      Node and Python with this gateway's URL and no key, the project's
#      models as chips by provider with prices; the charts' data, the
#      per-day table and the top models equal the CLI's JSON for the same
#      query; the status filter and the range picker change them; the CSV
#      download equals `modelgate usage --format csv`;
#   4. an admin key: the project switcher, every project, then one;
#   5. a model named like HTML shows as text and runs nothing; a key
#      revoked while signed in sends the user back to sign in.
#
# Screenshots are kept in $MG_DASHBOARD_SHOTS when it is set.  Runs under
# pg_virtualenv when PGHOST is not set.  Output is TAP; exits 0 when every
# check passed, 1 when one failed, 77 when skipped, 99 on a setup error.

# shellcheck source-path=SCRIPTDIR
set -u
set -o pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
. "$HERE/lib.sh"
mg_script_start "$HERE/$(basename -- "${BASH_SOURCE[0]}")" node curl lighttpd spawn-fcgi chromium

mg_stack_test dashboard
mg_need_node_module playwright-core

PROVIDER_KEY=sk-or-provider-DASH135
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY
TZ_NAME=America/New_York
XSS_MODEL='x/<img src=x onerror="window.__xss=1">'

mg_fresh_db modelgate_dashboard
start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"
CONF=$MG_T/modelgate.conf
mg_conf_write "$CONF" LOG_FILE="$MG_T/modelgate.log" DASHBOARD_DIR="$MG_SRCDIR/app/dashboard" ||
    bail "configuration written" "$CONF"
recon_db "$CONF"
out=$(cli models sync 2>&1) || bail "models sync" "$out"
out=$(cli project set alpha --spend-cap 2.5 --rpm 600 \
    --models "openai/gpt-4o-mini,mock/echo,openai/text-embedding-3-small,$XSS_MODEL" 2>&1) ||
    bail "project set alpha" "$out"
ADMIN=$(cli admin-key create --name ops 2>"$MG_T/key.err") ||
    bail "admin-key create" "$(cat "$MG_T/key.err")"
KA2=$(cli key create alpha --name soon-revoked 2>"$MG_T/key.err") ||
    bail "key create" "$(cat "$MG_T/key.err")"
KA3=$(cli key create alpha --name revoked 2>"$MG_T/key.err") ||
    bail "key create" "$(cat "$MG_T/key.err")"
out=$(cli key revoke "${KA3:0:11}" 2>&1) || bail "key revoke" "$out"

mg_stack_up "$CONF"

# 23 requests of alpha's in all: two pages of the latest requests
for i in $(seq 1 19); do
    chat "$KA" "openai/gpt-4o-mini"
done
chat "$KA" "mock/echo" true
http POST "$BASE/v1/embeddings" -H "Authorization: Bearer $KA" -H 'Content-Type: application/json' \
    --data '{"model": "openai/text-embedding-3-small", "input": "four words to embed"}'
chat "$KB" "mock/echo"
chat "$KB" "anthropic/claude-sonnet-4"
# the upstream gone: a 502, a failed request of alpha's
kill "$MOCK_PID" 2>/dev/null
wait "$MOCK_PID" 2>/dev/null
MOCK_PID=
chat "$KA" "mock/echo"
check_eq "with the upstream gone, a request fails: 502" "$HTTP_STATUS" 502
settled || bail "the requests settle"

# ---------------------------------------------------------------------------
# 1. The files and their headers.

http GET "$BASE/dashboard/"
check_eq "GET /dashboard/: 200 text/html" \
    "$HTTP_STATUS $(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^;]*\).*/\1/p' "$MG_T/last.headers" | tr -d '\r')" \
    "200 text/html"
expect_http "the page: CSP of 'self' only, nosniff, no referrer, no framing" 200 \
    "/default-src 'self'/.test(h['content-security-policy']) &&
     !/unsafe-inline|unsafe-eval|https?:/.test(h['content-security-policy']) &&
     /frame-ancestors 'none'/.test(h['content-security-policy']) &&
     h['x-content-type-options'] === 'nosniff' && h['referrer-policy'] === 'no-referrer' &&
     h['x-frame-options'] === 'DENY'"
check "no script or style of another origin, nothing inline" bash -c \
    '! grep -Eq "(src|href)=\"(https?:)?//|<script>|style=" "$1"' _ "$MG_T/last.body"
http GET "$BASE/dashboard/dashboard.js"
check_eq "the script: 200 text/javascript" \
    "$HTTP_STATUS $(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^;]*\).*/\1/p' "$MG_T/last.headers" | tr -d '\r')" \
    "200 text/javascript"
http GET "$BASE/dashboard/../modelgate.conf"
check "a path outside the list: 404 ($HTTP_STATUS)" test "$HTTP_STATUS" = 404 -o "$HTTP_STATUS" = 400
http GET "$BASE/dashboard/secret.txt"
expect_http "a name not on the list: 404 with an error object" 404 "j.error.code === 'not_found'"

# ---------------------------------------------------------------------------
# 2-5. In the browser.

SHOTS=${MG_DASHBOARD_SHOTS:-$MG_T}
mkdir -p "$SHOTS"
if MG_KEY_PROJECT=$KA MG_KEY_ADMIN=$ADMIN MG_KEY_REVOKED=$KA3 MG_KEY_TO_REVOKE=$KA2 \
    MG_REVOKE_CMD="$CLI -c $CONF --sql-dir $MG_SRCDIR/sql key revoke ${KA2:0:11}" \
    MG_TZ=$TZ_NAME node "$HERE/dashboard-browser.cjs" "$BASE" "$SHOTS" \
    >"$MG_T/b.json" 2>"$MG_T/b.err"; then
    tap_ok "headless Chromium went through the dashboard"
else
    bail "headless Chromium went through the dashboard" "$(tail -n 30 "$MG_T/b.err")"
fi
B=$MG_T/b.json
expect_json "no console error, nothing fetched from another origin, no key in a URL" \
    "j.consoleErrors.length === 0 && !j.offsite && j.requestsWithKeyInUrl === 0 && !j.notFound" "$B"
expect_json "sign-in: an empty key is refused by the form, a wrong and a revoked key get a message" \
    "j.emptyKey === true && /unknown or has been revoked/.test(j.wrongKey) &&
     /unknown or has been revoked/.test(j.revokedKey)" "$B"
expect_json "the key in sessionStorage only: no cookie, no localStorage, not in the URL" \
    "deepEq(j.storage.session, ['modelgate.key']) && j.storage.local.length === 0 &&
     j.storage.cookie === '' && !/mg-/.test(j.storage.href)" "$B"
expect_json "a project key: its project, the endpoint, no switcher" \
    "j.project7d.who === 'project alpha' && j.project7d.endpoint === '$BASE/v1' &&
     j.project7d.projectBox === false && j.project7d.error === ''" "$B"
expect_json "code for curl, Node and Python: chat, streaming, embeddings, this gateway, no key" \
    "['curl', 'Node', 'Python'].every((l) => j.snippets[l].length === 3 &&
        j.snippets[l].every((s) => s.code.includes('$BASE/v1') && !s.code.includes('$KA') &&
                                   s.code.includes('MODELGATE_KEY'))) &&
     j.snippets.curl[1].code.includes('\"stream\": true') &&
     j.snippets.Node[2].code.includes('embeddings.create')" "$B"

# the same questions to the CLI
SINCE=$(json_value "$B" "new URLSearchParams(j.project7d.calls.find((c) => c.startsWith('/v1/usage?') && c.includes('by=day')).split('?')[1]).get('since')")
cli usage --project alpha --by day --since "$SINCE" --tz "$TZ_NAME" --format json \
    >"$MG_T/day.json" 2>>"$MG_T/cli.err"
cli usage --project alpha --by model --since "$SINCE" --tz "$TZ_NAME" --format json \
    >"$MG_T/model.json" 2>>"$MG_T/cli.err"
cli usage --project alpha --by day --since "$SINCE" --tz "$TZ_NAME" --format csv \
    >"$MG_T/day.csv" 2>>"$MG_T/cli.err"
cli catalog --project alpha --format json >"$MG_T/catalog.json" 2>>"$MG_T/cli.err"
cli requests --project alpha --limit 40 --since "$SINCE" --tz "$TZ_NAME" --format json \
    >"$MG_T/requests.json" 2>>"$MG_T/cli.err"
expect_json "7 days in New York: seven days on each chart, the query in the browser's zone" \
    "j.project7d.spend.labels.length === 7 && j.project7d.calls.some((c) => c.includes('tz=America%2FNew_York'))" "$B"
expect_json "the charts' data are the CLI's per-day figures (spend, ok and errors, tokens)" \
    "((b, c) => b.spend.labels.every((d, i) => { const r = c.data.find((x) => x.day === d) || {};
        return b.spend.series[0].values[i] === (r.cost || '0') &&
               b.requests.series[0].values[i] === (r.requests || 0) - (r.errors || 0) &&
               b.requests.series[1].values[i] === (r.errors || 0) &&
               b.tokens.series[0].values[i] === (r.prompt_tokens || 0) &&
               b.tokens.series[1].values[i] === (r.completion_tokens || 0); }) &&
        c.data.length > 0 && c.data.every((r) => b.spend.labels.includes(r.day)))(f[0].project7d, f[1])" \
    "$B" "$MG_T/day.json"
expect_json "the per-day table and the cards are the CLI's" \
    "((b, c) => b.days.length === c.data.length &&
        b.days.every((row, i) => row[0] === c.data[i].day && row[1] === String(c.data[i].requests) &&
                                 row[5] === c.data[i].cost) &&
        b.cards[0] === 'Spend\$' + c.totals.cost)(f[0].project7d, f[1])" "$B" "$MG_T/day.json"
expect_json "the top models by spend are the CLI's by model, dearest first" \
    "((b, c) => b.topModels.length === c.data.length &&
        b.topModels.every((row) => c.data.some((r) => r.model === row[0] && r.cost === row[3])) &&
        b.topModels.every((row, i) => i === 0 || Number(row[3]) <= Number(b.topModels[i - 1][3])))(f[0].project7d, f[1])" \
    "$B" "$MG_T/model.json"
expect_json "the models as chips by provider, with prices per million tokens, as the catalog says" \
    "((b, c) => b.chips.length === c.data.length &&
        c.data.every((m) => b.chips.some((x) => x.id === m.id && x.provider === m.provider &&
            (m.in_catalog ? x.price.includes('\$' + m.prompt_per_million) : /not in the catalog/.test(x.price)))))(f[0].project7d, f[1])" \
    "$B" "$MG_T/catalog.json"
expect_json "the latest requests, 20 a page, then the older ones: the CLI's, in order" \
    "((b, c) => { const all = b.project7d.latest.concat(b.page2);
        return b.project7d.latest.length === 20 && b.page2.length === c.data.length - 20 &&
            all.every((row, i) => row[0] === c.data[i].created_at && row[3] === c.data[i].model &&
                                  row[7] === (c.data[i].cost === null ? '-' : c.data[i].cost)) &&
            b.page2First && deepEq(b.page1Again, b.project7d.latest); })(f[0], f[1])" \
    "$B" "$MG_T/requests.json"
expect_json "the status filter: 5xx shows the one failed request" \
    "j.errorsOnly.length === 1 && j.errorsOnly[0][5] === '502'" "$B"
expect_json "the range picker: today asks for today and shows one day" \
    "j.projectToday.spend.labels.length === 1 &&
     j.projectToday.calls.some((c) => c.includes('by=day') && !c.includes('since=$SINCE'))" "$B"
expect_json "a custom range: from and to (inclusive) become since and until, three days shown" \
    "((c) => c.spend.labels.length === 3 && c.spend.labels[0] === c.from && c.spend.labels[2] === c.to &&
        c.calls.some((u) => u.includes('by=day') && u.includes('since=' + c.from) &&
                            /until=\\d{4}-\\d{2}-\\d{2}/.test(u)))(j.projectCustom)" "$B"
check_eq "the CSV download is modelgate usage --format csv for the same query" \
    "$(json_value "$B" 'j.csvName') $(cmp "$SHOTS/usage.csv" "$MG_T/day.csv" 2>&1 && echo same)" \
    "modelgate-usage.csv same"
expect_json "spend against the cap, the period's end, the rate limit" \
    "/of \\\$2.5/.test(j.project7d.cap) && /period ends/.test(j.project7d.cap) &&
     /600 requests\\/min/.test(j.project7d.cap)" "$B"

cli usage --by project --since "$SINCE" --tz "$TZ_NAME" --format json >"$MG_T/all.json" 2>>"$MG_T/cli.err"
expect_json "an admin key: the switcher with every project, all projects' totals, the reconciliation" \
    "((b, c) => deepEq(b.projects, ['', 'alpha', 'beta']) && b.projectBox &&
        b.cards[1] === 'Requests' + c.totals.requests.toLocaleString('en-US') &&
        /Reconciled through/.test(b.recon))(f[0].adminAll, f[1])" "$B" "$MG_T/all.json"
expect_json "then beta alone: its two requests, its models" \
    "j.adminBeta.cards[1] === 'Requests2' && j.adminBeta.calls.some((c) => c.includes('project=beta'))" "$B"
expect_json "a model named like HTML shows as text, runs nothing" \
    "j.project7d.xss === null && j.project7d.imgsInModels === 0 &&
     j.project7d.chips.some((c) => c.id === '$XSS_MODEL')" "$B"
expect_json "a key revoked while signed in: back to sign-in with a message, the key forgotten" \
    "/no longer accepted/.test(j.revokedWhileIn.signin) && j.revokedWhileIn.session.length === 0" "$B"
check "screenshots saved" test -s "$SHOTS/dashboard-project.png" -a -s "$SHOTS/dashboard-admin.png"
check "no key in the log" bash -c '! grep -q -e "$1" -e "$2" "$3"' _ "$KA" "$ADMIN" "$MG_T/modelgate.log"

tap_done
