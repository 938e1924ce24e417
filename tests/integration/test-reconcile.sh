#!/usr/bin/env bash
# test-reconcile.sh -- every recorded cost checked against what the upstream
# billed, behind lighttpd with a real Postgres and the mock upstream
# (which, like OpenRouter, does not know a generation for a while after it
# ends, bills a cut stream for the tokens sent before the cut, and can bill
# something else than the cost its answer carried):
#
#   1. a mixed run: plain and streamed chats, a chat whose answer carried no
#      cost (priced from the catalog), chats whose answer under- and
#      over-stated the bill, a client that left mid-stream, embeddings, and
#      an upstream error (no generation id);
#   2. the responders' upkeep (two processes at once) looks the
#      generations up until none is due: every row's charge (its cost plus
#      its adjustments) equals what the mock billed, to the last digit;
#      each project's spent equals its rows plus adjustments; the report's
#      cost too, before and after the rollups are folded; each row was
#      adjusted at most once, and a second pass changes nothing;
#   3. adjustments cannot be changed or deleted;
#   4. an upstream without a per-generation API: the waiting rows become
#      unsupported at once, with one log line.
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

mg_stack_test reconcile

PROVIDER_KEY=sk-or-provider-RECON321
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY

mg_fresh_db modelgate_reconcile

# the mock does not know a generation until 3 s after it ended: the
# first lookup (1 to 2 s after the settlement) finds nothing, the next
# one (10 s later) finds it
start_mock --require-key "$PROVIDER_KEY" --generation-delay-ms 3000 \
    >"$MG_T/start-mock.txt" 2>&1 || bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"

CONF=$MG_T/modelgate.conf
mg_conf_write "$CONF" LOG_FILE="$MG_T/modelgate.log" RECON_MAX_RPS=20 RECON_VERIFY=all ||
    bail "configuration written" "$CONF"

recon_db "$CONF"

if start_responders main "$CONF" 2 >"$MG_T/stack-main.txt" 2>&1 &&
    start_server main "$STACK_SOCK" >>"$MG_T/stack-main.txt" 2>&1; then
    BASE=http://127.0.0.1:$SERVER_PORT
    tap_ok "stack up: lighttpd on $SERVER_PORT, two responders reconciling"
else
    bail "the stack starts" "$(cat "$MG_T/stack-main.txt")"
fi

# ---------------------------------------------------------------------------
# 1. The mixed run, with reconcile.verify = "all": every generation is
# looked up, the answers' own costs too.

chat "$KA" "mock/plain"
check_eq "a plain chat: 200" "$HTTP_STATUS" 200
chat "$KA" "mock/stream" true
check_eq "a streamed chat: 200" "$HTTP_STATUS" 200
chat "$KA" "mock/nocost;nocost=1"
check_eq "a chat whose answer carries no cost: 200" "$HTTP_STATUS" 200
chat "$KA" "mock/under;billed=400"
check_eq "a chat billed 4 times what its answer said: 200" "$HTTP_STATUS" 200
chat "$KB" "mock/over;billed=50" true
check_eq "a stream billed half what its answer said: 200" "$HTTP_STATUS" 200
MG_HTTP_MAX_TIME=1 chat "$KB" "mock/cut;tokens=40;delay=200" true
check "a client leaving a stream after a second ($HTTP_STATUS)" test "$HTTP_STATUS" != 500
http POST "$BASE/v1/embeddings" -H "Authorization: Bearer $KB" -H 'Content-Type: application/json' \
    --data '{"model": "mock/embed", "input": ["one two three", "four"]}'
check_eq "embeddings: 200" "$HTTP_STATUS" 200
chat "$KA" "mock/broken;fail=500"
check_eq "an upstream error: 502 to the client" "$HTTP_STATUS" 502

settled || bail "the requests settle"
check_eq "eight usage rows, the upstream error's without a generation id (no_id)" \
    "$(sql_now "SELECT count(*) || ' ' || string_agg(recon_state, ',') FILTER (WHERE upstream_id IS NULL)
                  FROM usage_events")" "8 no_id"

# ---------------------------------------------------------------------------
# 2. The upkeep looks the generations up.

for ((i = 0; i < 300; i++)); do
    [ "$(sql_now "SELECT mg_recon_waiting()")" = 0 ] &&
        break
    sleep 0.1
done
check_eq "no row is left waiting (within 30 s)" \
    "$(sql_now 'SELECT mg_recon_waiting()')" 0
check_eq "the first lookups found nothing (404 for 3 s): each row was retried once" \
    "$(sql_now "SELECT string_agg(DISTINCT recon_tries::text, ',') FROM usage_events
                 WHERE upstream_id IS NOT NULL")" 1

# the mock's bill of every generation
billed_table "$PROVIDER_KEY" || bail "the mock's bills"
check_eq "every row with an id: its cost plus its adjustments equals the mock's bill exactly" \
    "$(billed_rows)" "7/7"
check_eq "rows by state" \
    "$(sql_now "SELECT string_agg(recon_state || ' ' || n, ', ' ORDER BY recon_state)
                  FROM (SELECT recon_state, count(*) AS n FROM usage_events GROUP BY 1) s")" \
    "adjusted 4, confirmed 3, no_id 1"
check_eq "under- and over-stated: billed 4 and 0.5 times what they were charged" \
    "$(sql_now "SELECT string_agg(u.model || ' ' || (a.upstream / a.recorded)::numeric(10, 2), ', '
                                  ORDER BY u.model)
                  FROM usage_adjustments a JOIN usage_events u USING (request_id, created_at)
                 WHERE u.model IN ('mock/under;billed=400', 'mock/over;billed=50')")" \
    "mock/over;billed=50 0.50, mock/under;billed=400 4.00"
check_eq "each project's spent equals its rows' costs plus their adjustments" \
    "$(spent_off)" 0
charged=$(sql_now "SELECT trim_scale((SELECT sum(cost) FROM usage_events)
                                     + (SELECT sum(amount) FROM usage_adjustments))")
cli usage --since today --format json >"$MG_T/usage.json" 2>"$MG_T/cli.err"
check_eq "the usage report's cost is the rows' plus the adjustments ($charged)" \
    "$(json_value "$MG_T/usage.json" 'j.totals.cost')" "$charged"
sql_now "SELECT mg_rollup_compact(now() + interval '1 hour', interval '0')" >/dev/null
cli usage --since today --format json >"$MG_T/usage-folded.json" 2>"$MG_T/cli.err"
check_eq "the same once the rollups are folded" \
    "$(json_value "$MG_T/usage-folded.json" 'j.totals.cost')" "$charged"
check_eq "no row was adjusted twice (two processes reconciling at once)" \
    "$(sql_now "SELECT count(*) FROM (SELECT request_id FROM usage_adjustments
                                       GROUP BY request_id HAVING count(*) > 1) d")" 0
before=$(sql_now "SELECT count(*) || ' ' || sum(amount) FROM usage_adjustments")
out=$(sql_now "SELECT string_agg((mg_recon_apply(u.request_id, u.created_at, b.billed)).state, ',')
                 FROM usage_events u JOIN test_billed b USING (upstream_id)
                WHERE u.recon_state = 'adjusted'")
check_eq "a second pass over the adjusted rows changes nothing" \
    "$out $(sql_now "SELECT count(*) || ' ' || sum(amount) FROM usage_adjustments")" \
    "adjusted,adjusted,adjusted,adjusted $before"

# A responder killed mid-stream: the generation id was kept with the
# pending row as soon as the stream started, so the reaper's charge (the
# whole reservation) is checked against the bill of the tokens sent before
# the kill.
curl -sS -N --max-time 30 -o /dev/null "$BASE/v1/chat/completions" -H "Authorization: Bearer $KB" \
    -H 'Content-Type: application/json' \
    --data '{"model": "mock/killed;tokens=100;delay=100", "stream": true, "messages": [{"role": "user", "content": "go on"}]}' \
    2>/dev/null &
CURL_PID=$!
for ((i = 0; i < 100; i++)); do
    [ -n "$(sql_now "SELECT upstream_id FROM usage_events WHERE model LIKE 'mock/killed%'")" ] && break
    sleep 0.1
done
check_eq "mid-stream, the pending row has its generation id already" \
    "$(sql_now "SELECT (upstream_id LIKE 'gen-%') || ' ' || (settled_at IS NULL)
                  FROM usage_events WHERE model LIKE 'mock/killed%'")" "true true"
sleep 0.5
kill -KILL "${RESPONDER_PIDS[@]}" 2>/dev/null
wait "$CURL_PID" 2>/dev/null
check_eq "the responders killed, the reaper charges the reservation and schedules a lookup" \
    "$(sql_now "SELECT mg_reap(0); SELECT cost_source || ' ' || (recon_next_at IS NOT NULL)
                  FROM usage_events WHERE model LIKE 'mock/killed%'" | tail -n 1)" "reserved true"
start_responders main "$CONF" 2 >"$MG_T/stack-main-k.txt" 2>&1 ||
    bail "the responders restart" "$(cat "$MG_T/stack-main-k.txt")"
for ((i = 0; i < 300; i++)); do
    [ "$(sql_now "SELECT mg_recon_waiting()")" = 0 ] &&
        break
    sleep 0.1
done
curl -sS --max-time 5 -H "Authorization: Bearer $PROVIDER_KEY" \
    "$MOCK_URL/api/v1/generation?id=$(sql_now "SELECT upstream_id FROM usage_events
                                                WHERE model LIKE 'mock/killed%'")" \
    >"$MG_T/gen-killed.json" || bail "GET /generation of the killed stream"
check_eq "the reaped row ends charged what the mock billed for the tokens it sent" \
    "$(sql_now "SELECT u.recon_state || ' ' || (u.cost + coalesce(a.amount, 0) = :'billed')
                       || ' ' || (u.cost > :'billed')
                  FROM usage_events u LEFT JOIN usage_adjustments a USING (request_id, created_at)
                 WHERE u.model LIKE 'mock/killed%'" \
        -v billed="$(json_value "$MG_T/gen-killed.json" 'j.data.total_cost')")" "adjusted true true"

# With reconcile.verify = "needed" (the default) an answer's own cost is
# taken at its word; one without a cost is looked up.
stop_responders
mg_conf_write "$CONF" LOG_FILE="$MG_T/modelgate.log" RECON_MAX_RPS=20 ||
    bail "configuration written" "$CONF"
start_responders main "$CONF" 2 >"$MG_T/stack-main2.txt" 2>&1 ||
    bail "the responders restart" "$(cat "$MG_T/stack-main2.txt")"
chat "$KA" "mock/needed-plain"
chat "$KA" "mock/needed-nocost;nocost=1"
settled || bail "the requests settle"
check_eq "verify = needed: the answer with a cost is not looked up, the other is" \
    "$(sql_now "SELECT mg_recon_dequeue();
                SELECT string_agg(model || ' ' || (recon_next_at IS NOT NULL OR recon_tries > 0),
                                  ', ' ORDER BY model)
                  FROM usage_events WHERE model LIKE 'mock/needed%'" | tail -n 1)" \
    "mock/needed-nocost;nocost=1 true, mock/needed-plain false"

# `modelgate reconcile run`: a pass now, from the command line (the
# responders stopped; the row made due at once)
stop_responders
sleep 3   # the mock knows the generation by now
sql_now "UPDATE usage_events SET recon_next_at = now() WHERE model = 'mock/needed-nocost;nocost=1'"
out=$(cli reconcile run 2>>"$MG_T/cli.err")
check_eq "reconcile run looks the row up and adjusts it" "$out" \
    "looked up 1 generations: 0 confirmed, 1 adjusted, 0 not known yet (looked up again later), 0 missing upstream, 0 without an answer (again later); 0 rows unsupported"
out=$(cli reconcile run 2>>"$MG_T/cli.err")
check_eq "a second run finds nothing to do" "$out" \
    "looked up 0 generations: 0 confirmed, 0 adjusted, 0 not known yet (looked up again later), 0 missing upstream, 0 without an answer (again later); 0 rows unsupported"

# Settlement queues a batch's lookups in one row (recon_queue) and leaves
# the usage row's indexed recon_next_at as it is; the upkeep schedules
# them, even with reconciliation off (reconcile.max_rps = 0): the
# compaction, every 2 s, drains the queue.
mg_conf_write "$CONF" LOG_FILE="$MG_T/modelgate.log" RECON_MAX_RPS=0 ||
    bail "configuration written" "$CONF"
start_responders main "$CONF" 1 >"$MG_T/stack-main-q.txt" 2>&1 ||
    bail "the responders restart" "$(cat "$MG_T/stack-main-q.txt")"
sleep 4   # past the first compaction
chat "$KA" "mock/queued;nocost=1"
settled || bail "the request settles"
check_eq "settled: queued for its lookup, recon_next_at untouched, counted as waiting" \
    "$(sql_now "SELECT (SELECT count(*) FROM recon_queue q, usage_events u
                         WHERE u.request_id = ANY (q.request_ids) AND u.model = 'mock/queued;nocost=1')
                       || ' ' || (SELECT count(*) FROM usage_events
                                   WHERE model = 'mock/queued;nocost=1' AND recon_next_at IS NULL)
                       || ' ' || mg_recon_waiting()
                       || ' ' || (mg_recon_watermark() <= (SELECT created_at FROM usage_events
                                                           WHERE model = 'mock/queued;nocost=1'))")" \
    "1 1 1 true"
for ((i = 0; i < 150; i++)); do
    [ "$(sql_now "SELECT count(*) FROM recon_queue")" = 0 ] && break
    sleep 0.1
done
check_eq "the upkeep's compaction schedules it without reconciling (within 15 s)" \
    "$(sql_now "SELECT (SELECT count(*) FROM recon_queue) || ' ' || recon_state || ' '
                       || (recon_next_at IS NOT NULL) || ' ' || recon_tries || ' ' || mg_recon_waiting()
                  FROM usage_events WHERE model = 'mock/queued;nocost=1'")" "0 recorded true 0 1"
stop_responders
sleep 3   # the mock knows the generation by now
cli reconcile run >/dev/null 2>>"$MG_T/cli.err"
check_eq "reconcile run then looks it up: nothing waits" \
    "$(sql_now "SELECT (recon_state IN ('confirmed', 'adjusted')) || ' ' || mg_recon_waiting()
                  FROM usage_events WHERE model = 'mock/queued;nocost=1'")" "true 0"

# ---------------------------------------------------------------------------
# 3. Appended only.

out=$(sql_now "UPDATE usage_adjustments SET amount = 1" 2>&1)
check "an adjustment cannot be changed ($out)" grep -q 'appended only' <<<"$out"
out=$(sql_now "DELETE FROM usage_adjustments" 2>&1)
check "nor deleted ($out)" grep -q 'appended only' <<<"$out"

# ---------------------------------------------------------------------------
# 4. An upstream without /generation.

stop_responders
kill "$MOCK_PID" 2>/dev/null
wait "$MOCK_PID" 2>/dev/null
MOCK_PID=
start_mock --require-key "$PROVIDER_KEY" --generation-api 0 \
    >"$MG_T/start-mock2.txt" 2>&1 || bail "mock upstream restarts" "$(cat "$MG_T/start-mock2.txt")"
mg_conf_write "$CONF" LOG_FILE="$MG_T/modelgate.log" RECON_MAX_RPS=20 ||
    bail "configuration written" "$CONF"
start_responders main "$CONF" 2 >"$MG_T/stack-main3.txt" 2>&1 ||
    bail "the responders restart" "$(cat "$MG_T/stack-main3.txt")"
stop_servers
start_server main "$STACK_SOCK" >>"$MG_T/stack-main3.txt" 2>&1 ||
    bail "lighttpd restarts" "$(cat "$MG_T/stack-main3.txt")"
BASE=http://127.0.0.1:$SERVER_PORT
for m in "mock/a;nocost=1" "mock/b;nocost=1" "mock/c;nocost=1"; do
    chat "$KA" "$m"
done
for ((i = 0; i < 100; i++)); do
    [ "$(sql_now "SELECT count(*) FROM usage_events WHERE recon_state = 'unsupported'")" = 3 ] &&
        break
    sleep 0.1
done
check_eq "without /generation, the three new rows are unsupported at once" \
    "$(sql_now "SELECT string_agg(model, ',' ORDER BY model) FROM usage_events
                 WHERE recon_state = 'unsupported'")" \
    "mock/a;nocost=1,mock/b;nocost=1,mock/c;nocost=1"
check_eq "none of them waits for another lookup" \
    "$(sql_now "SELECT mg_recon_waiting()")" 0
check "one log line a process says so" \
    bash -c '[ "$(grep -c "no per-generation API" "$1")" -le 2 ] &&
             [ "$(grep -c "no per-generation API" "$1")" -ge 1 ]' _ "$MG_T/modelgate.log"

# ---------------------------------------------------------------------------
# 5. `modelgate reconcile`: per UTC day and model, from the query layer.

settled || bail "the requests settle"
cli reconcile --since today --format json >"$MG_T/recon.json" 2>"$MG_T/cli.err" ||
    bail "modelgate reconcile" "$(cat "$MG_T/cli.err")"
check_eq "reconcile: totals charged = rows + adjustments, and the rows by state" \
    "$(json_value "$MG_T/recon.json" 'j.totals.requests + " " + j.totals.charged + " " +
        Object.entries(j.totals.states).map((e) => e.join("=")).join(",")')" \
    "$(sql_now "SELECT count(*) || ' ' || trim_scale(sum(u.cost) + coalesce(sum(a.amount), 0))
                       || ' recorded=' || count(*) FILTER (WHERE recon_state = 'recorded')
                       || ',confirmed=' || count(*) FILTER (WHERE recon_state = 'confirmed')
                       || ',adjusted=' || count(*) FILTER (WHERE recon_state = 'adjusted')
                       || ',missing_upstream=0'
                       || ',no_id=' || count(*) FILTER (WHERE recon_state = 'no_id')
                       || ',unsupported=' || count(*) FILTER (WHERE recon_state = 'unsupported')
                  FROM usage_events u LEFT JOIN usage_adjustments a USING (request_id, created_at)")"
check_eq "reconcile: one line per model, nothing left unmatched, reconciled through now" \
    "$(json_value "$MG_T/recon.json" 'j.data.length + " " + j.unmatched.length + " " +
        (Date.parse(j.reconciled_through) > Date.now() - 60000)')" \
    "$(sql_now "SELECT count(DISTINCT model) FROM usage_events") 0 true"
cli reconcile --since today >"$MG_T/recon.txt" 2>"$MG_T/cli.err"
check "reconcile: a table with a totals line and the watermark" \
    bash -c 'grep -q "^reconciliation from " "$1" && grep -q "^total " "$1" &&
             grep -q "^reconciled through " "$1"' _ "$MG_T/recon.txt"
ADMIN=$(cli admin-key create --name ops 2>"$MG_T/key.err") ||
    bail "admin-key create" "$(cat "$MG_T/key.err")"
http GET "$BASE/v1/usage/reconciliation?since=today" -H "Authorization: Bearer $ADMIN"
cp "$MG_T/last.body" "$MG_T/recon-http.json"
cli reconcile --since today --format json >"$MG_T/recon-now.json" 2>"$MG_T/cli.err"
# (with nothing left to check, the watermark is the time of the call)
expect_json "GET /v1/usage/reconciliation with an admin key: the CLI's object" \
    'Math.abs(Date.parse(f[0].reconciled_through) - Date.parse(f[1].reconciled_through)) < 5000 &&
     (delete f[0].reconciled_through) && (delete f[1].reconciled_through) &&
     deepEq(f[0], f[1]) && f[0].object === "reconciliation"' \
    "$MG_T/recon-http.json" "$MG_T/recon-now.json"
http GET "$BASE/v1/usage/reconciliation" -H "Authorization: Bearer $KA"
expect_http "a project key: 403, the account is every project's" 403 \
    'isErr(j, "admin_key_required")'
out=$(cli reconcile --since today --until yesterday 2>&1)
check "reconcile: since after until is refused ($out)" grep -q "is not before" <<<"$out"

tap_done
