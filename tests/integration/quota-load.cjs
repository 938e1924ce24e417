'use strict';
// tests/integration/quota-load.cjs -- concurrent and continuous chat
// requests for test-quota-hosts.sh, with node's http module only.
//
// Usage:
//   node quota-load.cjs burst OUT N BODY URL KEY [URL KEY ...]
//   node quota-load.cjs loop OUT STOPFILE WORKERS PAUSE-MS BODY URL KEY [URL KEY ...]
//
// BODY is a request body in which every "{{i}}" becomes the request's
// number, zero-padded to three digits, so that all bodies have the same
// length.  Request i goes to target i mod (number of targets), with
// "Authorization: Bearer KEY", on a connection of its own.
//
// burst: starts N POSTs at once (all of them are handed to their sockets
// before the first answer is read), waits for every answer and writes OUT,
// a JSON array with one result per request, in request order.
//
// loop: WORKERS clients, each sending one request after the other (PAUSE-MS
// between them, cycling through the targets from its own offset) until the
// file STOPFILE exists; one JSON result a line, appended to OUT as each
// answer arrives (OUT can be read while the loop runs).
//
// A result: {i, target, status (0: no answer), code, type (of an OpenAI
// error object), shouldRetry (x-should-retry), rid (x-request-id),
// start, end (epoch ms), ms (duration), done ("data: [DONE]" seen),
// content (choices[0].message.content), error (transport), head (the
// first 300 bytes of the body)}.

const http = require('node:http');
const fs = require('node:fs');

const TIMEOUT_MS = 60000;
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function targets(args) {
    const t = [];
    for (let i = 0; i + 1 < args.length; i += 2)
        t.push({ url: new URL(args[i]), key: args[i + 1] });
    if (t.length === 0)
        throw new Error('no URL KEY pair');
    return t;
}

function bodyFor(template, i) {
    return template.split('{{i}}').join(String(i).padStart(3, '0'));
}

// One POST; resolves with its result (never rejects).
function post(i, target, body) {
    return new Promise((resolve) => {
        const r = {
            i, target: target.url.host, status: 0, code: null, type: null,
            shouldRetry: null, rid: null, start: Date.now(), end: null, ms: null,
            done: false, content: null, error: null, head: '',
        };
        const t0 = process.hrtime.bigint();
        let settled = false;
        const finish = (error) => {
            if (settled) return;
            settled = true;
            r.end = Date.now();
            r.ms = Math.round(Number(process.hrtime.bigint() - t0) / 1e5) / 10;
            if (error) r.error = String(error.message || error);
            resolve(r);
        };
        const req = http.request({
            agent, method: 'POST', host: target.url.hostname, port: target.url.port,
            path: target.url.pathname, timeout: TIMEOUT_MS,
            headers: {
                'Authorization': 'Bearer ' + target.key,
                'Content-Type': 'application/json',
                'Content-Length': Buffer.byteLength(body),
                'Connection': 'close',
            },
        }, (res) => {
            const chunks = [];
            r.status = res.statusCode;
            r.rid = res.headers['x-request-id'] || null;
            r.shouldRetry = res.headers['x-should-retry'] || null;
            res.on('data', (c) => chunks.push(c));
            res.on('error', finish);
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                r.head = text.slice(0, 300);
                r.done = text.includes('data: [DONE]');
                try {
                    const j = JSON.parse(text);
                    if (j && j.error) {
                        r.code = j.error.code;
                        r.type = j.error.type;
                    } else if (j && j.choices && j.choices[0] && j.choices[0].message) {
                        r.content = j.choices[0].message.content;
                    }
                } catch (e) {
                    // a stream, or not JSON: head shows it
                }
                finish(null);
            });
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', finish);
        req.end(body);
    });
}

async function burst(out, n, template, ts) {
    const all = [];
    for (let i = 0; i < n; i++)
        all.push(post(i, ts[i % ts.length], bodyFor(template, i)));
    fs.writeFileSync(out, JSON.stringify(await Promise.all(all)) + '\n');
}

async function loop(out, stopFile, workers, pauseMs, template, ts) {
    let n = 0;
    fs.writeFileSync(out, '');
    const worker = async (w) => {
        for (let k = w; !fs.existsSync(stopFile); k++) {
            const i = n++ % 1000;
            const r = await post(i, ts[k % ts.length], bodyFor(template, i));
            r.w = w;
            fs.appendFileSync(out, JSON.stringify(r) + '\n');
            await new Promise((ok) => setTimeout(ok, pauseMs));
        }
    };
    const ws = [];
    for (let w = 0; w < workers; w++)
        ws.push(worker(w));
    await Promise.all(ws);
}

const [mode, ...args] = process.argv.slice(2);
let run;
if (mode === 'burst' && args.length >= 5)
    run = burst(args[0], Number(args[1]), args[2], targets(args.slice(3)));
else if (mode === 'loop' && args.length >= 7)
    run = loop(args[0], args[1], Number(args[2]), Number(args[3]), args[4], targets(args.slice(5)));
if (!run) {
    process.stderr.write('usage: node quota-load.cjs burst OUT N BODY URL KEY [URL KEY ...]\n' +
        '       node quota-load.cjs loop OUT STOPFILE WORKERS PAUSE-MS BODY URL KEY [URL KEY ...]\n');
    process.exit(2);
}
run.then(() => process.exit(0), (e) => {
    process.stderr.write(String(e && e.stack || e) + '\n');
    process.exit(1);
});
