'use strict';
// many-streams.cjs -- opens many streamed chat completions at the same
// moment and times each one, for test-many-streams.sh.  Plain node (http,
// child_process): no npm package.
//
//   node many-streams.cjs OUT URL KEY MODEL COUNT [name=value...]
//       pids=P1,P2,...  responder pids: their VmRSS is summed in each sample
//       db=NAME         database whose connections are counted in each
//                       sample (psql, with the PG* environment)
//       every=MS        sampling interval (200)
//       maxMs=MS        give up on streams still open after MS (60000)
//
// All COUNT requests are sent at once (one connection each, no agent
// pooling).  OUT gets JSON:
//   { count, t0, tEnd, streams: [{ status, requestId, error, timedOut,
//     tFirst, tFirstContent, tLastContent, tDone, contents, text, bodyEnd }],
//     samples: [{ t, open, first, done, rss, pgApp, pgAll }] }
// Times are ms since t0 (just before the first request goes out).  A
// stream is "open" from its first event to its [DONE].  rss is the sum of
// the responders' VmRSS in KiB; pgApp the database's connections named
// modelgate-fcgi, pgAll all its client connections but psql's own.
const http = require('http');
const fs = require('fs');
const { execFile } = require('child_process');

const [out, url, key, model, countArg, ...rest] = process.argv.slice(2);
const opt = {};
for (const a of rest) {
    const i = a.indexOf('=');
    if (i > 0) opt[a.slice(0, i)] = a.slice(i + 1);
}
const count = Number(countArg);
const pids = (opt.pids || '').split(',').filter((p) => /^\d+$/.test(p));
const every = Number(opt.every || 200);
const maxMs = Number(opt.maxMs || 60000);

const T0 = process.hrtime.bigint();
const now = () => Number(process.hrtime.bigint() - T0) / 1e6;

function rssKiB() {
    let sum = 0;
    for (const pid of pids) {
        try {
            const m = /^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
            if (m) sum += Number(m[1]);
        } catch (e) {
            return null;   // a responder is gone
        }
    }
    return sum;
}

const PG_QUERY = "SELECT count(*) FILTER (WHERE application_name = 'modelgate-fcgi'), count(*) " +
    'FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ' +
    // an autovacuum worker shows with the database's name too: not a connection
    "AND backend_type = 'client backend'";

function pgCount() {
    return new Promise((resolve) => {
        if (!opt.db) {
            resolve(null);
            return;
        }
        execFile('psql', ['-X', '-A', '-t', '-q', '-d', opt.db, '-c', PG_QUERY],
            { timeout: 5000 }, (err, stdout) => {
                const m = /^(\d+)\|(\d+)/.exec(String(stdout || '').trim());
                resolve(err || !m ? null : { app: Number(m[1]), all: Number(m[2]) });
            });
    });
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

const body = (i) => JSON.stringify({
    model,
    messages: [{ role: 'user', content: 'many ' + i }],
    stream: true,
});

const streams = [];
let finished = 0;
let allDone;
const allDoneP = new Promise((r) => { allDone = r; });

function one(i) {
    const s = {
        status: 0, requestId: null, error: null, timedOut: false, tFirst: null,
        tFirstContent: null, tLastContent: null, tDone: null, contents: 0, text: '',
        bodyEnd: false,
    };
    streams.push(s);
    let settled = false;
    const settle = () => {
        if (settled) return;
        settled = true;
        finished++;
        if (finished === count) allDone();
    };
    const payload = Buffer.from(body(i));
    const req = http.request(url, {
        method: 'POST',
        agent: false,
        headers: {
            Authorization: 'Bearer ' + key,
            'Content-Type': 'application/json',
            Accept: 'text/event-stream',
            'Content-Length': payload.length,
            Connection: 'close',
        },
    }, (res) => {
        s.status = res.statusCode;
        s.requestId = res.headers['x-request-id'] || null;
        res.setEncoding('utf8');
        let pending = '';
        res.on('data', (text) => {
            pending += text;
            for (;;) {
                const m = /\r\n\r\n|\n\n/.exec(pending);
                if (m === null) break;
                const block = pending.slice(0, m.index);
                pending = pending.slice(m.index + m[0].length);
                let data = null;
                for (const line of block.split(/\r\n|\n/)) {
                    if (line.startsWith('data:')) data = line.slice(5).replace(/^ /, '');
                }
                if (data === null) continue;   // a comment (": ping")
                const t = now();
                if (s.tFirst === null) s.tFirst = t;
                if (data === '[DONE]') {
                    if (s.tDone === null) s.tDone = t;
                    continue;
                }
                const c = contentOf(data);
                if (c !== null) {
                    if (s.tFirstContent === null) s.tFirstContent = t;
                    s.tLastContent = t;
                    s.contents++;
                    s.text += c;
                }
            }
        });
        res.on('end', () => {
            s.bodyEnd = true;
            settle();
        });
        res.on('error', (e) => {
            s.error = s.error || e.message;
            settle();
        });
    });
    req.on('error', (e) => {
        s.error = s.error || e.message;
        settle();
    });
    req.on('close', settle);
    s.req = req;
    req.end(payload);
}

const samples = [];
let sampling = true;

async function sampler() {
    while (sampling) {
        const t = now();
        const pg = await pgCount();
        let open = 0, first = 0, done = 0;
        for (const s of streams) {
            if (s.tFirst !== null) first++;
            if (s.tDone !== null) done++;
            if (s.tFirst !== null && s.tDone === null) open++;
        }
        samples.push({ t: Math.round(t), open, first, done, rss: rssKiB(),
            pgApp: pg && pg.app, pgAll: pg && pg.all });
        const wait = every - (now() - t);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
}

async function main() {
    const t0 = now();
    for (let i = 0; i < count; i++) one(i);
    const samplerP = sampler();
    const timer = setTimeout(() => {
        for (const s of streams) {
            if (s.tDone === null || !s.bodyEnd) {
                s.timedOut = true;
                s.req.destroy();
            }
        }
    }, maxMs);
    await allDoneP;
    const tEnd = now();
    clearTimeout(timer);
    sampling = false;
    await samplerP;
    for (const s of streams) delete s.req;
    fs.writeFileSync(out, JSON.stringify({ count, t0, tEnd, streams, samples }));
}

main().catch((e) => {
    console.error(e && e.stack ? e.stack : String(e));
    process.exit(2);
});
