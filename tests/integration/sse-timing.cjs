'use strict';
// tests/integration/sse-timing.cjs -- one streamed chat completion, timed
// at the client.  Run by test-servers-stream.sh, once straight to the mock
// upstream and once through each web server.
//
// Usage: node sse-timing.cjs URL KEY MODEL
//
// POSTs {"model": MODEL, "stream": true, "messages": [...]} to URL with
// "Authorization: Bearer KEY" and "Connection: close", on a connection of
// its own, and reads the body chunk by chunk as it arrives.  Every time is
// in milliseconds (process.hrtime, fractions kept) from the moment the
// request was handed to the socket.
//
// Prints one JSON object:
//   status, httpVersion, headers       the response head (lower-case names)
//   tHeaders                           the response head arrived
//   tFirstByte                         the first body byte arrived
//   tFirstContent                      the first event with delta.content
//   contentTimes, contents             every content event: when, and text
//   gaps                               between consecutive content events
//   spread                             first to last content event
//   reads                              body chunks read from the socket
//   events                             data events, comments not counted
//   lastData                           data of the last event
//   tDone                              "data: [DONE]" arrived (null: never)
//   afterDone                          body text after the [DONE] event
//   complete                           the body ended properly (final
//                                      chunk of a chunked body)
//   tEnd, tClose                       body end, connection closed
//   error                              what went wrong, or null
// Exits 0 once the connection is closed, 1 on an error or after 20 s.

const http = require('node:http');

const [url, key, model] = process.argv.slice(2);
if (!url || !key || !model) {
    process.stderr.write('usage: node sse-timing.cjs URL KEY MODEL\n');
    process.exit(2);
}

const body = JSON.stringify({
    model,
    stream: true,
    messages: [{ role: 'user', content: 'timing' }],
});

const r = {
    status: null, httpVersion: null, headers: {},
    tHeaders: null, tFirstByte: null, tFirstContent: null,
    contentTimes: [], contents: [], gaps: [], spread: null,
    reads: 0, events: 0, lastData: null, tDone: null, afterDone: '',
    complete: false, tEnd: null, tClose: null, error: null,
};

let t0 = null;
const now = () => Number(process.hrtime.bigint() - t0) / 1e6;
const round = (x) => (x === null ? null : Math.round(x * 10) / 10);

let finished = false;
function finish(error) {
    if (finished) return;
    finished = true;
    if (error && !r.error) r.error = error;
    for (let i = 1; i < r.contentTimes.length; i++)
        r.gaps.push(r.contentTimes[i] - r.contentTimes[i - 1]);
    if (r.contentTimes.length > 0)
        r.spread = r.contentTimes[r.contentTimes.length - 1] - r.contentTimes[0];
    for (const k of ['tHeaders', 'tFirstByte', 'tFirstContent', 'spread', 'tDone', 'tEnd', 'tClose'])
        r[k] = round(r[k]);
    r.contentTimes = r.contentTimes.map(round);
    r.gaps = r.gaps.map(round);
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(r.error ? 1 : 0);
}

// Server-sent events: blocks separated by a blank line; "data:" lines
// joined with "\n"; lines starting with ":" are comments.
let text = '';
function onEvent(block, t) {
    const data = [];
    for (const line of block.split('\n')) {
        if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length === 0) return;    // a comment or an empty block
    const d = data.join('\n');
    r.events++;
    r.lastData = d;
    if (r.tDone !== null) {
        r.afterDone += block + '\n\n';
        return;
    }
    if (d === '[DONE]') {
        r.tDone = t;
        return;
    }
    let j;
    try { j = JSON.parse(d); } catch (e) { return; }
    const delta = j && Array.isArray(j.choices) && j.choices[0] && j.choices[0].delta;
    if (delta && typeof delta.content === 'string' && delta.content.length > 0) {
        if (r.tFirstContent === null) r.tFirstContent = t;
        r.contentTimes.push(t);
        r.contents.push(delta.content);
    }
}

const req = http.request(url, {
    method: 'POST',
    agent: false,
    headers: {
        'Authorization': `Bearer ${key}`,
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
        'Accept': 'text/event-stream',
        'Connection': 'close',
    },
});
req.setNoDelay(true);

req.on('response', (res) => {
    r.tHeaders = now();
    r.status = res.statusCode;
    r.httpVersion = res.httpVersion;
    r.headers = res.headers;
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
        const t = now();
        if (r.tFirstByte === null) r.tFirstByte = t;
        r.reads++;
        text += chunk.replace(/\r\n?/g, '\n');
        let i;
        while ((i = text.indexOf('\n\n')) >= 0) {
            const block = text.slice(0, i);
            text = text.slice(i + 2);
            onEvent(block, t);
        }
    });
    res.on('end', () => {
        r.tEnd = now();
        r.complete = res.complete;
        if (text.trim() !== '') {
            if (r.tDone !== null) r.afterDone += text;
            else r.error = 'the body ends inside an event: ' + JSON.stringify(text.slice(0, 200));
        }
    });
    res.on('aborted', () => { r.error = r.error || 'response aborted'; });
    res.on('error', (e) => { r.error = r.error || 'response: ' + e.message; });
});
req.on('socket', (sock) => {
    sock.on('close', () => {
        r.tClose = now();
        // 'end' comes before 'close' on a proper end; give it a turn
        setImmediate(() => finish(r.tEnd === null ? 'connection closed before the body ended' : null));
    });
});
req.on('error', (e) => finish('request: ' + e.message));
setTimeout(() => finish('no end after 20 s'), 20000).unref();

t0 = process.hrtime.bigint();
req.end(body);
