#!/usr/bin/env bash
# test-reconcile-close.sh -- the bill reconciled by the responders of two
# separate pools at once, through a Postgres outage, then the daily close
# against the mock upstream's activity and credits:
#
#   1. a mixed run behind lighttpd (plain and streamed chats, answers
#      that under- and over-stated the bill, a client leaving mid-stream,
#      embeddings, an upstream error) served by a pool that does not
#      reconcile;
#   2. two more pools (two processes each, as on two hosts) look the
#      generations up at once; Postgres is stopped in the middle of their
#      passes and started again: nothing is lost, every row ends charged
#      exactly what the mock billed, no row is adjusted twice, each
#      project's spent equals its rows plus their adjustments, and a
#      second pass has nothing to do;
#   3. `modelgate reconcile close` closes today against GET /activity
#      (only the gateway's provider key) and GET /credits: no difference
#      per model; the account's difference is exactly the spend of
#      another key the mock billed;
#   4. the responders close the past days by themselves once due, one
#      process per day; a model billed only upstream shows as a
#      difference; the closes appear in `modelgate reconcile`;
#   5. without a management key the close says what is missing; with the
#      provider key in its place the upstream's 403 is reported.
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

mg_lib_init reconcile-close

MG_DB=
DB_CREATED=0
MOCK_PID=
MG_SERVER=lighttpd
PG_STOPPED=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    if [ "$PG_STOPPED" = 1 ]; then
        # so that the test database can be dropped
        pg_ctlcluster "$PGVERSION" regress start >/dev/null 2>&1
    fi
    stop_stack
    wait 2>/dev/null
    mg_finish "$rc"
}
mg_traps cleanup

# The cluster pg_virtualenv made for this run, which this test may stop
# (see test-quota-hosts.sh).
if ! { [ -n "${MG_IT_UNDER_PG_VIRTUALENV:-}" ] && [ -n "${PGVERSION:-}" ] &&
    [ -n "${PG_CLUSTER_CONF_ROOT:-}" ] &&
    [ -f "$PG_CLUSTER_CONF_ROOT/$PGVERSION/regress/.by_pg_virtualenv" ] &&
    [ "$(pg_conftool -s "$PGVERSION" regress show port 2>/dev/null)" = "$PGPORT" ]; }; then
    if [ "${MG_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        printf 'Bail out! not a Postgres of pg_virtualenv: this test stops it\n'
        exit 99
    fi
    printf '1..0 # SKIP needs a Postgres of its own (pg_virtualenv) to stop\n'
    exit 77
fi

PROVIDER_KEY=sk-or-provider-CLOSE987
MGMT_KEY=sk-or-mgmt-CLOSE654
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY
printf '%s\n' "$MGMT_KEY" >"$MG_T/mgmt.key"
chmod 0644 "$MG_T/mgmt.key"

mg_fresh_db modelgate_close

# the mock does not know a generation until 1.5 s after it ended
start_mock --require-key "$PROVIDER_KEY" --management-key "$MGMT_KEY" \
    --generation-delay-ms 1500 >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"

# serve.conf: the pool behind lighttpd, which does not reconcile;
# rec.conf: the pools that do, one lookup a second per process, and close
# every past day as soon as it is due (close_after 0)
SERVE=$MG_T/serve.conf
REC=$MG_T/rec.conf
mg_conf_write "$SERVE" LOG_FILE="$MG_T/serve.log" RECON_VERIFY=all ||
    bail "configuration written" "$SERVE"
mg_conf_write "$REC" LOG_FILE="$MG_T/rec.log" RECON_VERIFY=all RECON_MAX_RPS=1 \
    MANAGEMENT_KEY_FILE="$MG_T/mgmt.key" CLOSE_AFTER=0 || bail "configuration written" "$REC"

recon_db "$REC"

if start_responders serve "$SERVE" 2 >"$MG_T/stack-serve.txt" 2>&1 &&
    start_server serve "$STACK_SOCK" >>"$MG_T/stack-serve.txt" 2>&1; then
    BASE=http://127.0.0.1:$SERVER_PORT
    tap_ok "stack up: lighttpd on $SERVER_PORT, two responders that do not reconcile"
else
    bail "the stack starts" "$(cat "$MG_T/stack-serve.txt")"
fi

# waiting: the rows still waiting for a lookup.
waiting() {
    sql_now 'SELECT mg_recon_waiting()'
}

# ---------------------------------------------------------------------------
# 1. The mixed run.

statuses=()
for i in 1 2 3 4 5 6; do
    chat "$KA" "mock/plain-$((i % 3))"
    statuses+=("$HTTP_STATUS")
    chat "$KB" "mock/stream-$((i % 2))" true
    statuses+=("$HTTP_STATUS")
    chat "$KA" "mock/under;billed=300"
    statuses+=("$HTTP_STATUS")
    chat "$KB" "mock/over;billed=40" true
    statuses+=("$HTTP_STATUS")
    http POST "$BASE/v1/embeddings" -H "Authorization: Bearer $KB" \
        -H 'Content-Type: application/json' \
        --data '{"model": "mock/embed", "input": ["one two three", "four"]}'
    statuses+=("$HTTP_STATUS")
done
check_eq "30 chats, streams and embeddings: all 200" \
    "$(printf '%s\n' "${statuses[@]}" | sort | uniq -c | awk '{print $1 " " $2}')" "30 200"
for i in 1 2; do
    MG_HTTP_MAX_TIME=1 chat "$KB" "mock/cut-$i;tokens=40;delay=200" true
    check "a client leaving a stream after a second ($HTTP_STATUS)" test "$HTTP_STATUS" != 500
done
chat "$KA" "mock/broken;fail=500"
check_eq "an upstream error: 502 to the client" "$HTTP_STATUS" 502
settled || bail "the requests settle"
TOTAL=$(sql_now "SELECT count(*) FROM usage_events WHERE upstream_id IS NOT NULL")
check_eq "33 usage rows, 32 with a generation id, all waiting for a lookup" \
    "$(sql_now "SELECT count(*) FROM usage_events") $TOTAL $(waiting)" "33 32 32"

# ---------------------------------------------------------------------------
# 2. Two pools reconciling at once, Postgres stopped mid-pass.

sleep 2   # the mock knows every generation by now: each lookup finds it
if start_responders recA "$REC" 2 >"$MG_T/stack-recA.txt" 2>&1 &&
    start_responders recB "$REC" 2 >"$MG_T/stack-recB.txt" 2>&1; then
    tap_ok "two pools of two responders each reconciling (1 lookup a second each)"
else
    bail "the reconciling pools start" "$(cat "$MG_T/stack-recA.txt" "$MG_T/stack-recB.txt")"
fi
for ((i = 0; i < 200; i++)); do
    [ "$(waiting)" -le $((TOTAL - 4)) ] && break
    sleep 0.05
done
if out=$(pg_ctlcluster "$PGVERSION" regress stop -m fast 2>&1); then
    PG_STOPPED=1
    tap_ok "Postgres stopped in the middle of the passes"
else
    bail "pg_ctlcluster $PGVERSION regress stop" "$out"
fi
sleep 3
if out=$(pg_ctlcluster "$PGVERSION" regress start 2>&1); then
    PG_STOPPED=0
else
    bail "pg_ctlcluster $PGVERSION regress start" "$out"
fi
left=$(waiting)
check "some rows were checked before the stop, some were left ($left of $TOTAL)" \
    test "$left" -gt 0 -a "$left" -lt "$TOTAL"
check "the responders said Postgres was gone" grep -q "reconciliation: " "$MG_T/rec.log"
# rows leased by a pass that Postgres interrupted come back after the
# lease (60 s)
for ((i = 0; i < 1000; i++)); do
    [ "$(waiting)" = 0 ] && break
    sleep 0.1
done
check_eq "after the outage every row is checked (within 100 s)" "$(waiting)" 0
curl -sS --max-time 5 "$MOCK_URL/__mock/stats" >"$MG_T/stats.json" || bail "mock stats"
LOOKUPS=$(json_value "$MG_T/stats.json" 'j.generations')
check "the lookups: at least one a generation, none lost to the outage ($LOOKUPS)" \
    test "$LOOKUPS" -ge "$TOTAL"
check_eq "rows by state" \
    "$(sql_now "SELECT string_agg(recon_state || ' ' || n, ', ' ORDER BY recon_state)
                  FROM (SELECT recon_state, count(*) AS n FROM usage_events GROUP BY 1) s")" \
    "adjusted 14, confirmed 18, no_id 1"

# the mock's bill of every generation
billed_table "$PROVIDER_KEY" || bail "the mock's bills"
check_eq "every row ends charged exactly what the mock billed for it" \
    "$(billed_rows)" "$TOTAL/$TOTAL"
check_eq "one adjustment per adjusted row, none twice (four processes, two pools)" \
    "$(sql_now "SELECT count(*) || ' ' || count(DISTINCT request_id) FROM usage_adjustments")" \
    "$(sql_now "SELECT n || ' ' || n FROM (SELECT count(*) AS n FROM usage_events
                                          WHERE recon_state = 'adjusted') s")"
check_eq "each project's spent equals its rows' costs plus their adjustments" \
    "$(spent_off)" 0
ADJ=$(sql_now "SELECT count(*) || ' adjustments, ' || trim_scale(sum(amount)) || ' USD'
                 FROM usage_adjustments")
stop_responders
out=$(cli reconcile run 2>&1)
check_eq "a second pass has nothing to do" "$out" \
    "looked up 0 generations: 0 confirmed, 0 adjusted, 0 not known yet (looked up again later), 0 missing upstream, 0 without an answer (again later); 0 rows unsupported"
check_eq "and the adjustments are as they were ($ADJ)" \
    "$(sql_now "SELECT count(*) || ' adjustments, ' || trim_scale(sum(amount)) || ' USD'
                 FROM usage_adjustments")" "$ADJ"

# ---------------------------------------------------------------------------
# 3. The daily close of today, from the command line.

TODAY=$(date -u +%Y-%m-%d)
YESTERDAY=$(date -u -d yesterday +%Y-%m-%d)
# another key of the same account spent 0.0123 USD today: the account's
# credits count it, the gateway's key's activity does not
curl -sS --max-time 5 -X POST "$MOCK_URL/__mock/bill" -H 'Content-Type: application/json' \
    --data '{"model": "other/app", "cost": "0.0123", "prompt_tokens": 10, "completion_tokens": 5, "key": "sk-or-someone-else"}' \
    >"$MG_T/bill.json" || bail "POST /__mock/bill"
out=$(cli reconcile close --day "$TODAY" 2>&1)
CHARGED=$(sql_now "SELECT trim_scale((SELECT sum(cost) FROM usage_events)
                                     + (SELECT sum(amount) FROM usage_adjustments))")
check_eq "reconcile close: the day's charge equals the upstream's bill" "$out" \
    "closed $TODAY: the gateway charged $CHARGED USD, the upstream billed $CHARGED USD: difference 0 USD
account: the upstream billed $(sql_now "SELECT trim_scale($CHARGED + 0.0123)") USD in all, the gateway charged $CHARGED USD: difference 0.0123 USD
per model: modelgate reconcile --since $TODAY"
check_eq "the close's rows: every model of the day, each with no difference" \
    "$(sql_now "SELECT count(*) || ' ' || count(*) FILTER (WHERE difference = 0)
                       || ' ' || bool_and(requests = upstream_requests)
                  FROM recon_closes WHERE day = '$TODAY' AND model <> ''")" \
    "$(sql_now "SELECT n || ' ' || n || ' true' FROM (SELECT count(DISTINCT model) AS n
                                                         FROM usage_events) s")"
cli reconcile --since today --format json >"$MG_T/recon.json" 2>"$MG_T/cli.err" ||
    bail "modelgate reconcile" "$(cat "$MG_T/cli.err")"
expect_json "reconcile: upstream and difference per model, the total difference 0, the account" \
    'j.data.every((d) => d.model === "mock/broken;fail=500" ?
                         d.upstream === "0" && d.difference === "0" :
                         d.upstream === d.charged && d.difference === "0") &&
     j.totals.difference === "0" && j.account.difference === "0.0123" &&
     j.account.day === "'"$TODAY"'"' "$MG_T/recon.json"
cli reconcile close --day "$TODAY" --json >"$MG_T/close2.json" 2>"$MG_T/cli.err"
expect_json "closing again adds a close; the report reads the latest" \
    'j.object === "reconciliation.close" && j.totals.difference === "0"' "$MG_T/close2.json"
out=$(cli reconcile close --day 2026-1-5 2>&1)
check "reconcile close: a malformed day is refused ($out)" grep -q "YYYY-MM-DD" <<<"$out"

# ---------------------------------------------------------------------------
# 4. The responders close the past days by themselves.

if [ "${TODAY#*-*-}" = 01 ]; then
    tap_skip "the responders close yesterday" "today is the first of a month: the gateway \
counted nothing before it"
else
    # the upstream billed yesterday a model the gateway never counted
    curl -sS --max-time 5 -X POST "$MOCK_URL/__mock/bill" -H 'Content-Type: application/json' \
        --data '{"model": "mock/elsewhere", "cost": "0.5", "prompt_tokens": 1, "completion_tokens": 1, "key": "'"$PROVIDER_KEY"'", "date": "'"$YESTERDAY"'"}' \
        >"$MG_T/bill.json" || bail "POST /__mock/bill"
    sql_now "SELECT mg_rollup_compact(now() + interval '1 hour', interval '0')" >/dev/null
    start_responders recA "$REC" 2 >"$MG_T/stack-recA2.txt" 2>&1 &&
        start_responders recB "$REC" 2 >>"$MG_T/stack-recA2.txt" 2>&1 ||
        bail "the reconciling pools restart" "$(cat "$MG_T/stack-recA2.txt")"
    for ((i = 0; i < 200; i++)); do
        [ "$(sql_now "SELECT count(*) FROM recon_close_runs
                       WHERE day = '$YESTERDAY' AND closed_at IS NOT NULL")" = 1 ] && break
        sleep 0.1
    done
    check_eq "the responders closed every past day of the month once, today not" \
        "$(sql_now "SELECT count(*) || ' ' || count(DISTINCT day) || ' ' || max(day)
                      FROM recon_close_runs WHERE day < '$TODAY' AND closed_at IS NOT NULL")" \
        "$(sql_now "SELECT n || ' ' || n || ' $YESTERDAY'
                      FROM (SELECT '$TODAY'::date - date_trunc('month', '$TODAY'::date)::date AS n) s")"
    check_eq "yesterday's close: the model billed only upstream is a difference" \
        "$(sql_now "SELECT string_agg(model || ' ' || trim_scale(upstream) || ' '
                                      || trim_scale(difference), ',')
                      FROM recon_closes WHERE day = '$YESTERDAY' AND model <> ''")" \
        "mock/elsewhere 0.5 0.5"
    check_eq "each day was closed by one process (one close per day)" \
        "$(sql_now "SELECT count(*) FROM (SELECT day FROM recon_closes WHERE model = ''
                      AND day < '$TODAY' GROUP BY day HAVING count(*) > 1) d")" 0
    check "the close is in the log" grep -q "daily close of $YESTERDAY recorded" "$MG_T/rec.log"
    cli reconcile --since "$YESTERDAY" --until "$YESTERDAY"T23:59:59Z --format json \
        >"$MG_T/recon-y.json" 2>"$MG_T/cli.err"
    expect_json "reconcile shows it: no request, billed upstream" \
        'j.data.length === 1 && j.data[0].model === "mock/elsewhere" &&
         j.data[0].requests === 0 && j.data[0].upstream === "0.5" &&
         j.data[0].difference === "0.5"' "$MG_T/recon-y.json"
    stop_responders
fi
# due once close_after has passed since the day's end; then taken by one
# caller until its lease ends (tomorrow, seen from the day after)
TOMORROW=$(date -u -d tomorrow +%Y-%m-%d)
AT="date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '2 days 30 minutes'"
check_eq "a day is due only once close_after has passed since its end" \
    "$(sql_now "SELECT (SELECT count(*) FROM mg_recon_close_due('31 minutes', $AT)) || ' '
                       || (SELECT string_agg(d::text, ',') FROM mg_recon_close_due('29 minutes', $AT) d)")" \
    "0 $TOMORROW"
check_eq "a day due is claimed by one caller at a time" \
    "$(sql_now "SELECT coalesce(mg_recon_close_claim('29 minutes', '10 minutes', $AT)::text, '-')
                       || ' ' || coalesce(mg_recon_close_claim('29 minutes', '10 minutes', $AT)::text, '-')")" \
    "$TOMORROW -"

# ---------------------------------------------------------------------------
# 5. Without a management key; with a key that is not one.

mg_conf_write "$MG_T/nokey.conf" LOG_FILE="$MG_T/nokey.log" || bail "configuration written"
out=$("$CLI" -c "$MG_T/nokey.conf" --sql-dir "$MG_SRCDIR/sql" reconcile close 2>&1)
check "no management key: the close says which setting is missing ($out)" \
    grep -q "upstream.management_key_file" <<<"$out"
printf '%s\n' "$PROVIDER_KEY" >"$MG_T/wrong.key"
mg_conf_write "$MG_T/wrong.conf" LOG_FILE="$MG_T/wrong.log" MANAGEMENT_KEY_FILE="$MG_T/wrong.key" ||
    bail "configuration written"
out=$("$CLI" -c "$MG_T/wrong.conf" --sql-dir "$MG_SRCDIR/sql" reconcile close 2>&1)
check "the provider key in its place: the upstream's 403, and no key in the message ($out)" \
    bash -c 'grep -q "answered 403" <<<"$1" && ! grep -q "$2" <<<"$1"' _ "$out" "$PROVIDER_KEY"
check "no key in any log" bash -c '! grep -q -e "$1" -e "$2" "$3"/*.log' _ \
    "$PROVIDER_KEY" "$MGMT_KEY" "$MG_T"

# the figures of this run
tap_diag "rows by state: $(sql_now "SELECT string_agg(recon_state || ' ' || n, ', '
                                   ORDER BY recon_state)
                              FROM (SELECT recon_state, count(*) AS n
                                      FROM usage_events GROUP BY 1) s")"
tap_diag "adjustments: $ADJ; generation lookups: $LOOKUPS"
tap_diag "difference left today: $(sql_now "SELECT trim_scale(sum(difference)) FROM recon_closes c
                                          WHERE day = '$TODAY' AND model <> ''
                                            AND closed_at = (SELECT max(closed_at) FROM recon_closes
                                                              WHERE day = '$TODAY')") USD"
tap_done
