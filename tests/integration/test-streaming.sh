#!/usr/bin/env bash
# tests/integration/test-streaming.sh -- the gateway's streaming contract,
# end to end: a throwaway Postgres, the mock upstream, modelgate-fcgi under
# spawn-fcgi behind lighttpd with the shipped deploy/lighttpd/modelgate.conf.
# Streams are read with a raw HTTP/1.1 client (sse.js, written below into
# the temporary directory) that timestamps every SSE block, and with the
# official openai npm client (openai-stream.cjs); fds.js (also written
# below) counts a responder's threads, fds and memory.  Run by `make check`.
#
# What is checked:
#   1. relay: status, headers, the mock's chunks in order, [DONE], then the
#      end of the body and of the connection; events arrive as they are made
#   2. the usage-only chunk: dropped unless stream_options.include_usage,
#      recorded either way (tokens, exact cost, upstream id)
#   3. upstream failures: in-band error event after the first byte (midfail,
#      cut), ordinary HTTP errors before it (fail=400, fail=500)
#   4. a client that goes away: the upstream transfer is aborted, one 499
#      usage row, the responder keeps serving; no thread/fd/memory leak over
#      100 disconnects
#   5. heartbeats (": ping") during a silent upstream gap
#   6. the openai npm client: for await, include_usage, the stream() helper,
#      a mid-stream error, AbortController
#   7. server.client_close = "drain" (a second stack: one responder,
#      max_drains = 1): after a client goes away nothing more is written,
#      but the upstream is read to its end and the 499 usage row has the
#      upstream's exact tokens and cost; of two clients leaving at once one
#      is drained and the other aborted (the bound), and the bound is free
#      again afterwards
#
# Environment: as test-gateway.sh (MG_SRCDIR, MG_BUILDDIR, PG*,
# MG_REQUIRE_INTEGRATION, NODE_PATH, MG_KEEP_TMP), plus
#   MG_STREAM_LEAK_N   disconnects in the leak check (default 100)
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
# Prerequisites: a missing tool skips the test (77), or fails the setup (99)
# under MG_REQUIRE_INTEGRATION=1.

absent=()
find_tool lighttpd >/dev/null || absent+=(lighttpd)
SPAWN_FCGI=$(find_tool spawn-fcgi) || absent+=(spawn-fcgi)
find_tool node >/dev/null || absent+=(node)
find_tool curl >/dev/null || absent+=(curl)
find_tool psql >/dev/null || absent+=("psql (postgresql-client)")
if [ -z "${PGHOST:-}" ]; then
    find_tool pg_virtualenv >/dev/null || absent+=("pg_virtualenv (postgresql-common)")
fi
mg_missing_exit "${absent[@]}"

mg_find_programs

# Without a Postgres to use, run again inside a throwaway cluster.
mg_need_pg "$SELF" "$@"

if [ -z "${NODE_PATH:-}" ] && [ -d "$MG_SRCDIR/tests/integration/node_modules" ]; then
    NODE_PATH=$MG_SRCDIR/tests/integration/node_modules
fi
export NODE_PATH=${NODE_PATH:-}

T_BEGIN=$EPOCHREALTIME

# ---------------------------------------------------------------------------
# Temporary directory; everything started is stopped on the way out.

mg_lib_init stream

MOCK_PID=
LIGHTTPD_PID=
RESPONDERS=()
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

finish() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    set +e
    # both stacks (the main one and the drain one) and the mock
    stop_stack
    for pid in $(jobs -p); do
        kill -TERM "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    mg_finish "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------------------
# sse.js: the raw stream reader.

cat >"$MG_T/sse.js" <<'EOF'
'use strict';
// sse.js -- a raw HTTP/1.1 client for streamed chat completions, written by
// test-streaming.sh.  It decodes the chunked body itself and records every
// SSE block (events and comments) with its arrival time in ms, so the test
// can see the order of events, heartbeats, where the body ends and when the
// server closes the connection.
//
//   node sse.js read OUT URL KEY BODY-FILE [name=value...]
//       conn=close|keep-alive  the Connection request header (close)
//       closeAfter=N           hang up after N content events
//       mock=URL               with closeAfter: read the mock's open_streams
//                              before hanging up, then poll it until 0
//       maxMs=N                give up after N ms (30000)
//   node sse.js batch OUT URL KEY BODY-FILE count=N conc=C closeAfter=K
//       N streams, C at a time, each hung up after K content events; OUT
//       gets a summary per stream.
const net = require('net');
const fs = require('fs');
const { StringDecoder } = require('string_decoder');

const T0 = process.hrtime.bigint();
const now = () => Number(process.hrtime.bigint() - T0) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function options(list) {
    const o = {};
    for (const a of list) {
        const i = a.indexOf('=');
        if (i > 0) o[a.slice(0, i)] = a.slice(i + 1);
    }
    return o;
}

function contentOf(data) {
    try {
        const j = JSON.parse(data);
        const c = j && Array.isArray(j.choices) && j.choices[0] && j.choices[0].delta &&
            j.choices[0].delta.content;
        return typeof c === 'string' && c.length > 0 ? c : null;
    } catch (e) {
        return null;
    }
}

async function openStreams(mock) {
    try {
        const r = await fetch(mock + '/__mock/stats');
        return (await r.json()).open_streams;
    } catch (e) {
        return null;
    }
}

function stream(url, key, body, opt) {
    return new Promise((resolve) => {
        const u = new URL(url);
        const conn = opt.conn || 'close';
        const closeAfter = Number(opt.closeAfter || 0);
        const maxMs = Number(opt.maxMs || 30000);
        const r = {
            status: 0, statusLine: null, headers: {}, chunked: false, body: '',
            events: [], tStart: now(), tHead: null, tDone: null, tBodyEnd: null,
            tEof: null, tClosed: null, content: 0, contentAtClose: null,
            openBefore: null, mockZeroAfterMs: null, openAfterBody: null,
            error: null, timedOut: false,
        };
        const decoder = new StringDecoder('utf8');
        const sock = net.connect({ host: u.hostname, port: Number(u.port) });
        let raw = Buffer.alloc(0);
        let state = 'head';
        let left = 0;
        let length = -1;
        let pending = '';
        let settled = false;
        let hanging = false;

        const settle = () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            sock.destroy();
            resolve(r);
        };
        const timer = setTimeout(() => {
            r.timedOut = true;
            settle();
        }, maxMs);

        async function hangUp() {
            hanging = true;
            sock.pause();
            if (opt.mock) r.openBefore = await openStreams(opt.mock);
            r.contentAtClose = r.content;
            r.tClosed = now();
            sock.destroy();
            if (opt.mock) {
                const until = now() + 5000;
                while (now() < until) {
                    if ((await openStreams(opt.mock)) === 0) {
                        r.mockZeroAfterMs = Math.round(now() - r.tClosed);
                        break;
                    }
                    await sleep(20);
                }
            }
            settle();
        }

        function onBlock(block) {
            const ev = { t: now(), comments: [], data: null, event: null, other: [] };
            for (const line of block.split(/\r\n|\n|\r/)) {
                if (line.startsWith(':')) {
                    ev.comments.push(line);
                } else if (line.startsWith('data:')) {
                    let v = line.slice(5);
                    if (v.startsWith(' ')) v = v.slice(1);
                    ev.data = ev.data === null ? v : ev.data + '\n' + v;
                } else if (line.startsWith('event:')) {
                    ev.event = line.slice(6).trim();
                } else if (line !== '') {
                    ev.other.push(line);
                }
            }
            r.events.push(ev);
            if (ev.data === '[DONE]' && r.tDone === null) r.tDone = ev.t;
            if (ev.data !== null && contentOf(ev.data) !== null) {
                r.content++;
                if (closeAfter > 0 && r.content >= closeAfter && !hanging) hangUp();
            }
        }

        function onBody(buf) {
            const text = decoder.write(buf);
            r.body += text;
            pending += text;
            for (;;) {
                const m = /\r\n\r\n|\n\n|\r\r/.exec(pending);
                if (m === null) break;
                const block = pending.slice(0, m.index);
                pending = pending.slice(m.index + m[0].length);
                onBlock(block);
            }
        }

        function bodyEnded() {
            r.tBodyEnd = now();
            if (conn !== 'close' && !hanging) {
                // keep-alive: the connection should stay usable
                setTimeout(() => {
                    r.openAfterBody = r.tEof === null;
                    settle();
                }, 300);
            }
        }

        function feed(buf) {
            raw = raw.length ? Buffer.concat([raw, buf]) : buf;
            for (;;) {
                if (state === 'head') {
                    const i = raw.indexOf('\r\n\r\n');
                    if (i < 0) return;
                    const lines = raw.subarray(0, i).toString('latin1').split('\r\n');
                    raw = raw.subarray(i + 4);
                    r.tHead = now();
                    r.statusLine = lines[0];
                    r.status = Number((lines[0].match(/^HTTP\/1\.[01] (\d{3})/) || [])[1] || 0);
                    for (const l of lines.slice(1)) {
                        const c = l.indexOf(':');
                        if (c <= 0) continue;
                        const k = l.slice(0, c).trim().toLowerCase();
                        const v = l.slice(c + 1).trim();
                        r.headers[k] = k in r.headers ? r.headers[k] + ', ' + v : v;
                    }
                    r.chunked = /\bchunked\b/i.test(r.headers['transfer-encoding'] || '');
                    if (!r.chunked && 'content-length' in r.headers) {
                        length = Number(r.headers['content-length']);
                        if (length === 0) bodyEnded();
                    }
                    state = r.chunked ? 'size' : 'plain';
                } else if (state === 'size') {
                    const i = raw.indexOf('\r\n');
                    if (i < 0) return;
                    const n = parseInt(raw.subarray(0, i).toString('latin1').split(';')[0], 16);
                    raw = raw.subarray(i + 2);
                    if (!(n >= 0)) {
                        r.error = 'bad chunk size';
                        settle();
                        return;
                    }
                    if (n === 0) {
                        state = 'trailer';
                        bodyEnded();
                    } else {
                        left = n;
                        state = 'data';
                    }
                } else if (state === 'data') {
                    if (raw.length === 0) return;
                    const take = Math.min(left, raw.length);
                    onBody(raw.subarray(0, take));
                    raw = raw.subarray(take);
                    left -= take;
                    if (left === 0) state = 'crlf';
                } else if (state === 'crlf') {
                    if (raw.length < 2) return;
                    raw = raw.subarray(2);
                    state = 'size';
                } else if (state === 'plain') {
                    if (raw.length === 0) return;
                    onBody(raw);
                    if (length >= 0) {
                        length -= raw.length;
                        if (length <= 0) {
                            state = 'trailer';
                            bodyEnded();
                        }
                    }
                    raw = Buffer.alloc(0);
                } else {
                    raw = Buffer.alloc(0);
                    return;
                }
            }
        }

        sock.on('connect', () => {
            const payload = Buffer.from(body);
            sock.write('POST ' + u.pathname + u.search + ' HTTP/1.1\r\n' +
                'Host: ' + u.host + '\r\n' +
                'Authorization: Bearer ' + key + '\r\n' +
                'Content-Type: application/json\r\n' +
                'Accept: text/event-stream\r\n' +
                'Content-Length: ' + payload.length + '\r\n' +
                'Connection: ' + conn + '\r\n\r\n');
            sock.write(payload);
        });
        sock.on('data', (b) => {
            if (!hanging) feed(b);
        });
        sock.on('end', () => {
            r.tEof = now();
            if (state === 'plain' && length < 0 && r.tBodyEnd === null) r.tBodyEnd = r.tEof;
        });
        sock.on('error', (e) => {
            if (!hanging) r.error = e.message;
        });
        sock.on('close', () => {
            if (r.tEof === null && !hanging) r.error = r.error || 'closed without FIN';
            if (!hanging && (conn === 'close' || r.tBodyEnd === null)) settle();
        });
    });
}

// What the test reads besides the raw record.
function summary(r) {
    const datas = r.events.filter((e) => e.data !== null).map((e) => e.data);
    r.datas = datas;
    r.jsons = datas.map((d) => {
        try {
            return JSON.parse(d);
        } catch (e) {
            return d;
        }
    });
    r.contents = datas.map(contentOf).filter((c) => c !== null);
    r.pings = r.events.filter((e) => e.data === null && e.comments.length > 0)
        .map((e) => ({ t: e.t, text: e.comments.join('\n'), only: e.other.length === 0 && e.event === null }));
    r.requestId = r.headers['x-request-id'] || null;
    const ids = r.jsons.filter((j) => j && typeof j === 'object' && typeof j.id === 'string').map((j) => j.id);
    r.upstreamId = ids.length ? ids[0] : null;
    return r;
}

async function main() {
    const [mode, out, url, key, bodyFile, ...rest] = process.argv.slice(2);
    const opt = options(rest);
    const body = fs.readFileSync(bodyFile);
    if (mode === 'read') {
        const r = summary(await stream(url, key, body, opt));
        fs.writeFileSync(out, JSON.stringify(r));
    } else if (mode === 'batch') {
        const count = Number(opt.count || 1);
        const conc = Number(opt.conc || 1);
        const results = [];
        let next = 0;
        async function lane() {
            while (next < count) {
                next++;
                const r = summary(await stream(url, key, body, { closeAfter: opt.closeAfter, maxMs: 20000 }));
                results.push({ status: r.status, requestId: r.requestId, upstreamId: r.upstreamId,
                    content: r.contentAtClose, closed: r.tClosed !== null, error: r.error,
                    timedOut: r.timedOut });
            }
        }
        await Promise.all(Array.from({ length: conc }, lane));
        fs.writeFileSync(out, JSON.stringify(results));
    } else {
        throw new Error('unknown mode ' + mode);
    }
}

main().catch((e) => {
    console.error(e && e.stack ? e.stack : String(e));
    process.exit(2);
});
EOF

# ---------------------------------------------------------------------------
# Fixed values.

PROVIDER_KEY=sk-or-provider-STREAM789
export MG_IT_PROVIDER_KEY=$PROVIDER_KEY
CHAT_MODEL=openai/gpt-4o-mini
LEAK_N=${MG_STREAM_LEAK_N:-100}
EXPECTED_ROWS=0   # authenticated chat requests sent so far

# ---------------------------------------------------------------------------
# Setup: database, mock upstream, configuration, key, one stack.

mg_fresh_db modelgate_stream

start_mock --require-key "$PROVIDER_KEY" >"$MG_T/start-mock.txt" 2>&1 ||
    bail "mock upstream starts" "$(cat "$MG_T/start-mock.txt")"
tap_ok "mock upstream listens on $MOCK_PORT"

# upstream.timeout caps a whole transfer, streams included: 30 s leaves room
# for the 6 s gap of the heartbeat check.  A heartbeat every second keeps
# that check short.
CONF=$MG_T/modelgate.conf
LOG=$MG_T/modelgate.log
mg_conf_write "$CONF" LOG_LEVEL=debug LOG_FILE="$LOG" SHUTDOWN_GRACE=5 HEARTBEAT_INTERVAL=1

cli() {
    "$CLI" -c "$CONF" --sql-dir "$MG_SRCDIR/sql" "$@"
}

check "modelgate-fcgi -t accepts the configuration" "$FCGI" -t -c "$CONF"
out=$(cli db migrate 2>&1)
if [[ $out =~ ^migrations:\ ([0-9]+)\ applied ]]; then
    tap_ok "db migrate ($out)"
else
    bail "db migrate" "$out"
fi
out=$(cli project create streams 2>&1)
check_eq "project create" "$out" "created project streams"
KEY=$(cli key create streams --name stream-tests 2>"$MG_T/key.err")
if [[ $KEY =~ ^mg-[A-Za-z0-9_-]{32}$ ]]; then
    tap_ok "key create"
else
    bail "key create" "stdout: $KEY
stderr: $(cat "$MG_T/key.err")"
fi

# start_stack PROCESSES: responders under spawn-fcgi on a unix socket and
# lighttpd in front of them with the shipped snippet (lib.sh's
# start_responders and start_server).  Sets PORT and RESPONDERS,
# LIGHTTPD_PID; prints the reason on failure.
start_stack() {
    start_responders gw "$CONF" "$1" || return 1
    RESPONDERS=("${STACK_PIDS[@]}")
    MG_SERVER=lighttpd start_server gw "$STACK_SOCK" || return 1
    LIGHTTPD_PID=$SERVER_PID
    PORT=$SERVER_PORT
}

PORT=
if start_stack 2 >"$MG_T/stack.txt" 2>&1; then
    tap_ok "stack up: lighttpd on $PORT, responders ${RESPONDERS[*]}"
else
    bail "stack starts" "$(cat "$MG_T/stack.txt")"
fi
BASE=http://127.0.0.1:$PORT
CHAT_URL=$BASE/v1/chat/completions

# ---------------------------------------------------------------------------
# Helpers.

ms_since() {
    local t0=$1 t1=$EPOCHREALTIME
    printf '%d' $(((${t1/./} - ${t0/./}) / 1000))
}

# stream_req NAME MODEL-OPTIONS [MORE-JSON-MEMBERS]: a streamed chat request
# in $MG_T/NAME.req.
stream_req() {
    printf '{"model":"%s%s","messages":[{"role":"user","content":"stream %s"}],"stream":true%s}' \
        "$CHAT_MODEL" "$2" "$1" "${3:+,$3}" >"$MG_T/$1.req"
}

# sse_to URL NAME [sse.js OPTIONS...]: reads the stream for $MG_T/NAME.req
# from the chat URL into $MG_T/NAME.json; counts one usage row.
sse_to() {
    local url=$1 name=$2
    shift 2
    node "$MG_T/sse.js" read "$MG_T/$name.json" "$url" "$KEY" "$MG_T/$name.req" "$@" \
        2>"$MG_T/$name.sse-err"
    EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
}

# sse NAME [sse.js OPTIONS...]: sse_to through the main stack.
sse() {
    sse_to "$CHAT_URL" "$@"
}

# jv FILE EXPRESSION: a value from a JSON file.
jv() {
    json_value "$1" "$2"
}

open_streams() {
    curl -sS --max-time 5 "$MOCK_URL/__mock/stats" 2>/dev/null |
        node -e 'let t="";process.stdin.on("data",(d)=>t+=d).on("end",()=>{
            try{console.log(JSON.parse(t).open_streams)}catch(e){console.log("?")}})'
}

# wait_idle SECONDS: true once the mock has no stream open.
wait_idle() {
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        [ "$(open_streams)" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# generation GEN-ID NAME: the mock's record of a generation in $MG_T/NAME.json.
generation() {
    curl -sS --max-time 5 -H "Authorization: Bearer $PROVIDER_KEY" -o "$MG_T/$2.json" \
        "$MOCK_URL/api/v1/generation?id=$1"
}

# mock_last NAME: the last request the mock received, in $MG_T/NAME.json.
mock_last() {
    curl -sS --max-time 5 -o "$MG_T/$1.json" "$MOCK_URL/__mock/last"
}

# figures PID FILE: a process's threads, VmRSS and open fds as JSON in FILE.
# The fds are sorted into sockets to the upstream (curl keeps one idle
# keep-alive connection per request thread), sockets to Postgres (the pool
# opens up to pool_size connections as they are needed) and everything else,
# which must not change at all.
figures() {
    node "$MG_T/fds.js" "$1" "$MOCK_PORT" "${PGPORT:-5432}" \
        "$([[ ${PGHOST:-} == /* ]] && echo 1 || echo 0)" >"$2"
}
cat >"$MG_T/fds.js" <<'EOF'
'use strict';
// fds.js PID UPSTREAM-PORT DB-PORT DB-ON-UNIX-SOCKET: threads, VmRSS (KiB)
// and the open fds of a process, sorted into upstream, db and other.
const fs = require('fs');
const [pid, upPort, dbPort, dbUnix] = process.argv.slice(2);
const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
const field = (name) => Number((status.match(new RegExp('^' + name + ':\\s+(\\d+)', 'm')) || [])[1]);
const tcp = new Map();
for (const f of ['tcp', 'tcp6']) {
    let text = '';
    try {
        text = fs.readFileSync(`/proc/${pid}/net/${f}`, 'utf8');
    } catch (e) {
        continue;
    }
    for (const line of text.split('\n').slice(1)) {
        const p = line.trim().split(/\s+/);
        if (p.length > 9) tcp.set(p[9], parseInt(p[2].split(':')[1], 16));
    }
}
const unix = new Map();
try {
    for (const line of fs.readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
        const p = line.trim().split(/\s+/);
        if (p.length > 6) unix.set(p[6], p[7] || '');
    }
} catch (e) {
    // no unix sockets to look at
}
const out = { threads: field('Threads'), rss: field('VmRSS'), fds: 0, upstream: 0, db: 0, other: 0, others: [] };
for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let link;
    try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch (e) {
        continue;
    }
    out.fds++;
    const m = /^socket:\[(\d+)\]$/.exec(link);
    const port = m ? tcp.get(m[1]) : undefined;
    if (port !== undefined && port === Number(upPort)) {
        out.upstream++;
    } else if (port !== undefined && port === Number(dbPort)) {
        out.db++;
    } else if (m && dbUnix === '1' && unix.get(m[1]) === '') {
        out.db++;
    } else {
        out.other++;
        out.others.push(fd + ' -> ' + link);
    }
}
process.stdout.write(JSON.stringify(out) + '\n');
EOF

# A chat.completion.chunk from the mock (gen- ids), for check.cjs expressions.
CHUNK_OK="(c) => c && typeof c === 'object' && c.object === 'chat.completion.chunk' && /^gen-/.test(c.id)"

# ---------------------------------------------------------------------------
# 1. Relay.

stream_req relay ';tokens=5'
sse relay
expect_json "relay: 200 with Content-Type text/event-stream, Cache-Control no-cache, x-request-id" "
    j.status === 200 && /^text\/event-stream(\s*;|$)/.test(j.headers['content-type'] || '') &&
    j.headers['cache-control'] === 'no-cache' && /^req_[0-9a-f]{8,}$/.test(j.requestId || '')" \
    "$MG_T/relay.json"
expect_json "relay: events are role chunk, tok1..tok5, finish chunk, [DONE], in order" "
    ((d, ok) => d.length === 8 && d.slice(0, 7).every(ok) &&
        d.slice(0, 7).every((c) => c.id === d[0].id && c.model === '$CHAT_MODEL') &&
        d[0].choices.length === 1 && d[0].choices[0].delta.role === 'assistant' &&
        d[0].choices[0].finish_reason === null &&
        [1, 2, 3, 4, 5].every((k) => d[k].choices[0].delta.content === 'tok' + k + ' ' &&
            d[k].choices[0].finish_reason === null) &&
        d[6].choices[0].finish_reason === 'stop' && !d[6].choices[0].delta.content &&
        d[7] === '[DONE]')(j.jsons, $CHUNK_OK)" "$MG_T/relay.json"
expect_json "relay: nothing but comments beside data events; the body ends with 'data: [DONE]' and a blank line" "
    j.events.every((e) => e.event === null && e.other.length === 0) &&
    j.body.endsWith('data: [DONE]\n\n') && j.events[j.events.length - 1].data === '[DONE]'" \
    "$MG_T/relay.json"
# A short stream can be complete before lighttpd sends the headers; it then
# frames the body with Content-Length instead of chunks.  Either is fine.
expect_json "relay: the body ends and the server closes the connection right after [DONE] (< 1 s)" "
    !j.timedOut && j.error === null && j.tDone !== null &&
    j.tBodyEnd !== null && j.tBodyEnd - j.tDone < 1000 &&
    j.tEof !== null && j.tEof - j.tDone < 1000" "$MG_T/relay.json"
RELAY_RID=$(jv "$MG_T/relay.json" j.requestId)
RELAY_GEN=$(jv "$MG_T/relay.json" j.upstreamId)

stream_req keepalive ';tokens=3'
sse keepalive conn=keep-alive
expect_json "relay with keep-alive: the body ends right after [DONE] (< 1 s), the connection stays open" "
    j.status === 200 && !j.timedOut && j.datas[j.datas.length - 1] === '[DONE]' &&
    j.tBodyEnd !== null && j.tBodyEnd - j.tDone < 1000 && j.openAfterBody === true" \
    "$MG_T/keepalive.json"

stream_req paced ';tokens=5;delay=300'
sse paced
expect_json "relay: events reach the client as the upstream makes them (tok1 to tok5 >= 1 s apart, not buffered)" "
    ((c) => j.status === 200 && c.length === 5 && c[4].t - c[0].t >= 1000 &&
        j.tDone !== null)(j.events.filter((e) => /\"content\":\"tok/.test(e.data || '')))" \
    "$MG_T/paced.json"

# ---------------------------------------------------------------------------
# 2. The usage-only chunk.

generation "$RELAY_GEN" relay-gen
usage_json "$RELAY_RID" "$MG_T/relay-usage.json" \
    "$(jv "$MG_T/relay-gen.json" '(t.match(/"total_cost":([-+0-9.eE]+)/) || [])[1] || ""')"
expect_json "no include_usage: the client gets no usage-only chunk (choices: [])" "
    !j.jsons.some((c) => c && typeof c === 'object' && Array.isArray(c.choices) && c.choices.length === 0) &&
    !j.jsons.some((c) => c && typeof c === 'object' && c.usage)" "$MG_T/relay.json"
expect_json "no include_usage: the usage row has the mock's tokens, exact cost (upstream), stream, 200, upstream id" "
    ((r, g) => j.n === 1 && r.status === 200 && r.error_type === null && r.stream === true &&
        r.endpoint === 'chat.completions' && r.model === '$CHAT_MODEL;tokens=5' &&
        r.prompt_tokens === g.tokens_prompt && r.completion_tokens === 5 &&
        g.tokens_completion === 5 && r.total_tokens === r.prompt_tokens + 5 &&
        r.cost_eq === true && r.cost_source === 'upstream' &&
        r.upstream_id === '$RELAY_GEN' && /^gen-/.test(r.upstream_id))(j.row, f[1].data)" \
    "$MG_T/relay-usage.json" "$MG_T/relay-gen.json"

stream_req noopts ';tokens=2'
sse noopts
mock_last noopts-last
expect_json "no include_usage: the request upstream asks for it (stream_options.include_usage: true), the rest unchanged" "
    ((b) => b.stream === true && b.stream_options && b.stream_options.include_usage === true &&
        b.model === '$CHAT_MODEL;tokens=2' && b.messages[0].content === 'stream noopts')(JSON.parse(j.body))" \
    "$MG_T/noopts-last.json"
expect_json "no include_usage: 200 with tok1, tok2 and [DONE]" "
    j.status === 200 && j.contents.join('') === 'tok1 tok2 ' && j.datas[j.datas.length - 1] === '[DONE]'" \
    "$MG_T/noopts.json"

stream_req optsfalse ';tokens=2' '"stream_options":{"include_usage":false}'
sse optsfalse
mock_last optsfalse-last
expect_json "include_usage: false: no usage-only chunk for the client, include_usage: true upstream" "
    f[0].status === 200 && f[0].datas[f[0].datas.length - 1] === '[DONE]' &&
    !f[0].jsons.some((c) => c && Array.isArray(c.choices) && c.choices.length === 0) &&
    JSON.parse(f[1].body).stream_options.include_usage === true" \
    "$MG_T/optsfalse.json" "$MG_T/optsfalse-last.json"

stream_req withusage ';tokens=4' '"stream_options":{"include_usage":true}'
sse withusage
expect_json "include_usage: true: the usage chunk (choices: [], usage with cost) comes after the finish chunk, before [DONE]" "
    ((d) => j.status === 200 && d.length === 8 && d[7] === '[DONE]' &&
        d[5].choices[0].finish_reason === 'stop' &&
        Array.isArray(d[6].choices) && d[6].choices.length === 0 && d[6].id === d[0].id &&
        d[6].usage.completion_tokens === 4 && d[6].usage.prompt_tokens > 0 &&
        d[6].usage.total_tokens === d[6].usage.prompt_tokens + 4 &&
        typeof d[6].usage.cost === 'number')(j.jsons)" "$MG_T/withusage.json"
usage_json "$(jv "$MG_T/withusage.json" j.requestId)" "$MG_T/withusage-usage.json" \
    "$(jv "$MG_T/withusage.json" '(t.match(/"cost":([-+0-9.eE]+)/) || [])[1] || ""')"
expect_json "include_usage: true: the usage row matches the chunk (tokens, exact cost, upstream id)" "
    ((r, u) => j.n === 1 && r.status === 200 && r.stream === true &&
        r.prompt_tokens === u.prompt_tokens && r.completion_tokens === 4 &&
        r.total_tokens === u.total_tokens && r.cost_eq === true &&
        r.cost_source === 'upstream' && r.upstream_id === f[1].upstreamId)(j.row, f[1].jsons[6].usage)" \
    "$MG_T/withusage-usage.json" "$MG_T/withusage.json"

# ---------------------------------------------------------------------------
# 3. Upstream failures.

# midstream_case NAME MODEL-OPTIONS DESCRIPTION: three content events, one
# error event in the OpenAI shape, the end of the body; a 502 usage row with
# 3 completion tokens and the upstream id.
midstream_case() {
    local name=$1 opts=$2 desc=$3
    stream_req "$name" "$opts"
    sse "$name"
    expect_json "$desc: role chunk, tok1..tok3, then exactly one event with a top-level error {message, type, param, code}, nothing after" "
        ((d, ok) => j.status === 200 && d.length === 5 && d.slice(0, 4).every(ok) &&
            d[0].choices[0].delta.role === 'assistant' &&
            [1, 2, 3].every((k) => d[k].choices[0].delta.content === 'tok' + k + ' ') &&
            isErr(d[4]) && !d.includes('[DONE]'))(j.jsons, $CHUNK_OK)" "$MG_T/$name.json"
    expect_json "$desc: the stream then ends (body complete, connection closed, no [DONE])" "
        !j.timedOut && j.tBodyEnd !== null && j.tEof !== null && !j.body.includes('[DONE]')" \
        "$MG_T/$name.json"
    usage_json "$(jv "$MG_T/$name.json" j.requestId)" "$MG_T/$name-usage.json"
    expect_json "$desc: usage row status 502, error_type set, completion_tokens 3 (relayed deltas), upstream id" "
        ((r) => j.n === 1 && r.status === 502 && typeof r.error_type === 'string' &&
            r.error_type.length > 0 && r.stream === true && r.completion_tokens === 3 &&
            r.upstream_id === f[1].upstreamId && /^gen-/.test(r.upstream_id))(j.row)" \
        "$MG_T/$name-usage.json" "$MG_T/$name.json"
}

midstream_case midfail ';tokens=5;midfail=3' "midfail=3 (upstream error event)"
midstream_case cut ';tokens=5;cut=3' "cut=3 (upstream connection cut)"

# prestream_case NAME MODEL-OPTIONS STATUS: an error before the first byte
# is an ordinary HTTP error with a JSON body.
prestream_case() {
    local name=$1 opts=$2 status=$3
    stream_req "$name" "$opts"
    http POST "$CHAT_URL" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        -H 'Accept: text/event-stream' --data-binary "@$MG_T/$name.req"
    EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
    expect_http "stream with upstream ${opts#;}: HTTP $status, JSON error body, not SSE" "$status" "
        jsonHeaders(h) && isErr(j) && !/event-stream/.test(h['content-type']) && !/^data:/m.test(t)"
    usage_json "$(header x-request-id)" "$MG_T/$name-usage.json"
    expect_json "stream with upstream ${opts#;}: usage row status $status, stream true, error_type set" "
        j.n === 1 && j.row.status === $status && j.row.stream === true &&
        typeof j.row.error_type === 'string' && j.row.error_type.length > 0" "$MG_T/$name-usage.json"
}

prestream_case fail400 ';fail=400' 400
prestream_case fail500 ';fail=500' 502

# ---------------------------------------------------------------------------
# 4. The client goes away.

check_eq "no upstream stream open before the disconnect checks" "$(open_streams)" 0

stream_req gone ';tokens=50;delay=100'
sse gone closeAfter=5 "mock=$MOCK_URL"
GONE_RID=$(jv "$MG_T/gone.json" j.requestId)
GONE_GEN=$(jv "$MG_T/gone.json" j.upstreamId)
gone_ms=$(jv "$MG_T/gone.json" j.mockZeroAfterMs)
expect_json "disconnect after 5 content events: the stream was open upstream when the client left" "
    j.status === 200 && j.contentAtClose >= 5 && j.openBefore >= 1" "$MG_T/gone.json"
expect_json "disconnect: the mock's open_streams is back to 0 within 2 s (took ${gone_ms} ms)" "
    j.mockZeroAfterMs !== null && j.mockZeroAfterMs <= 2000" "$MG_T/gone.json"
if wait_row "$GONE_RID" 5; then
    tap_ok "disconnect: a usage row is written (request $GONE_RID)"
else
    tap_not_ok "disconnect: a usage row is written (request $GONE_RID)" "no row within 5 s"
fi
usage_json "$GONE_RID" "$MG_T/gone-usage.json"
expect_json "disconnect: exactly one usage row: 499 client_closed, 5 <= completion_tokens < 50, upstream id" "
    ((r) => j.n === 1 && r.status === 499 && r.error_type === 'client_closed' && r.stream === true &&
        r.completion_tokens >= 5 && r.completion_tokens < 50 &&
        r.upstream_id === '$GONE_GEN' && /^gen-/.test(r.upstream_id))(j.row)" "$MG_T/gone-usage.json"
generation "$GONE_GEN" gone-gen
expect_json "disconnect: the mock stopped generating (its record has fewer than 50 tokens)" "
    j.data && j.data.tokens_completion < 50" "$MG_T/gone-gen.json"
tap_diag "usage row: completion_tokens $(jv "$MG_T/gone-usage.json" 'j.row.completion_tokens'), cost $(jv "$MG_T/gone-usage.json" 'j.row.cost_text'); mock generation: tokens_completion $(jv "$MG_T/gone-gen.json" 'j.data.tokens_completion'), total_cost $(jv "$MG_T/gone-gen.json" 'j.data.total_cost')"

# The responders keep serving: plain and streamed requests right after.
running=0
for pid in "${RESPONDERS[@]}"; do
    pid_runs "$pid" modelgate-fcgi && running=$((running + 1))
done
check_eq "after the disconnect: both responders are still running" "$running" "${#RESPONDERS[@]}"
bad=
for i in 1 2 3; do
    printf '{"model":"%s","messages":[{"role":"user","content":"after %s"}]}' "$CHAT_MODEL" "$i" \
        >"$MG_T/after-$i.req"
    http POST "$CHAT_URL" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        --data-binary "@$MG_T/after-$i.req"
    EXPECTED_ROWS=$((EXPECTED_ROWS + 1))
    if [ "$HTTP_STATUS" != 200 ] || ! grep -qF "\"mock reply: after $i\"" "$MG_T/last.body"; then
        bad+=" plain-$i:$HTTP_STATUS"
    fi
    stream_req "after-s$i" ';tokens=3'
    sse "after-s$i"
    if ! node "$MG_CHECK" json "j.status === 200 && j.contents.join('') === 'tok1 tok2 tok3 ' &&
        j.datas[j.datas.length - 1] === '[DONE]'" "$MG_T/after-s$i.json" >/dev/null; then
        bad+=" stream-$i:$(jv "$MG_T/after-s$i.json" j.status)"
    fi
done
check_eq "after the disconnect: 3 plain and 3 streamed requests are served normally" "${bad:-none}" none

# A client that leaves during a silent gap is noticed through the
# heartbeats, long before the next token (8 s later) would show it.
stream_req gapgone ';tokens=3;delay=8000'
sse gapgone closeAfter=1 "mock=$MOCK_URL"
gap_ms=$(jv "$MG_T/gapgone.json" j.mockZeroAfterMs)
expect_json "disconnect during an 8 s silent gap: upstream aborted within 4 s (heartbeat 1 s; took ${gap_ms} ms)" "
    j.status === 200 && j.openBefore >= 1 && j.mockZeroAfterMs !== null && j.mockZeroAfterMs <= 4000" \
    "$MG_T/gapgone.json"
GAP_RID=$(jv "$MG_T/gapgone.json" j.requestId)
wait_row "$GAP_RID" 6
usage_json "$GAP_RID" "$MG_T/gapgone-usage.json"
expect_json "disconnect during a silent gap: one usage row, 499 client_closed, completion_tokens 1" "
    j.n === 1 && j.row.status === 499 && j.row.error_type === 'client_closed' &&
    j.row.completion_tokens === 1" "$MG_T/gapgone-usage.json"

# Leak check: warm up with a few disconnects, take the figures, then
# LEAK_N disconnects four at a time, and the figures again.
stream_req leak ';tokens=50;delay=100'

# leak_batch COUNT NAME: COUNT disconnects (4 at a time); waits until the mock
# is idle and every request has its usage row.
leak_batch() {
    local rows0 i
    rows0=$(sql "SELECT count(*) FROM usage_events WHERE status = 499")
    node "$MG_T/sse.js" batch "$MG_T/$2.json" "$CHAT_URL" "$KEY" "$MG_T/leak.req" \
        "count=$1" conc=4 closeAfter=5 2>"$MG_T/$2.sse-err"
    EXPECTED_ROWS=$((EXPECTED_ROWS + $1))
    wait_idle 10
    for ((i = 0; i < 100; i++)); do
        [ "$(sql "SELECT count(*) FROM usage_events WHERE status = 499")" -ge $((rows0 + $1)) ] && break
        sleep 0.1
    done
}

leak_batch 12 leak-warm
sleep 1
for pid in "${RESPONDERS[@]}"; do
    figures "$pid" "$MG_T/figures-$pid-before.json"
done
rows_499=$(sql "SELECT count(*) FROM usage_events WHERE status = 499")
t0=$EPOCHREALTIME
leak_batch "$LEAK_N" leak
leak_ms=$(ms_since "$t0")
sleep 1
for pid in "${RESPONDERS[@]}"; do
    figures "$pid" "$MG_T/figures-$pid-after.json"
done
expect_json "$LEAK_N disconnects ($leak_ms ms): every stream answered 200 and was left after >= 5 content events" "
    j.length === $LEAK_N && j.every((r) => r.status === 200 && r.closed && r.content >= 5 &&
        /^req_/.test(r.requestId || '') && /^gen-/.test(r.upstreamId || ''))" "$MG_T/leak.json"
check_eq "$LEAK_N disconnects: the mock has no stream open afterwards" "$(open_streams)" 0
node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
    .map((r) => r.requestId).join("\n") + "\n")' "$MG_T/leak.json" >"$MG_T/leak-rids.txt"
leak_rows=$(sql "SELECT count(*) FROM usage_events
                  WHERE request_id = ANY (string_to_array(:'rids', E'\n'))
                    AND status = 499 AND error_type = 'client_closed'
                    AND completion_tokens >= 5 AND completion_tokens < 50" \
    -v rids="$(cat "$MG_T/leak-rids.txt")")
check_eq "$LEAK_N disconnects: $LEAK_N usage rows with 499 client_closed, 5 <= completion_tokens < 50" \
    "$leak_rows" "$LEAK_N"
check_eq "$LEAK_N disconnects: no other 499 row appeared" \
    "$(sql "SELECT count(*) FROM usage_events WHERE status = 499")" "$((rows_499 + LEAK_N))"

# describe BEFORE-FILE AFTER-FILE: the figures side by side.
describe() {
    node -e '
        const [b, a] = process.argv.slice(1).map((p) => JSON.parse(require("fs").readFileSync(p, "utf8")));
        const d = (k) => b[k] + " -> " + a[k];
        console.log("threads " + d("threads") + ", fds " + d("fds") + " (upstream " + d("upstream") +
            ", db " + d("db") + ", other " + d("other") + "), VmRSS " + d("rss") + " KiB");' "$1" "$2"
}
for pid in "${RESPONDERS[@]}"; do
    b=$MG_T/figures-$pid-before.json
    a=$MG_T/figures-$pid-after.json
    printf '# responder %s: %s\n' "$pid" "$(describe "$b" "$a" 2>&1)"
    expect_json "responder $pid after $LEAK_N disconnects: threads back to where they were" \
        "Number.isInteger(f[0].threads) && f[1].threads === f[0].threads" "$b" "$a"
    expect_json "responder $pid after $LEAK_N disconnects: fds other than upstream/db sockets unchanged" \
        "f[0].other > 0 && f[1].other === f[0].other && deepEq(f[1].others, f[0].others)" "$b" "$a"
    expect_json "responder $pid after $LEAK_N disconnects: idle upstream sockets <= threads (8), db sockets <= pool_size (4)" \
        "f[1].upstream <= 8 && f[1].db >= 1 && f[1].db <= 4" "$b" "$a"
    expect_json "responder $pid after $LEAK_N disconnects: VmRSS within +8 MiB" \
        "f[1].rss > 0 && f[1].rss <= f[0].rss + 8192" "$b" "$a"
done

# ---------------------------------------------------------------------------
# 5. Heartbeat.

stream_req heartbeat ';tokens=2;delay=6000'
sse heartbeat maxMs=25000
hb=$(jv "$MG_T/heartbeat.json" '((c) => { if (c.length < 2) return "fewer than 2 content events";
    const a = c[0].t, b = c[1].t;
    const in_gap = j.pings.filter((p) => p.t > a && p.t < b);
    return in_gap.length + " pings in the " + Math.round(b - a) + " ms gap, first after " +
        (in_gap.length ? Math.round(in_gap[0].t - a) : "-") + " ms"; })(j.events.filter((e) => /\"content\":\"tok/.test(e.data || "")))')
expect_json "heartbeat: ': ping' comments reach the client during a 6 s silent gap ($hb)" "
    ((c) => c.length === 2 && j.pings.some((p) => p.t > c[0].t && p.t < c[1].t && p.text === ': ping' && p.only))(
        j.events.filter((e) => /\"content\":\"tok/.test(e.data || '')))" "$MG_T/heartbeat.json"
expect_json "heartbeat: every comment block is ': ping' alone, and the stream still completes with [DONE]" "
    j.status === 200 && !j.timedOut && j.pings.every((p) => p.text === ': ping' && p.only) &&
    j.contents.join('') === 'tok1 tok2 ' && j.datas[j.datas.length - 1] === '[DONE]' &&
    j.tEof !== null" "$MG_T/heartbeat.json"
usage_json "$(jv "$MG_T/heartbeat.json" j.requestId)" "$MG_T/heartbeat-usage.json"
expect_json "heartbeat: the usage row is an ordinary 200 with 2 completion tokens" "
    j.n === 1 && j.row.status === 200 && j.row.completion_tokens === 2 && j.row.cost_source === 'upstream'" \
    "$MG_T/heartbeat-usage.json"

# ---------------------------------------------------------------------------
# 6. The official openai npm client.

if node -e 'require.resolve("openai")' >/dev/null 2>&1; then
    MG_BASE_URL=$BASE/v1 MG_API_KEY=$KEY MG_MOCK_URL=$MOCK_URL \
        node "$HERE/openai-stream.cjs" >"$MG_T/sdk.out" 2>&1
    sdk_rc=$?
    sdk_requests=()
    while IFS= read -r line; do
        if [[ $line =~ ^ok\ [0-9]+\ -\ (.*)$ ]]; then
            tap_ok "openai SDK: ${BASH_REMATCH[1]}"
        elif [[ $line =~ ^not\ ok\ [0-9]+\ -\ (.*)$ ]]; then
            tap_not_ok "openai SDK: ${BASH_REMATCH[1]}"
        elif [[ $line =~ ^#\ request:\ ([a-z0-9-]+)\ (req_[0-9a-f]+)\ ([0-9]{3})$ ]]; then
            sdk_requests+=("${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]}")
        elif [[ $line =~ ^#\ calls:\ ([0-9]+)$ ]]; then
            EXPECTED_ROWS=$((EXPECTED_ROWS + BASH_REMATCH[1]))
        elif [[ $line =~ ^1\.\.[0-9]+$ ]]; then
            :
        else
            printf '# %s\n' "$line"
        fi
    done <"$MG_T/sdk.out"
    check_eq "openai-stream.cjs exit status" "$sdk_rc" 0
    for entry in "${sdk_requests[@]}"; do
        read -r name rid want <<<"$entry"
        wait_row "$rid" 5
        usage_json "$rid" "$MG_T/sdk-$name-usage.json"
        if [ "$want" = 499 ]; then
            expr="j.row.error_type === 'client_closed'"
        elif [ "$want" = 200 ]; then
            expr="j.row.error_type === null && j.row.cost_source === 'upstream'"
        else
            expr="typeof j.row.error_type === 'string'"
        fi
        expect_json "openai SDK, $name: one usage row with status $want, stream true" "
            j.n === 1 && j.row.status === $want && j.row.stream === true && ($expr)" \
            "$MG_T/sdk-$name-usage.json"
    done
elif [ "${MG_REQUIRE_INTEGRATION:-0}" = 1 ]; then
    tap_not_ok "openai npm package installed" \
        "require('openai') fails with NODE_PATH='$NODE_PATH'; run npm ci in tests/integration"
else
    tap_skip "openai SDK streaming checks" "the openai npm package is not installed (npm ci in tests/integration)"
fi

# ---------------------------------------------------------------------------
# 7. Drain mode: server.client_close = "drain".
#
# A second stack on the same database and mock: one responder process (the
# max_drains bound counts per process) with max_drains = 1, behind its own
# lighttpd.  Abort mode, the default, is section 4.

DRAIN_CONF=$MG_T/modelgate-drain.conf
DRAIN_LOG=$MG_T/modelgate-drain.log
mg_conf_write "$DRAIN_CONF" LOG_FILE="$DRAIN_LOG" POOL_SIZE=2 THREADS=4 SHUTDOWN_GRACE=5 \
    HEARTBEAT_INTERVAL=1 CLIENT_CLOSE=drain MAX_DRAINS=1
check "drain: modelgate-fcgi -t accepts client_close = \"drain\", max_drains = 1" \
    "$FCGI" -t -c "$DRAIN_CONF"
start_responders drain "$DRAIN_CONF" 1 >"$MG_T/drain-stack.txt" 2>&1 ||
    bail "drain: responder starts" "$(cat "$MG_T/drain-stack.txt")"
DRAIN_PID=${STACK_PIDS[0]}
start_server drain "$STACK_SOCK" >"$MG_T/drain-stack.txt" 2>&1 ||
    bail "drain: lighttpd starts" "$(cat "$MG_T/drain-stack.txt")"
DRAIN_SERVER_PID=$SERVER_PID
DRAIN_URL=http://127.0.0.1:$SERVER_PORT/v1/chat/completions
tap_ok "drain stack up: lighttpd on $SERVER_PORT, responder $DRAIN_PID"

# drain_log REQUEST-ID TEXT: the drain responder logged TEXT for the request.
drain_log() {
    grep -qF -- " $1 $2" "$DRAIN_LOG"
}

# 7a. One client leaves after 3 of 20 content events (100 ms apart): the
# upstream runs on for about 1.7 s, to its usage chunk.
check_eq "drain: no upstream stream open before the drain checks" "$(open_streams)" 0
stream_req drain1 ';tokens=20;delay=100'
sse_to "$DRAIN_URL" drain1 closeAfter=3 "mock=$MOCK_URL"
mock_last drain1-last
D1_RID=$(jv "$MG_T/drain1.json" j.requestId)
D1_GEN=$(jv "$MG_T/drain1.json" j.upstreamId)
d1_ms=$(jv "$MG_T/drain1.json" j.mockZeroAfterMs)
expect_json "drain: the client left after 3 of 20 content events, with the upstream stream open" "
    j.status === 200 && j.contentAtClose >= 3 && j.contentAtClose < 20 && j.openBefore >= 1 &&
    /^req_/.test(j.requestId || '') && /^gen-/.test(j.upstreamId || '')" "$MG_T/drain1.json"
expect_json "drain: the upstream stream ran on after the client left (open_streams 0 only after ${d1_ms} ms, >= 1000)" "
    j.mockZeroAfterMs !== null && j.mockZeroAfterMs >= 1000" "$MG_T/drain1.json"
expect_json "drain: the request upstream asked for the usage chunk (stream_options.include_usage)" "
    ((b) => b.stream === true && b.stream_options.include_usage === true &&
        b.messages[0].content === 'stream drain1')(JSON.parse(j.body))" "$MG_T/drain1-last.json"
wait_row "$D1_RID" 10
generation "$D1_GEN" drain1-gen
usage_json "$D1_RID" "$MG_T/drain1-usage.json" \
    "$(jv "$MG_T/drain1-gen.json" '(t.match(/"total_cost":([-+0-9.eE]+)/) || [])[1] || ""')"
expect_json "drain: the mock generated all 20 tokens (its generation record)" "
    j.data && j.data.streamed === true && j.data.tokens_completion === 20" "$MG_T/drain1-gen.json"
expect_json "drain: one usage row: 499 client_closed with the upstream's exact usage (prompt, 20 completion, total, cost, cost_source upstream) and id" "
    ((r, g) => j.n === 1 && r.status === 499 && r.error_type === 'client_closed' && r.stream === true &&
        r.prompt_tokens === g.tokens_prompt && r.prompt_tokens > 0 && r.completion_tokens === 20 &&
        r.total_tokens === r.prompt_tokens + 20 && r.cost_eq === true &&
        r.cost_source === 'upstream' && r.upstream_id === '$D1_GEN')(j.row, f[1].data)" \
    "$MG_T/drain1-usage.json" "$MG_T/drain1-gen.json"
tap_diag "usage row: tokens $(jv "$MG_T/drain1-usage.json" 'j.row.prompt_tokens + "/" + j.row.completion_tokens'), cost $(jv "$MG_T/drain1-usage.json" j.row.cost_text) ($(jv "$MG_T/drain1-usage.json" j.row.cost_source)); mock: tokens_completion $(jv "$MG_T/drain1-gen.json" j.data.tokens_completion), total_cost $(jv "$MG_T/drain1-gen.json" j.data.total_cost)"
if drain_log "$D1_RID" "client went away; draining the upstream" &&
    drain_log "$D1_RID" "client went away mid-stream; upstream drained"; then
    tap_ok "drain: the responder logged the drain and its successful end"
else
    tap_not_ok "drain: the responder logged the drain and its successful end" \
        "$(grep -F -- "$D1_RID" "$DRAIN_LOG")"
fi

# 7b. Two clients leave at once (after 3 of 40 content events): with
# max_drains = 1 the first one noticed is drained, the other is aborted as
# in the default mode.  Which one is which is up to the scheduling.
stream_req drain2a ';tokens=40;delay=100'
stream_req drain2b ';tokens=40;delay=100'
node "$MG_T/sse.js" read "$MG_T/drain2a.json" "$DRAIN_URL" "$KEY" "$MG_T/drain2a.req" \
    closeAfter=3 2>"$MG_T/drain2a.sse-err" &
d2a=$!
node "$MG_T/sse.js" read "$MG_T/drain2b.json" "$DRAIN_URL" "$KEY" "$MG_T/drain2b.req" \
    closeAfter=3 2>"$MG_T/drain2b.sse-err" &
d2b=$!
wait "$d2a" "$d2b"
EXPECTED_ROWS=$((EXPECTED_ROWS + 2))
t0=$EPOCHREALTIME
open_now=$(open_streams)
for ((i = 0; i < 40; i++)); do
    [ "$open_now" = 1 ] && break
    sleep 0.1
    open_now=$(open_streams)
done
open_ms=$(ms_since "$t0")
expect_json "drain, 2 clients at once: both got 200 and left after 3 of 40 content events" "
    f.every((r) => r.status === 200 && r.contentAtClose >= 3 && r.contentAtClose < 40 &&
        /^req_/.test(r.requestId || '') && /^gen-/.test(r.upstreamId || ''))" \
    "$MG_T/drain2a.json" "$MG_T/drain2b.json"
check_eq "drain, 2 clients at once: the mock then has exactly 1 stream open (1 aborted, 1 drained; seen after ${open_ms} ms)" \
    "$open_now" 1
wait_idle 15
D2A_RID=$(jv "$MG_T/drain2a.json" j.requestId)
D2B_RID=$(jv "$MG_T/drain2b.json" j.requestId)
for x in a b; do
    rid=$(jv "$MG_T/drain2$x.json" j.requestId)
    wait_row "$rid" 10
    generation "$(jv "$MG_T/drain2$x.json" j.upstreamId)" "drain2$x-gen"
    usage_json "$rid" "$MG_T/drain2$x-usage.json" \
        "$(jv "$MG_T/drain2$x-gen.json" '(t.match(/"total_cost":([-+0-9.eE]+)/) || [])[1] || ""')"
done
# f[0], f[1]: usage and generation of a; f[2], f[3]: of b
D2_DRAINED="(u, g) => u.n === 1 && u.row.status === 499 && u.row.error_type === 'client_closed' &&
    u.row.completion_tokens === 40 && g.data.tokens_completion === 40 &&
    u.row.prompt_tokens === g.data.tokens_prompt && u.row.cost_eq === true &&
    u.row.cost_source === 'upstream'"
D2_ABORTED="(u, g) => u.n === 1 && u.row.status === 499 && u.row.error_type === 'client_closed' &&
    u.row.completion_tokens >= 3 && u.row.completion_tokens < 40 &&
    g.data.tokens_completion < 40 && u.row.cost_source !== 'upstream'"
expect_json "drain, 2 clients at once, max_drains 1: one drained (40 tokens, exact cost), the other aborted (< 40 tokens upstream and in its row)" "
    ((drained, aborted) => (drained(f[0], f[1]) && aborted(f[2], f[3])) ||
        (drained(f[2], f[3]) && aborted(f[0], f[1])))($D2_DRAINED, $D2_ABORTED)" \
    "$MG_T/drain2a-usage.json" "$MG_T/drain2a-gen.json" \
    "$MG_T/drain2b-usage.json" "$MG_T/drain2b-gen.json"
for x in a b; do
    tap_diag "client $x: usage row completion_tokens $(jv "$MG_T/drain2$x-usage.json" j.row.completion_tokens), cost $(jv "$MG_T/drain2$x-usage.json" j.row.cost_text) ($(jv "$MG_T/drain2$x-usage.json" j.row.cost_source)); mock tokens_completion $(jv "$MG_T/drain2$x-gen.json" j.data.tokens_completion)"
done
ends=
for rid in "$D2A_RID" "$D2B_RID"; do
    if drain_log "$rid" "client went away mid-stream; upstream drained"; then
        ends+=" drained"
    elif drain_log "$rid" "client went away mid-stream; upstream aborted"; then
        ends+=" aborted"
    else
        ends+=" ?"
    fi
done
if [ "$ends" = " drained aborted" ] || [ "$ends" = " aborted drained" ]; then
    tap_ok "drain, 2 clients at once: the responder logged one drain and one abort"
else
    tap_not_ok "drain, 2 clients at once: the responder logged one drain and one abort" \
        "got:$ends
$(grep -F -e "$D2A_RID" -e "$D2B_RID" "$DRAIN_LOG")"
fi

# 7c. The bound is free again: the next client that leaves is drained.
stream_req drain3 ';tokens=10;delay=100'
sse_to "$DRAIN_URL" drain3 closeAfter=3
D3_RID=$(jv "$MG_T/drain3.json" j.requestId)
wait_idle 10
wait_row "$D3_RID" 10
usage_json "$D3_RID" "$MG_T/drain3-usage.json"
expect_json "drain: afterwards the bound is free again: the next client that leaves is drained (10 tokens, cost from upstream)" "
    f[1].status === 200 && f[1].contentAtClose >= 3 && f[1].contentAtClose < 10 &&
    j.n === 1 && j.row.status === 499 && j.row.error_type === 'client_closed' &&
    j.row.completion_tokens === 10 && j.row.cost_source === 'upstream'" \
    "$MG_T/drain3-usage.json" "$MG_T/drain3.json"

check_eq "drain: no upstream stream left open" "$(open_streams)" 0
if pid_runs "$DRAIN_PID" modelgate-fcgi; then
    tap_ok "drain: the responder is still running"
else
    tap_not_ok "drain: the responder is still running"
fi
kill -TERM "$DRAIN_SERVER_PID" "$DRAIN_PID" 2>/dev/null
if wait_gone 10 "$DRAIN_SERVER_PID" "$DRAIN_PID"; then
    tap_ok "drain: its lighttpd and responder exit on SIGTERM"
else
    tap_not_ok "drain: its lighttpd and responder exit on SIGTERM"
fi

# ---------------------------------------------------------------------------
# Totals, shutdown.

check_eq "no upstream stream left open at the end" "$(open_streams)" 0
check_eq "usage rows: exactly one per authenticated chat request ($EXPECTED_ROWS)" \
    "$(usage_count)" "$EXPECTED_ROWS"

alive=()
for pid in "${RESPONDERS[@]}"; do
    pid_runs "$pid" modelgate-fcgi && alive+=("$pid")
done
check_eq "both responders survived every stream" "${#alive[@]}" "${#RESPONDERS[@]}"
kill -TERM "$LIGHTTPD_PID" "${alive[@]}" "$MOCK_PID" 2>/dev/null
if wait_gone 10 "$LIGHTTPD_PID" "${alive[@]}" "$MOCK_PID"; then
    tap_ok "lighttpd, the responders and the mock exit on SIGTERM"
else
    tap_not_ok "lighttpd, the responders and the mock exit on SIGTERM" \
        "still running: $(for p in "$LIGHTTPD_PID" "${alive[@]}" "$MOCK_PID"; do
            pid_alive "$p" && printf '%s ' "$p"; done)"
fi
reports=$(cat "$MG_T"/sanitizer.* 2>/dev/null)
check_eq "no AddressSanitizer/UndefinedBehaviorSanitizer reports" "${reports:-none}" none

printf '# runtime: %d ms\n' "$(ms_since "$T_BEGIN")"
tap_done
