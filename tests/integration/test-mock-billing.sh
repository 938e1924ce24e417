#!/usr/bin/env bash
# test-mock-billing.sh -- the mock upstream bills like OpenRouter's account
# APIs (tests/mock/mock-upstream.c), so that the gateway's own ledger can be
# closed against it:
#
#   1. chats (plain, streamed, one billed at half its inline cost, one
#      stream cut midway) and embeddings with the inference key, each
#      known to GET /generation; bills added with POST /__mock/bill for
#      another key, for yesterday and for 30 days ago;
#   2. GET /activity and GET /credits answer the management key only
#      (403 for the inference key, for no key, and for every key on a mock
#      started without --management-key);
#   3. /activity by day and model: with api_key_hash of the inference key,
#      today's requests, tokens and usage are the sums of what
#      GET /generation billed, to the last digit (usage compared as
#      integer nano-USD); api_key_hash of the other key shows only its
#      bills; date= yesterday shows the injected rows; the window is the
#      last 30 days with today, date= reaches 30 days back, and a bad date
#      or hash is a 400;
#   4. GET /credits: total_credits as given, total_usage the sum of
#      everything billed; GET /key: the inference key's usage over all
#      time, today, this week (from Monday) and this month, 0 for the
#      management key; POST /__mock/reset keeps the ledger.
#
# Needs only the mock, curl and node.  Output is TAP; exits 0 when every
# check passed, 1 when one failed, 77 when skipped, 99 on a setup error.
# (A run across midnight UTC would see two days and fail.)

# shellcheck source-path=SCRIPTDIR
set -u
set -o pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
: "${MG_SRCDIR:=$(cd -- "$HERE/../.." && pwd -P)}"
: "${MG_BUILDDIR:=$MG_SRCDIR}"
export MG_SRCDIR MG_BUILDDIR

# shellcheck source=lib.sh disable=SC1091
. "$HERE/lib.sh"

missing=()
find_tool node >/dev/null || missing+=(node)
find_tool curl >/dev/null || missing+=(curl)
find_tool sha256sum >/dev/null || missing+=("sha256sum (coreutils)")
mg_missing_exit "${missing[@]}"

mg_find_programs
mg_lib_init mock-billing

MOCK_PID=
BARE_PID=

show_logs() {
    local f
    for f in "$MG_T"/*.out "$MG_T"/*.err; do
        [ -s "$f" ] || continue
        printf '# ----- last lines of %s -----\n' "${f##*/}"
        tail -n 40 "$f" | sed 's/^/# /'
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    [ -n "$BARE_PID" ] && stop_pids "$BARE_PID"
    stop_stack
    wait 2>/dev/null
    mg_finish "$rc"
}
mg_traps cleanup

KEY=sk-or-inference-BILL123
OTHER=sk-or-other-BILL456
MGMT=sk-or-mgmt-BILL789
TODAY=$(date -u +%F)
YESTERDAY=$(date -u -d "$TODAY -1 day" +%F)
DAY30=$(date -u -d "$TODAY -30 days" +%F)
DAY31=$(date -u -d "$TODAY -31 days" +%F)
TOMORROW=$(date -u -d "$TODAY +1 day" +%F)

sha256() { printf '%s' "$1" | sha256sum | cut -c1-64; }
KEY_HASH=$(sha256 "$KEY")
OTHER_HASH=$(sha256 "$OTHER")

# nano DECIMAL: the plain decimal (no sign, no exponent, at most 9
# decimals) as an integer of nano-USD; anything else comes out as
# "not-a-decimal:..." and so never equals a number.
nano() {
    local whole frac
    if [[ ! $1 =~ ^([0-9]+)(\.([0-9]{1,9}))?$ ]]; then
        printf 'not-a-decimal:%s' "$1"
        return
    fi
    whole=${BASH_REMATCH[1]}
    frac=${BASH_REMATCH[3]}000000000
    printf '%d' $((10#$whole * 1000000000 + 10#${frac:0:9}))
}

# exact NAME: the last answer as $MG_T/NAME.json, and as $MG_T/NAME.exact.json
# with every number turned into the string of its JSON text, so costs
# compare digit for digit (JSON.parse would round them to doubles).
exact() {
    save_last "$1"
    node -e '
        const fs = require("fs");
        const t = fs.readFileSync(process.argv[1], "utf8");
        let out = "", i = 0;
        while (i < t.length) {
            const c = t[i];
            if (c === "\"") {
                let k = i + 1;
                while (k < t.length && t[k] !== "\"") k += t[k] === "\\" ? 2 : 1;
                out += t.slice(i, k + 1);
                i = k + 1;
            } else if (c === "-" || (c >= "0" && c <= "9")) {
                const m = /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(t.slice(i));
                out += JSON.stringify(m[0]);
                i += m[0].length;
            } else {
                out += c;
                i++;
            }
        }
        fs.writeFileSync(process.argv[2], out);' \
        "$MG_T/$1.json" "$MG_T/$1.exact.json" 2>&1
}

# row NAME DATE MODEL: "requests prompt completion usage-nano" of the row
# of DATE and MODEL in $MG_T/NAME.exact.json ("none" without such a row).
row() {
    local v
    v=$(json_value "$MG_T/$1.exact.json" \
        "((j.data || []).filter((x) => x.date === '$2' && x.model === '$3')
            .map((x) => [x.requests, x.prompt_tokens, x.completion_tokens, x.usage].join(' '))
            .concat(['none']))[0]")
    if [ "$v" = none ]; then
        printf 'none'
    else
        printf '%s %s' "${v% *}" "$(nano "${v##* }")"
    fi
}

if start_mock --require-key "$KEY" --management-key "$MGMT" --credits 250.75 \
    >"$MG_T/start-mock.txt" 2>&1; then
    tap_ok "mock upstream on $MOCK_PORT, with an inference and a management key"
else
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"
fi
API=$MOCK_URL/api/v1

# ---------------------------------------------------------------------------
# 1. Billed traffic.

declare -A WANT_REQ=() WANT_PROMPT=() WANT_COMPLETION=() WANT_NANO=()
MODELS=()
GENS=0
GEN_NANO=0   # everything GET /generation billed

# bill_generation DESC MODEL: the last answer was a 200 with a generation
# id; adds what GET /generation says it billed to the sums of MODEL.
bill_generation() {
    local desc=$1 model=$2 id cost prompt completion
    id=$(header x-generation-id)
    if [ "$HTTP_STATUS" != 200 ] || [ -z "$id" ]; then
        tap_not_ok "$desc" "status $HTTP_STATUS, generation id '$id'
$(head -c 600 "$MG_T/last.body")"
        return
    fi
    http GET "$API/generation?id=$id" -H "Authorization: Bearer $KEY"
    exact "gen-$id"
    cost=$(json_value "$MG_T/gen-$id.exact.json" 'j.data && j.data.total_cost')
    prompt=$(json_value "$MG_T/gen-$id.exact.json" 'j.data && j.data.tokens_prompt')
    completion=$(json_value "$MG_T/gen-$id.exact.json" 'j.data && j.data.tokens_completion')
    if [ "$HTTP_STATUS" != 200 ] || [[ ! $(nano "$cost") =~ ^[0-9]+$ ]]; then
        tap_not_ok "$desc" "GET /generation?id=$id: $HTTP_STATUS $(head -c 600 "$MG_T/last.body")"
        return
    fi
    [ -n "${WANT_REQ[$model]+set}" ] || MODELS+=("$model")
    WANT_REQ[$model]=$((${WANT_REQ[$model]:-0} + 1))
    WANT_PROMPT[$model]=$((${WANT_PROMPT[$model]:-0} + prompt))
    WANT_COMPLETION[$model]=$((${WANT_COMPLETION[$model]:-0} + completion))
    WANT_NANO[$model]=$((${WANT_NANO[$model]:-0} + $(nano "$cost")))
    GEN_NANO=$((GEN_NANO + $(nano "$cost")))
    GENS=$((GENS + 1))
    tap_ok "$desc: $id billed \$$cost"
}

# chat MODEL-SPEC STREAM TEXT [KEY]: one chat completion (with the inference
# key unless KEY is given, even empty).
chat() {
    http POST "$API/chat/completions" -H "Authorization: Bearer ${4-$KEY}" \
        -H 'Content-Type: application/json' \
        --data "{\"model\": \"$1\", \"stream\": $2, \"messages\": [{\"role\": \"user\", \"content\": \"$3\"}]}"
}

# embed MODEL INPUT-JSON: one embeddings call.
embed() {
    http POST "$API/embeddings" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' --data "{\"model\": \"$1\", \"input\": $2}"
}

chat mock/echo false "count the words of this prompt please"
bill_generation "plain chat, mock/echo" mock/echo
chat mock/echo false "a second and somewhat longer prompt to be counted as well"
bill_generation "another plain chat, mock/echo" mock/echo
chat mock/echo true "stream me some tokens"
bill_generation "streamed chat, mock/echo" mock/echo
chat 'mock/echo;cut=2;tokens=6' true "a stream that is cut after two tokens"
bill_generation "stream cut after 2 of 6 tokens, billed as mock/echo;cut=2;tokens=6" 'mock/echo;cut=2;tokens=6'
chat openai/gpt-4o-mini true "streamed on another model"
bill_generation "streamed chat, openai/gpt-4o-mini" openai/gpt-4o-mini
chat 'openai/gpt-4o-mini;billed=50' false "billed at half the cost its answer says"
bill_generation "plain chat billed at 50%, billed as openai/gpt-4o-mini;billed=50" 'openai/gpt-4o-mini;billed=50'
embed openai/text-embedding-3-small '"one string to embed"'
bill_generation "embeddings of a string" openai/text-embedding-3-small
embed openai/text-embedding-3-small '["first of two", "and the second string"]'
bill_generation "embeddings of two strings" openai/text-embedding-3-small

chat mock/echo false "not billed: no key" ""
check_eq "a chat without the inference key is refused (401), not billed" "$HTTP_STATUS" 401

# bill DESC JSON WANT-DATE WANT-HASH: POST /__mock/bill answers 200 with the
# day and the key's hash.
bill() {
    http POST "$MOCK_URL/__mock/bill" -H 'Content-Type: application/json' --data "$2"
    expect_http "$1" 200 "j.ok === true && j.date === '$3' && j.api_key_hash === '$4'"
}
bill "bill for another key, today" \
    "{\"model\": \"mock/echo\", \"cost\": \"0.0123\", \"prompt_tokens\": 100, \"completion_tokens\": 50, \"key\": \"$OTHER\"}" \
    "$TODAY" "$OTHER_HASH"
bill "bill for another key, yesterday" \
    "{\"model\": \"mock/yesterday\", \"cost\": \"1.5\", \"prompt_tokens\": 10, \"completion_tokens\": 20, \"key\": \"$OTHER\", \"date\": \"$YESTERDAY\"}" \
    "$YESTERDAY" "$OTHER_HASH"
bill "bill for another key, 30 days ago" \
    "{\"model\": \"mock/old\", \"cost\": \"2\", \"prompt_tokens\": 1, \"completion_tokens\": 1, \"key\": \"$OTHER\", \"date\": \"$DAY30\"}" \
    "$DAY30" "$OTHER_HASH"
bill "bill of 1 nano-USD for the inference key, yesterday" \
    "{\"model\": \"mock/echo\", \"cost\": \"0.000000001\", \"prompt_tokens\": 1, \"completion_tokens\": 1, \"key\": \"$KEY\", \"date\": \"$YESTERDAY\"}" \
    "$YESTERDAY" "$KEY_HASH"
BILLED_NANO=$((12300000 + 1500000000 + 2000000000 + 1))

http POST "$MOCK_URL/__mock/bill" --data '{"model": "m", "cost": "0.1", "prompt_tokens": -1}'
expect_http "a bill with negative tokens is a 400" 400 "j.error.code === 400"
for cost in '"abc"' '"1e-3"' '"-1"' '"0.0000000001"' '"1."' 'null'; do
    http POST "$MOCK_URL/__mock/bill" --data "{\"model\": \"m\", \"cost\": $cost}"
    expect_http "a bill with cost $cost is a 400" 400 "j.error.code === 400"
done
http POST "$MOCK_URL/__mock/bill" --data '{"model": "m", "cost": "0.1", "date": "2025-02-29"}'
expect_http "a bill on a day that does not exist is a 400" 400 "j.error.code === 400"
http POST "$MOCK_URL/__mock/bill" --data '{"model": "m", "cost": "0.1"'
expect_http "a bill that is not JSON is a 400" 400 "j.error.code === 400"

# ---------------------------------------------------------------------------
# 2. The management key only.

FORBIDDEN='{"error":{"code":403,"message":"Only management keys can perform this operation"}}'
http GET "$API/activity" -H "Authorization: Bearer $KEY"
check_eq "GET /activity with the inference key: 403" "$HTTP_STATUS $(cat "$MG_T/last.body")" \
    "403 $FORBIDDEN"
http GET "$API/activity"
check_eq "GET /activity without a key: 403" "$HTTP_STATUS $(cat "$MG_T/last.body")" \
    "403 $FORBIDDEN"
http GET "$API/credits" -H "Authorization: Bearer $KEY"
check_eq "GET /credits with the inference key: 403" "$HTTP_STATUS $(cat "$MG_T/last.body")" \
    "403 $FORBIDDEN"

if MG_STACK_MOCK=$MOCK mg_stack_mock_start "$MG_T/bare.out" "$MG_T/bare.err" \
    --require-key "$KEY" >"$MG_T/start-bare.txt" 2>&1; then
    BARE_PID=$MG_STACK_MOCK_PID
    got=
    for k in "$KEY" "$MGMT" ""; do
        http GET "http://127.0.0.1:$MG_STACK_MOCK_PORT/api/v1/activity" \
            -H "Authorization: Bearer $k"
        got+="$HTTP_STATUS "
        http GET "http://127.0.0.1:$MG_STACK_MOCK_PORT/v1/credits" -H "Authorization: Bearer $k"
        got+="$HTTP_STATUS "
    done
    check_eq "without --management-key, /activity and /credits are 403 for any key" \
        "$got" "403 403 403 403 403 403 "
else
    tap_not_ok "a second mock, without --management-key, starts" \
        "$(cat "$MG_T/start-bare.txt")"
fi

# ---------------------------------------------------------------------------
# 3. GET /activity.

http GET "$API/activity?date=$TODAY&api_key_hash=$KEY_HASH" -H "Authorization: Bearer $MGMT"
exact act-key-today
expect_http "activity of the inference key today: 200, one row per model, sorted" 200 \
    "Array.isArray(j.data) && j.data.length === $((${#MODELS[@]})) &&
     j.data.every((x, i) => i === 0 || x.model > j.data[i - 1].model)"
expect_json "every row has OpenRouter's fields and types" \
    "j.data.every((x) => deepEq(Object.keys(x).sort(), ['byok_usage_inference',
        'completion_tokens', 'date', 'endpoint_id', 'model', 'model_permaslug',
        'prompt_tokens', 'provider_name', 'reasoning_tokens', 'requests', 'usage']) &&
        x.date === '$TODAY' && x.model_permaslug === x.model &&
        x.endpoint_id === 'mock/' + x.model && x.provider_name === 'Mock' &&
        x.byok_usage_inference === 0 && x.reasoning_tokens === 0 &&
        typeof x.usage === 'number' && Number.isInteger(x.requests) &&
        Number.isInteger(x.prompt_tokens) && Number.isInteger(x.completion_tokens))" \
    "$MG_T/act-key-today.json"
for m in "${MODELS[@]}"; do
    check_eq "activity of $m today = the sums of GET /generation (requests tokens nano-USD)" \
        "$(row act-key-today "$TODAY" "$m")" \
        "${WANT_REQ[$m]} ${WANT_PROMPT[$m]} ${WANT_COMPLETION[$m]} ${WANT_NANO[$m]}"
done

http GET "$MOCK_URL/v1/activity" -H "Authorization: Bearer $MGMT"
exact act-all
expect_http "activity of every key, the last 30 days: 200, sorted by date then model" 200 \
    "j.data.every((x, i) => i === 0 || j.data[i - 1].date < x.date ||
        (j.data[i - 1].date === x.date && j.data[i - 1].model < x.model))"
check_eq "... today's mock/echo adds the other key's bill to the inference key's" \
    "$(row act-all "$TODAY" mock/echo)" \
    "$((${WANT_REQ[mock/echo]} + 1)) $((${WANT_PROMPT[mock/echo]} + 100)) $((${WANT_COMPLETION[mock/echo]} + 50)) $((${WANT_NANO[mock/echo]} + 12300000))"
check_eq "... yesterday's rows are there" \
    "$(row act-all "$YESTERDAY" mock/echo) / $(row act-all "$YESTERDAY" mock/yesterday)" \
    "1 1 1 1 / 1 10 20 1500000000"
check_eq "... 30 days ago is outside the default window (29 days and today)" \
    "$(row act-all "$DAY30" mock/old)" none
expect_json "... $((${#MODELS[@]} + 2)) rows in all" "j.data.length === $((${#MODELS[@]} + 2))" \
    "$MG_T/act-all.json"

http GET "$API/activity?api_key_hash=${OTHER_HASH^^}" -H "Authorization: Bearer $MGMT"
exact act-other
expect_http "api_key_hash (in capitals) of the other key: only its two bills" 200 \
    "j.data.length === 2"
check_eq "... today's mock/echo is its bill alone, yesterday's mock/yesterday too" \
    "$(row act-other "$TODAY" mock/echo) / $(row act-other "$YESTERDAY" mock/yesterday)" \
    "1 100 50 12300000 / 1 10 20 1500000000"

http GET "$API/activity?date=$YESTERDAY" -H "Authorization: Bearer $MGMT"
exact act-yesterday
expect_http "date=$YESTERDAY: the two rows injected for yesterday" 200 \
    "j.data.length === 2 && j.data.every((x) => x.date === '$YESTERDAY')"
check_eq "... with their requests, tokens and usage" \
    "$(row act-yesterday "$YESTERDAY" mock/echo) / $(row act-yesterday "$YESTERDAY" mock/yesterday)" \
    "1 1 1 1 / 1 10 20 1500000000"

http GET "$API/activity?date=$DAY30" -H "Authorization: Bearer $MGMT"
exact act-day30
check_eq "date= 30 days ago is inside the window and has its row" \
    "$HTTP_STATUS $(row act-day30 "$DAY30" mock/old)" "200 1 1 1 2000000000"

for d in "$DAY31" "$TOMORROW" 2025-02-29 2025-13-01 "${TODAY//-/}" yesterday ""; do
    http GET "$API/activity?date=$d" -H "Authorization: Bearer $MGMT"
    expect_http "date='$d' is a 400 with an error object" 400 \
        "j.error.code === 400 && typeof j.error.message === 'string'"
done
for h in "${KEY_HASH:0:63}" "${KEY_HASH}0" "${KEY_HASH:0:63}g"; do
    http GET "$API/activity?api_key_hash=$h" -H "Authorization: Bearer $MGMT"
    expect_http "api_key_hash of ${#h} characters, not all hex digits or too many: 400" 400 \
        "j.error.code === 400"
done

# ---------------------------------------------------------------------------
# 4. GET /credits, GET /key, POST /__mock/reset.

TOTAL_NANO=$((GEN_NANO + BILLED_NANO))
http GET "$API/credits" -H "Authorization: Bearer $MGMT"
exact credits
check_eq "GET /credits: total_credits as given, total_usage = everything billed (nano-USD)" \
    "$HTTP_STATUS $(json_value "$MG_T/credits.exact.json" 'j.data.total_credits') $(nano "$(json_value "$MG_T/credits.exact.json" 'j.data.total_usage')")" \
    "200 250.75 $TOTAL_NANO"

# yesterday is in this week unless today is Monday, in this month unless
# today is the 1st
week_nano=$GEN_NANO
month_nano=$GEN_NANO
[ "$(date -u -d "$TODAY" +%u)" != 1 ] && week_nano=$((week_nano + 1))
[ "$(date -u -d "$TODAY" +%d)" != 01 ] && month_nano=$((month_nano + 1))
http GET "$API/key" -H "Authorization: Bearer $KEY"
exact key
key_sums() {
    local f
    for f in usage usage_daily usage_weekly usage_monthly; do
        printf '%s ' "$(nano "$(json_value "$MG_T/key.exact.json" "j.data.$f")")"
    done
}
check_eq "GET /key, inference key: usage all time / today / this week / this month (nano-USD)" \
    "$HTTP_STATUS $(key_sums)" "200 $((GEN_NANO + 1)) $GEN_NANO $week_nano $month_nano "
expect_json "... and the other fields of OpenRouter's /key" \
    "deepEq(Object.keys(j.data).sort(), ['byok_usage', 'is_free_tier', 'is_management_key',
        'label', 'limit', 'limit_remaining', 'limit_reset', 'usage', 'usage_daily',
        'usage_monthly', 'usage_weekly']) && j.data.label === 'mock' &&
     j.data.limit === null && j.data.limit_remaining === null && j.data.limit_reset === null &&
     j.data.byok_usage === 0 && j.data.is_free_tier === false &&
     j.data.is_management_key === false" "$MG_T/key.json"
http GET "$MOCK_URL/v1/key" -H "Authorization: Bearer $MGMT"
expect_http "GET /key, management key: is_management_key, usage 0" 200 \
    "j.data.is_management_key === true && j.data.usage === 0 && j.data.usage_daily === 0 &&
     j.data.usage_weekly === 0 && j.data.usage_monthly === 0"
http GET "$API/key" -H "Authorization: Bearer $OTHER"
expect_http "GET /key with a key the mock does not take: 401" 401 "j.error.code === 401"

http POST "$MOCK_URL/__mock/reset"
http GET "$API/credits" -H "Authorization: Bearer $MGMT"
exact credits-after-reset
check_eq "POST /__mock/reset keeps the ledger" \
    "$(nano "$(json_value "$MG_T/credits-after-reset.exact.json" 'j.data.total_usage')")" \
    "$TOTAL_NANO"

tap_done
