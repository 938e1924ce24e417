# tests/integration/quota-hosts-lease.sh -- part B of test-quota-hosts.sh
# with quota.admission = "lease" (sourced by it, with its helpers), and
# what part C checks of the settlements held up by the outage.
#
# A responder killed with requests in flight leaves no pending row: its
# lease holds their reservations (the crash projects' caps are tight, so
# the lease was lent exactly their reservations).  Until quota.lease_timeout
# has passed since the lease's last renewal nothing reaps it; then it is
# charged whole, as one usage row, by `modelgate reap` (round 1) or by
# another pool's reaper (round 2).  A settlement that comes late for a
# reaped lease is recorded and moved out of the lease's charge.

# lease_json PROJECT FILE: the project's leases and its lease-reap rows:
# {leases (live), held (what they hold), reaped (leases marked reaped),
# rows (lease_ usage rows), row_cost, row_ok (status 502, 'reaped',
# cost_source 'reserved'), renewed_ms (since the newest renewal of a live
# lease, by the database's clock)}.
lease_json() {
    sql_now "WITH p AS (SELECT id FROM projects WHERE name = :'p'),
                  l AS (SELECT l.* FROM leases l JOIN p ON p.id = l.project_id),
                  u AS (SELECT u.* FROM usage_events u JOIN p ON p.id = u.project_id
                         WHERE u.request_id LIKE 'lease\\_%')
             SELECT json_build_object(
                'leases', (SELECT count(*) FROM l WHERE reaped_at IS NULL),
                'held', (SELECT coalesce(sum(spend), 0)::text FROM l WHERE reaped_at IS NULL),
                'reaped', (SELECT count(*) FROM l WHERE reaped_at IS NOT NULL),
                'rows', (SELECT count(*) FROM u),
                'row_id', (SELECT min(request_id) FROM u),
                'row_cost', (SELECT coalesce(sum(cost), 0)::text FROM u),
                'row_ok', (SELECT coalesce(bool_and(status = 502 AND error_type = 'reaped'
                                    AND cost_source = 'reserved'), false) FROM u),
                'renewed_ms', (SELECT round(1000 * extract(epoch FROM
                                   clock_timestamp() - max(renewed_at)))
                                 FROM l WHERE reaped_at IS NULL))" -v p="$1" >"$2"
}

# crash_lease ROUND PROJECT URL PID KEY: CRASH_N slow requests of PROJECT
# to URL, served by the single responder PID, which gets SIGKILL once its
# lease holds their CRASH_N reservations and the upstream has them all.
crash_lease() {
    local round=$1 project=$2 url=$3 pid=$4 key=$5 i held load f=$MG_T/crash-$1.json c0
    c0=$(mock_chat)
    node "$LOAD" burst "$f" "$CRASH_N" "$SLOW_TEMPLATE" "$url" "$key" \
        >"$MG_T/crash-$round.err" 2>&1 &
    load=$!
    LOAD_PIDS+=("$load")
    for ((i = 0; i < 200; i++)); do
        lease_json "$project" "$MG_T/lease-$round.json"
        held=$(json_value "$MG_T/lease-$round.json" 'j.held')
        [ "$held" = "$(usd_sum "$CRASH_N" "$RES_SLOW")" ] &&
            [ "$(mock_chat)" -ge $((c0 + CRASH_N)) ] && break
        sleep 0.05
    done
    expect_json "crash $round (lease): one lease holds the $CRASH_N reservations (tight: $CRASH_N x $RES_SLOW), no pending row" "
        j.leases === 1 && Number(j.held) === $(usd_sum "$CRASH_N" "$RES_SLOW") &&
        f[1].pending === 0" "$MG_T/lease-$round.json" <(project_json "$project" /dev/stdout)
    pid_runs "$pid" modelgate-fcgi && kill -KILL "$pid"
    if wait_gone 5 "$pid"; then
        tap_ok "crash $round (lease): responder $pid killed (SIGKILL)"
    else
        tap_not_ok "crash $round (lease): responder $pid killed (SIGKILL)"
    fi
    wait "$load"
    expect_json "crash $round (lease): the clients got an error from lighttpd (5xx)" "
        j.length === $CRASH_N && j.every((r) => r.status >= 500 && r.status <= 599)" "$f"
}

# check_lease_reaped ROUND PROJECT: the lease as the reaper leaves it and
# the project's counters.
check_lease_reaped() {
    local round=$1 project=$2
    lease_json "$project" "$MG_T/lease-reaped-$round.json"
    project_json "$project" "$MG_T/reaped-$round.json"
    expect_json "crash $round (lease): the lease is reaped, charged whole as one row (502 'reaped', cost_source 'reserved', cost $CRASH_N x $RES_SLOW)" "
        j.leases === 0 && j.reaped === 1 && j.rows === 1 && j.row_ok === true &&
        Number(j.row_cost) === $(usd_sum "$CRASH_N" "$RES_SLOW")" "$MG_T/lease-reaped-$round.json"
    expect_json "crash $round (lease): project_quota.reserved back to 0, spent = $CRASH_N x $RES_SLOW = sum of costs" "
        Number(j.reserved) === 0 && j.sum_eq === true &&
        Number(j.spent) === $(usd_sum "$CRASH_N" "$RES_SLOW")" "$MG_T/reaped-$round.json"
}

# Round 1: `modelgate reap` by hand.
cli project create crash-1 --spend-cap "$(usd_sum "$CRASH_N" "$RES_SLOW" \
    "$(sql "SELECT :'r'::numeric / 2" -v r="$RES_SLOW")")" --period total >/dev/null 2>&1
KEY_C1=$(new_key crash-1) || bail "key create crash-1"
if start_stack victim-1 "$MG_T/victim.conf" 1 >"$MG_T/stack-victim-1.txt" 2>&1; then
    tap_ok "victim-1: lighttpd on $STACK_PORT, responder ${STACK_PIDS[*]} (lease, reap_interval 0)"
else
    bail "victim-1 starts" "$(cat "$MG_T/stack-victim-1.txt")"
fi
crash_lease 1 crash-1 "http://127.0.0.1:$STACK_PORT/v1/chat/completions" "${STACK_PIDS[0]}" "$KEY_C1"

post_chat "$URL_A" "$KEY_C1" "$SMALL_BODY"
expect_http "crash 1 (lease): the dead responder's lease still counts: a new request gets 429 spend_cap_exceeded" 429 \
    "isErr(j, 'spend_cap_exceeded')"
out=$(cli reap 2>&1)
lease_json crash-1 "$MG_T/lease-early-1.json"
age=$(json_value "$MG_T/lease-early-1.json" 'j.renewed_ms')
if [ "${age:-99999}" -lt $((LEASE_TIMEOUT * 1000 - 500)) ]; then
    check_eq "crash 1 (lease): modelgate reap before lease_timeout (renewed $age ms ago) reaps nothing" \
        "$out" "reaped 0 requests older than $REAP_AFTER s (charged at their reserved amount)
reaped 0 leases not renewed for $LEASE_TIMEOUT s (charged whole)"
    expect_json "crash 1 (lease): ... the lease keeps holding the reservations" "
        j.leases === 1 && Number(j.held) === $(usd_sum "$CRASH_N" "$RES_SLOW")" \
        "$MG_T/lease-early-1.json"
else
    tap_skip "crash 1 (lease): modelgate reap before lease_timeout reaps nothing" \
        "the machine was too slow to look in time (renewed ${age:-?} ms ago)"
fi
sleep_until $(( $(now_ms) + LEASE_TIMEOUT * 1000 + 300 - ${age:-0} ))
out=$(cli reap 2>&1)
check_eq "crash 1 (lease): modelgate reap after lease_timeout charges the lease" \
    "$out" "reaped 0 requests older than $REAP_AFTER s (charged at their reserved amount)
reaped 1 leases not renewed for $LEASE_TIMEOUT s (charged whole)"
check_lease_reaped 1 crash-1
post_chat "$URL_A" "$KEY_C1" "$SMALL_BODY"
expect_http "crash 1 (lease): charged whole, the lease uses up the cap: still 429" 429 \
    "isErr(j, 'spend_cap_exceeded')"

# A settlement that comes for the reaped lease (its responder was cut off
# from Postgres, not dead): recorded, and moved out of the lease's charge.
lid=$(sql "SELECT l.id FROM leases l JOIN projects p ON p.id = l.project_id WHERE p.name = 'crash-1'")
pid_c1=$(sql "SELECT id FROM projects WHERE name = 'crash-1'")
before=$(sql "SELECT spent FROM project_quota WHERE project_id = :'p'" -v p="$pid_c1")
out=$(sql "SELECT settled FROM mg_settle_lease_batch(json_build_array(json_build_object(
        'id', 'req_late_lease_settlement', 'L', :'l'::bigint, 'pid', :'p'::bigint, 'kid', NULL,
        'm', 'openai/gpt-4o-mini', 'e', 'chat.completions', 's', false, 'rv', :'r',
        'rt', 100, 'pe', 10, 'ap', 0.000001, 'ac', 0.000002, 'at', now(), 'st', 200,
        'pt', 10, 'ct', 20, 'tt', 30, 'c', 0.0001, 'b', true)))" \
    -v l="$lid" -v p="$pid_c1" -v r="$RES_SLOW")
lease_json crash-1 "$MG_T/lease-late-1.json"
check_eq "crash 1 (lease): a late settlement of the reaped lease is recorded ($out)" \
    "$out $(sql "SELECT cost FROM usage_events WHERE request_id = 'req_late_lease_settlement'")" "1 0.0001"
expect_json "crash 1 (lease): ... its cost moved out of the lease's charge (spent unchanged, $before)" "
    Number(j.row_cost) === Number(f[1].c) && f[1].spent === '$before'" "$MG_T/lease-late-1.json" \
    <(sql "SELECT json_build_object('c', :'r'::numeric * $CRASH_N - 0.0001,
            'spent', (SELECT spent::text FROM project_quota WHERE project_id = :'p'))" \
        -v r="$RES_SLOW" -v p="$pid_c1")
project_json crash-1 "$MG_T/late-1.json"
expect_json "crash 1 (lease): ... and the sum of the costs is still the spend" "j.sum_eq === true" \
    "$MG_T/late-1.json"

out=$(cli project set crash-1 --spend-cap "$(usd_sum $((CRASH_N + 1)) "$RES_SLOW" \
    "$(sql "SELECT :'r'::numeric / 2" -v r="$RES_SLOW")")" 2>&1)
post_chat "$URL_A" "$KEY_C1" "$SMALL_BODY"
expect_http "crash 1 (lease): with room under a raised cap the project spends again: 200" 200 \
    "j.choices[0].message.content === 'mock reply: after the crash'"
for ((i = 0; i < 100; i++)); do
    [ "$(sql "SELECT count(*) FROM usage_events u JOIN projects p ON p.id = u.project_id
               WHERE p.name = 'crash-1'")" -ge 3 ] && break
    sleep 0.05
done
project_json crash-1 "$MG_T/after-1.json"
expect_json "crash 1 (lease): the new request settled; counters consistent (spent = sum of costs, within the cap)" "
    j.rows === 3 && j.pending === 0 && j.sum_eq === true && j.under_cap === true" "$MG_T/after-1.json"

# Round 2: a surviving pool reaps by itself (reap_interval = 1 s).
round2_stacks
crash_lease 2 crash-2 "http://127.0.0.1:$STACK_PORT/v1/chat/completions" "${STACK_PIDS[0]}" "$KEY_C2"
t0=$(now_ms)
for ((i = 0; i < 200; i++)); do
    [ "$(lease_count crash-2)" -eq 0 ] && break
    sleep 0.1
done
check_eq "crash 2 (lease): the survivor's reaper charges the lease by itself ($(( $(now_ms) - t0 )) ms after the kill)" \
    "$(lease_count crash-2)" 0
reaped_by_log=$(sed -n 's/.*reaper: charged \([0-9]*\) leases.*/\1/p' "$MG_T/survivor.log" |
    awk '{ n += $1 } END { print n + 0 }')
check_eq "crash 2 (lease): the survivor's log reports the lease it charged" "$reaped_by_log" 1
check_lease_reaped 2 crash-2
post_chat "$URL_S" "$KEY_C2" "$SMALL_BODY"
expect_http "crash 2 (lease): the project spends again where the cap allows: 200" 200 \
    "j.choices[0].message.content === 'mock reply: after the crash'"

# outage_slow_lease: part C's two requests admitted before Postgres
# stopped and answered during the outage: admitted from leases, their
# settlements are kept and written once Postgres is back, not reaped.
outage_slow_lease() {
    local rid logged=0
    for rid in $(json_value "$MG_T/outage-slow.json" "j.map((r) => r.rid).join(' ')"); do
        wait_row "$rid" 10 || true
    done
    logged=$(grep -c -h "lease settlements not written yet" "$MG_T/hostA.log" "$MG_T/hostB.log" |
        awk '{ n += $1 } END { print n + 0 }')
    check "outage (lease): settlements that could not be written were kept and retried ($logged log lines)" \
        test "$logged" -ge 1
    project_json outage-slow "$MG_T/outage-slow-db.json"
    expect_json "outage (lease): once Postgres is back the two requests answered during it have their rows (200, the upstream's cost), none reaped" "
        j.rows === 2 && j.reaped === 0 && j.pending === 0 && Number(j.reserved) === 0 &&
        j.sum_eq === true && f[1].every((r) => j.rids.includes(r.rid))" \
        "$MG_T/outage-slow-db.json" "$MG_T/outage-slow.json"
    check_eq "outage (lease): ... settled with the upstream's cost" \
        "$(sql "SELECT count(*) FROM usage_events u JOIN projects p ON p.id = u.project_id
                 WHERE p.name = 'outage-slow' AND u.status = 200 AND u.cost_source = 'upstream'")" 2
    project_json outage "$MG_T/outage-db.json"
    expect_json "outage (lease): no pending row of the loop, counters consistent (reserved 0, spent = sum of costs)" "
        j.pending === 0 && Number(j.reserved) === 0 && j.sum_eq === true" "$MG_T/outage-db.json"
}
