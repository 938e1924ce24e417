#!/usr/bin/env bash
# tests/integration/test-metrics.sh -- GET /metrics end to end: a throwaway
# Postgres, the mock upstream, two modelgate-fcgi processes under
# spawn-fcgi behind lighttpd with the shipped deploy/lighttpd/modelgate.conf.
# Run by `make check`.
#
# What is checked:
#   1. a known set of requests (chat, streams, embeddings, an upstream
#      error, a 429, two chats whose answers carry no cost, charged at
#      catalog prices) moves the counters by exactly that much, summed over
#      both processes: every scrape (each reaches one process or the
#      other) gives the same sums; tokens and cost equal the usage rows'
#      (the cost exactly, catalog-priced rows too); the reconciliation
#      adjusts the two catalog-priced charges, one up and one down, and
#      the adjustments' counters equal the adjustment rows'
#   2. a responder SIGKILLed and another started in its place: no counter
#      goes back (the dead slot is folded into the retired one); the
#      reconciled-through watermark gauge is the database's; a request
#      lost with its responder is charged its reservation by the reaper,
#      and the cost still equals the usage rows'
#   3. access: the allowed address (REMOTE_ADDR as lighttpd passes it), a
#      refused address with and without the token
#   4. promtool check metrics on the output, when promtool is installed
#   5. the responders stop, with nothing for the sanitizers to report
#
# Environment: as test-gateway.sh; under tests/memcheck, MG_MEMCHECK_KILLED
# names the file that gets the pid of the responder killed on purpose.
# Output is TAP.

# shellcheck source-path=SCRIPTDIR
set -u
set -o pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=lib.sh disable=SC1091
. "$HERE/lib.sh"
mg_script_start "$HERE/$(basename -- "${BASH_SOURCE[0]}")" node curl lighttpd spawn-fcgi

mg_stack_test metrics

show_logs() {
    local f
    for f in "$MG_T"/*.log "$MG_T"/*.out "$MG_T"/*.err "$MG_T"/*.txt; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 30 "$f" | sed 's/^/# /'
    done
}

MC=$HERE/metrics-check.cjs
PROVIDER_KEY=sk-or-provider-METRICS17
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY
TOKEN=metrics-token-$RANDOM$RANDOM
printf '%s\n' "$TOKEN" >"$MG_T/metrics.token"

mg_fresh_db modelgate_metrics
start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"

# Both pools map the same scoreboard: $MG_T/main.sock.scoreboard.
# The first pool reconciles (the catalog-priced charges are looked up).
CONF=$MG_T/modelgate.conf
mg_conf_write "$CONF" METRICS_DIR="$MG_T" METRICS_PER_MODEL=1 METRICS_PER_PROJECT=1 \
    METRICS_TOKEN_FILE="$MG_T/metrics.token" RECON_MAX_RPS=20 || bail "modelgate.conf"
# the second pool: no address may read without the token; it reaps what
# is pending for 5 s (the first pool's reaper waits the default 15 min)
CONF2=$MG_T/modelgate-2.conf
mg_conf_write "$CONF2" LOG_FILE="$MG_T/modelgate-2.log" METRICS_DIR="$MG_T" \
    METRICS_PER_MODEL=1 METRICS_PER_PROJECT=1 METRICS_ALLOW="10.0.0.0/8" \
    METRICS_TOKEN_FILE="$MG_T/metrics.token" REAP_AFTER=5 REAP_INTERVAL=1 \
    UPSTREAM_TIMEOUT=3 DB_CONNECT_TIMEOUT=1 || bail "modelgate-2.conf"

MG_CLI_CONF=$CONF
out=$(cli db migrate 2>&1) || bail "db migrate" "$out"
cli project create open >/dev/null 2>&1 || bail "project create open"
cli project create limited --rpm 1 >/dev/null 2>&1 || bail "project create limited"
cli project create lost >/dev/null 2>&1 || bail "project create lost"
KEY_OPEN=$(cli key create open 2>/dev/null) || bail "key create open"
KEY_LIMITED=$(cli key create limited 2>/dev/null) || bail "key create limited"
KEY_LOST=$(cli key create lost 2>/dev/null) || bail "key create lost"

if start_responders main "$CONF" 2 >"$MG_T/stack-main.txt" 2>&1 &&
    start_server main "$STACK_SOCK" >>"$MG_T/stack-main.txt" 2>&1; then
    BASE=http://127.0.0.1:$SERVER_PORT
    MAIN_PIDS=("${STACK_PIDS[@]}")
    tap_ok "stack up: lighttpd on $SERVER_PORT, responders ${STACK_PIDS[*]}"
else
    bail "the stack starts" "$(cat "$MG_T/stack-main.txt")"
fi

# scrape NAME [CURL OPTIONS...]: GET /metrics from $BASE into $MG_T/NAME.prom.
scrape() {
    local name=$1
    shift
    http GET "$BASE/metrics" "$@"
    cp "$MG_T/last.body" "$MG_T/$name.prom"
}
get() { node "$MC" get "$MG_T/$1.prom" "$2"; }
# scrape_until NAME SERIES WANT: scrapes into NAME until SERIES is WANT (a
# process counts what Postgres did once its call returns: a moment after
# the rows show it), for up to 10 s.
scrape_until() {
    local i
    for ((i = 0; i < 50; i++)); do
        scrape "$1"
        [ "$(get "$1" "$2")" = "$3" ] && return 0
        sleep 0.2
    done
    return 1
}
req() {
    printf 'modelgate_requests_total{endpoint="%s",status_class="%s",stream="%s"}' "$1" "$2" "$3"
}

# ---------------------------------------------------------------------------
# 1. Known requests, exact counts.

scrape s0
expect_http "GET /metrics from 127.0.0.1: 200, text exposition" 200 \
    "h['content-type'].startsWith('text/plain; version=0.0.4') && t.includes('# TYPE modelgate_requests_total counter')"
check_eq "both processes have a slot" "$(get s0 modelgate_responder_processes)" 2
check_eq "no chat yet" "$(get s0 "$(req chat.completions 2xx false)")" 0

chat_req() { # KEY MODEL STREAM
    http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer $1" \
        -H 'Content-Type: application/json' \
        --data "{\"model\":\"$2\",\"stream\":$3,\"messages\":[{\"role\":\"user\",\"content\":\"count these words\"}]}"
}
# reconciled: no usage row waits for its lookup (up to 20 s).
reconciled() {
    local i
    for ((i = 0; i < 200; i++)); do
        [ "$(sql_now 'SELECT mg_recon_waiting()')" = 0 ] &&
            return 0
        sleep 0.1
    done
    return 1
}
codes=()
for i in 1 2 3; do chat_req "$KEY_OPEN" mock/echo false; codes+=("$HTTP_STATUS"); done
# no cost in the answers: charged at the fallback prices, which are above
# the mock's; the generation's bill says less (down), or 1000 times that
# (up)
chat_req "$KEY_OPEN" 'mock/echo;nocost=1' false
codes+=("$HTTP_STATUS")
chat_req "$KEY_OPEN" 'mock/echo;nocost=1;billed=100000' false
codes+=("$HTTP_STATUS")
for i in 1 2; do chat_req "$KEY_OPEN" mock/echo true; codes+=("$HTTP_STATUS"); done
for i in 1 2; do
    http POST "$BASE/v1/embeddings" -H "Authorization: Bearer $KEY_OPEN" \
        -H 'Content-Type: application/json' --data '{"model":"mock/echo","input":"some words"}'
    codes+=("$HTTP_STATUS")
done
chat_req "$KEY_OPEN" 'mock/echo;fail=500' false
codes+=("$HTTP_STATUS")
chat_req "$KEY_LIMITED" mock/echo false
codes+=("$HTTP_STATUS")
chat_req "$KEY_LIMITED" mock/echo false
codes+=("$HTTP_STATUS")
check_eq "the requests answered as planned" "${codes[*]}" "200 200 200 200 200 200 200 200 200 502 200 429"
settled || tap_not_ok "every request settled"
reconciled || tap_not_ok "every lookup made"
scrape_until s1 'modelgate_reconcile_lookups_total{result="adjusted"}' 2 ||
    tap_not_ok "the lookups counted"

for i in 1 2 3 4 5 6; do scrape "s$i"; done
check "six scrapes (either process) give the same sums" node "$MC" same "$MG_T"/s{1,2,3,4,5,6}.prom
check_eq "chat 2xx, not streamed: 5 + 1" "$(get s1 "$(req chat.completions 2xx false)")" 6
check_eq "chat 2xx, streamed: 2" "$(get s1 "$(req chat.completions 2xx true)")" 2
check_eq "embeddings 2xx: 2" "$(get s1 "$(req embeddings 2xx false)")" 2
check_eq "chat 5xx (the upstream's error): 1" "$(get s1 "$(req chat.completions 5xx false)")" 1
check_eq "chat 4xx (the 429): 1" "$(get s1 "$(req chat.completions 4xx false)")" 1
check_eq "refusals by the request rate: 1" "$(get s1 'modelgate_refusals_total{reason="requests"}')" 1
check_eq "refusals by the spend cap: 0" "$(get s1 'modelgate_refusals_total{reason="spend_cap"}')" 0
check_eq "request durations counted: 10 chats" \
    "$(get s1 'modelgate_request_duration_seconds_count{operation="chat"}')" 10
check_eq "upstream durations: 9 chats reached it" \
    "$(get s1 'modelgate_upstream_duration_seconds_count{operation="chat"}')" 9
check_eq "overheads: as many" "$(get s1 'modelgate_overhead_seconds_count{operation="chat"}')" 9
check_eq "time to first token: the 2 streams" "$(get s1 modelgate_time_to_first_token_seconds_count)" 2
check_eq "nothing in flight but the scrape" "$(get s1 modelgate_requests_in_flight)" 1
check_eq "no stream open" "$(get s1 modelgate_streams_open)" 0

check_eq "two rows charged at catalog prices, and both adjusted" \
    "$(sql "SELECT count(*) FILTER (WHERE cost_source = 'catalog') || ' '
                   || count(*) FILTER (WHERE cost_source = 'catalog' AND recon_state = 'adjusted')
              FROM usage_events")" "2 2"
want=$(sql "SELECT coalesce(sum(prompt_tokens), 0) || ' ' || coalesce(sum(completion_tokens), 0)
              || ' ' || count(*) FILTER (WHERE model = 'mock/echo' AND status <> 429)
            FROM usage_events WHERE status <> 429")
got="$(get s1 'modelgate_tokens_total{type="prompt"}') $(get s1 'modelgate_tokens_total{type="completion"}') $(get s1 'modelgate_model_requests_total{model="mock/echo"}')"
check_eq "tokens and model count equal the usage rows'" "$got" "$want"
# every row's cost, whoever priced it (the sum as Postgres adds it up,
# written with nine decimals as the exposition writes USD)
cost_sum() { sql "SELECT coalesce(sum(cost), 0)::numeric(30, 9) FROM usage_events"; }
check_eq "the cost equals the usage rows', catalog-priced ones too, exactly" \
    "$(get s1 modelgate_cost_usd_total)" "$(cost_sum)"
check_eq "per project: open's cost, exactly" "$(get s1 'modelgate_project_cost_usd_total{project="open"}')" \
    "$(sql "SELECT coalesce(sum(u.cost), 0)::numeric(30, 9) FROM usage_events u JOIN projects p ON p.id = u.project_id WHERE p.name = 'open'")"
check_eq "per model: the catalog-priced chat's cost, exactly" \
    "$(get s1 'modelgate_model_cost_usd_total{model="mock/echo;nocost=1"}')" \
    "$(sql "SELECT coalesce(sum(cost), 0)::numeric(30, 9) FROM usage_events WHERE model = 'mock/echo;nocost=1'")"
check_eq "lookups: the two adjusted" "$(get s1 'modelgate_reconcile_lookups_total{result="adjusted"}')" 2
check_eq "adjustments up and down equal the adjustment rows', exactly" \
    "$(get s1 'modelgate_reconcile_adjustments_usd_total{direction="up"}') $(get s1 'modelgate_reconcile_adjustments_usd_total{direction="down"}')" \
    "$(sql "SELECT coalesce(sum(amount) FILTER (WHERE amount > 0), 0)::numeric(30, 9) || ' '
                   || coalesce(-sum(amount) FILTER (WHERE amount < 0), 0)::numeric(30, 9)
              FROM usage_adjustments")"
check "one adjustment each way" test "$(sql "SELECT count(*) FILTER (WHERE amount > 0) || ' ' || count(*) FILTER (WHERE amount < 0) FROM usage_adjustments")" = "1 1"
# the version the programs say (config.h is not in MG_BUILDDIR under
# tests/memcheck)
version=$("$CLI" --version) && version=${version#modelgate }
check_eq "build info ($version)" "$(get s1 "modelgate_build_info{version=\"$version\"}")" 1

# ---------------------------------------------------------------------------
# 2. A responder killed, another in its place: nothing goes back.

# (under tests/memcheck, this one ends without its leak report)
[ -z "${MG_MEMCHECK_KILLED:-}" ] || printf '%s\n' "${MAIN_PIDS[0]}" >>"$MG_MEMCHECK_KILLED"
kill -KILL "${MAIN_PIDS[0]}" 2>/dev/null
wait_gone 10 "${MAIN_PIDS[0]}" || tap_not_ok "responder ${MAIN_PIDS[0]} gone"
# the oldest row waits for a lookup an hour from now (as after the
# upstream's 404s): the reconciled-through watermark stays at its time
sql "UPDATE usage_events SET recon_next_at = now() + interval '1 hour'
      WHERE id = (SELECT min(id) FROM usage_events)" >/dev/null
mkdir -p "$MG_T/second"
MG_T_SAVED=$MG_T
if start_responders second/main "$CONF2" 1 >"$MG_T/stack-second.txt" 2>&1 &&
    start_server second "$STACK_SOCK" >>"$MG_T/stack-second.txt" 2>&1; then
    BASE2=http://127.0.0.1:$SERVER_PORT
    tap_ok "a responder SIGKILLed, another started (${STACK_PIDS[*]}) on the same scoreboard"
else
    bail "the second responder starts" "$(cat "$MG_T/stack-second.txt")"
fi
MG_T=$MG_T_SAVED
for i in 7 8 9; do scrape "s$i"; done
check "no counter went back after the kill" node "$MC" monotonic "$MG_T/s6.prom" "$MG_T/s7.prom"
check "the scrapes still agree" node "$MC" same "$MG_T"/s{1,7,8,9}.prom
check_eq "two live processes again" "$(get s9 modelgate_responder_processes)" 2

# every process reads the watermark at its start, then every 15 s
want=$(sql "SELECT floor(extract(epoch FROM mg_recon_watermark()))::bigint")
scrape_until sw modelgate_reconcile_watermark_timestamp_seconds "$want"
check_eq "the watermark gauge is the oldest waiting row's time" \
    "$(get sw modelgate_reconcile_watermark_timestamp_seconds)" "$want"

# a request admitted, then lost with its responder: the second pool's
# reaper charges its reservation
check_eq "a request admitted by hand" "$(sql "SELECT a.outcome FROM mg_admit_batch(
        jsonb_build_array(jsonb_build_object('k', encode(sha256(convert_to(:'key', 'UTF8')), 'hex'),
            'id', 'req_lost_with_its_responder', 'm', 'mock/echo', 'e', 'chat.completions',
            's', false, 'p', 60, 'o', 100)), 4096, 0.00001, 0.00003) AS a" -v key="$KEY_LOST")" ok
for ((i = 0; i < 100; i++)); do
    [ "$(sql_now "SELECT count(*) FROM reservations")" = 0 ] && break
    sleep 0.2
done
check_eq "the reaper charged its reservation" \
    "$(sql "SELECT cost_source || ' ' || (cost > 0) FROM usage_events WHERE request_id = 'req_lost_with_its_responder'")" \
    "reserved true"
chat_req "$KEY_OPEN" mock/echo false
settled
want=$(cost_sum)
scrape_until s10 modelgate_cost_usd_total "$want"
check_eq "counting goes on: one more chat" "$(get s10 "$(req chat.completions 2xx false)")" 7
check_eq "the cost still equals the usage rows', the reaper's charge too" \
    "$(get s10 modelgate_cost_usd_total)" "$want"

# ---------------------------------------------------------------------------
# 3. Access.

http GET "$BASE2/metrics"
expect_http "an address outside metrics.allow: 403, an OpenAI error" 403 \
    "j.error.type === 'invalid_request_error' && j.error.code === 'forbidden'"
http GET "$BASE2/metrics" -H "Authorization: Bearer wrong-$TOKEN"
expect_http "a wrong token: 403" 403
http GET "$BASE2/metrics" -H "Authorization: Bearer $TOKEN"
expect_http "the token: 200" 200 "t.includes('modelgate_requests_total')"
cp "$MG_T/last.body" "$MG_T/s11.prom"
check_eq "the token's scrape sums the same scoreboard" \
    "$(get s11 "$(req chat.completions 2xx false)")" 7

# ---------------------------------------------------------------------------
# 4. promtool.

if promtool=$(find_tool promtool); then
    check "promtool check metrics" sh -c "'$promtool' check metrics <'$MG_T/s10.prom'"
else
    tap_skip "promtool check metrics" "promtool not installed (Debian package prometheus)"
fi

# ---------------------------------------------------------------------------
# 5. The responders stop (a leak report is written at exit).

stop_responders
reports=$(cat "$MG_T"/sanitizer.* 2>/dev/null)
check_eq "no AddressSanitizer/UndefinedBehaviorSanitizer reports" "${reports:-none}" none

tap_done
