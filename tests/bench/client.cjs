'use strict';
// tests/bench/client.cjs -- the small HTTP clients of tests/bench/run.
//
//   node client.cjs ttft URL N KEY BODY-FILE [HEADER...]
//       N streamed requests one after the other on one keep-alive
//       connection; prints JSON with the milliseconds to the response
//       headers, to the first content token and to the end (median, p99).
//   node client.cjs hold URL N KEY BODY-FILE SIGNAL-FILE [HEADER...]
//       N streamed requests at once; writes "open K" to SIGNAL-FILE when
//       each has delivered its first content token (or after 30 s with the
//       number that had), then waits for all of them; prints JSON.
//   node client.cjs seq URL N KEY BODY-FILE [HEADER...]
//       N requests one after the other; prints JSON with the status counts.
//
// HEADER is "Name: value".  Nothing is retried; every failure is counted.

const http = require('http');
const fs = require('fs');

const [mode, url, nText, key, bodyFile, ...rest] = process.argv.slice(2);
const n = Number(nText);
if (!['ttft', 'hold', 'seq'].includes(mode) || !url || !(n > 0) || !key || !bodyFile) {
    process.stderr.write('usage: client.cjs ttft|hold|seq URL N KEY BODY-FILE [SIGNAL-FILE] [HEADER...]\n');
    process.exit(2);
}
const signalFile = mode === 'hold' ? rest.shift() : null;
const body = fs.readFileSync(bodyFile);
const headers = {
    'Content-Type': 'application/json',
    'Content-Length': body.length,
    Authorization: 'Bearer ' + key,
};
for (const h of rest) {
    const i = h.indexOf(':');
    if (i > 0) headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}
const target = new URL(url);

function quantile(xs, q) {
    if (xs.length === 0) return null;
    const s = [...xs].sort((a, b) => a - b);
    const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
    return Math.round(s[i] * 1000) / 1000;
}
function summary(xs) {
    return { p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), n: xs.length };
}
const msSince = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

// True when one SSE data line carries a non-empty content delta.
function hasContent(line) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') return false;
    try {
        const j = JSON.parse(line.slice(6));
        return (j.choices || []).some((c) => c.delta && typeof c.delta.content === 'string' &&
            c.delta.content.length > 0);
    } catch (e) {
        return false;
    }
}

// One request; resolves {status, headersMs, firstMs, doneMs, done, text}.
function one(agent, stream, onFirst) {
    return new Promise((resolve) => {
        const t0 = process.hrtime.bigint();
        const r = { status: 0, headersMs: null, firstMs: null, doneMs: null, done: false, error: null };
        const req = http.request({
            host: target.hostname, port: target.port, path: target.pathname + target.search,
            method: 'POST', headers, agent,
        }, (res) => {
            r.status = res.statusCode;
            r.headersMs = msSince(t0);
            let pending = '';
            res.setEncoding('utf8');
            res.on('data', (chunk) => {
                if (!stream) return;
                pending += chunk;
                let i;
                while ((i = pending.indexOf('\n')) >= 0) {
                    const line = pending.slice(0, i).replace(/\r$/, '');
                    pending = pending.slice(i + 1);
                    if (r.firstMs === null && hasContent(line)) {
                        r.firstMs = msSince(t0);
                        if (onFirst) onFirst();
                    }
                    if (line === 'data: [DONE]') r.done = true;
                }
            });
            res.on('end', () => {
                r.doneMs = msSince(t0);
                resolve(r);
            });
            res.on('error', (e) => {
                r.error = e.message;
                resolve(r);
            });
        });
        req.on('error', (e) => {
            r.error = e.message;
            resolve(r);
        });
        req.end(body);
    });
}

function ok(r, stream) {
    return r.error === null && r.status >= 200 && r.status < 300 && (!stream || (r.done && r.firstMs !== null));
}

async function ttft() {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const h = [], f = [], d = [], errors = [];
    for (let i = 0; i < n; i++) {
        const r = await one(agent, true);
        if (!ok(r, true)) {
            errors.push(r.error || 'status ' + r.status + (r.done ? '' : ', no [DONE]'));
            continue;
        }
        h.push(r.headersMs);
        f.push(r.firstMs);
        d.push(r.doneMs);
    }
    agent.destroy();
    return { n, ok: f.length, errors: errors.length, first_errors: errors.slice(0, 3),
        headers_ms: summary(h), first_token_ms: summary(f), done_ms: summary(d) };
}

async function hold() {
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    let first = 0, signalled = false;
    const signal = () => {
        if (signalled) return;
        signalled = true;
        fs.writeFileSync(signalFile, 'open ' + first + '\n');
    };
    const timer = setTimeout(signal, 30000);
    const all = [];
    for (let i = 0; i < n; i++) {
        all.push(one(agent, true, () => {
            first++;
            if (first === n) signal();
        }));
    }
    const rs = await Promise.all(all);
    clearTimeout(timer);
    signal();
    const bad = rs.filter((r) => !ok(r, true));
    return { n, opened: first, completed: rs.length - bad.length, errors: bad.length,
        first_errors: bad.slice(0, 3).map((r) => r.error || 'status ' + r.status) };
}

async function seq() {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const statuses = {};
    let errors = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
        const r = await one(agent, false);
        const k = r.error ? 'error' : String(r.status);
        statuses[k] = (statuses[k] || 0) + 1;
        if (!ok(r, false)) errors++;
    }
    agent.destroy();
    return { n, errors, statuses, seconds: msSince(t0) / 1000 };
}

({ ttft, hold, seq })[mode]().then((out) => {
    process.stdout.write(JSON.stringify(out) + '\n');
}, (e) => {
    process.stderr.write('client.cjs: ' + e.stack + '\n');
    process.exit(1);
});
