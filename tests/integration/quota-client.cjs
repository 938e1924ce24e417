'use strict';
// tests/integration/quota-client.cjs -- the client side of test-quotas.sh:
// bursts of concurrent requests, and the official `openai` npm client
// against a project's rate limit and spend cap.
//
//   node quota-client.cjs burst URL KEY BODY-FILE N
//       sends the body N times at once (POST URL, Authorization: Bearer KEY)
//       and prints one JSON object: {n, status: {CODE: count}, bad: [...],
//       remaining: [x-ratelimit-remaining-requests of each 200, sorted],
//       ms: wall-clock milliseconds of the whole burst}.  bad lists answers
//       that are neither a chat completion (200) nor an RPM refusal (429
//       rate_limit_exceeded, type requests, with Retry-After and
//       retry-after-ms).
//
//   node quota-client.cjs sdk
//       TAP checks with the openai client.  Environment: MG_BASE_URL (the
//       gateway's /v1 URL), MG_CAP_KEY (a key of a project whose spend cap
//       is used up), MG_RPM_KEY (a key of a project with rpm 30 and nothing
//       else).  Prints "# admitted: N", the requests of MG_RPM_KEY's
//       project that got a 200.

const fs = require('node:fs');
const assert = require('node:assert/strict');

const CHAT_MODEL = 'mock/echo';

async function burst(url, key, bodyFile, n) {
    const body = fs.readFileSync(bodyFile);
    const t0 = Date.now();
    const one = async () => {
        try {
            const r = await fetch(url, {
                method: 'POST',
                headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
                body,
                signal: AbortSignal.timeout(60000),
            });
            const text = await r.text();
            return { status: r.status, headers: r.headers, text };
        } catch (e) {
            return { status: 0, headers: new Headers(), text: String(e) };
        }
    };
    const answers = await Promise.all(Array.from({ length: n }, one));
    const out = { n, status: {}, bad: [], remaining: [], ms: Date.now() - t0 };
    for (const a of answers) {
        out.status[a.status] = (out.status[a.status] || 0) + 1;
        let j;
        try { j = JSON.parse(a.text); } catch (e) { j = undefined; }
        if (a.status === 200 && j && j.object === 'chat.completion') {
            out.remaining.push(Number(a.headers.get('x-ratelimit-remaining-requests')));
            continue;
        }
        if (a.status === 429 && j && j.error && j.error.code === 'rate_limit_exceeded' &&
            j.error.type === 'requests' && /^[1-9][0-9]*$/.test(a.headers.get('retry-after') || '') &&
            /^[1-9][0-9]*$/.test(a.headers.get('retry-after-ms') || '') &&
            a.headers.get('x-ratelimit-remaining-requests') === '0')
            continue;
        if (out.bad.length < 5) out.bad.push({ status: a.status, body: a.text.slice(0, 300) });
        else out.bad.push({ status: a.status });
    }
    out.remaining.sort((a, b) => a - b);
    process.stdout.write(JSON.stringify(out) + '\n');
}

// ---------------------------------------------------------------------------

let count = 0;
let failed = 0;

async function check(description, fn) {
    count++;
    try {
        await fn();
        console.log(`ok ${count} - ${description}`);
    } catch (e) {
        failed++;
        console.log(`not ok ${count} - ${description}`);
        const text = e && e.stack ? e.stack : String(e);
        for (const line of text.split('\n').slice(0, 12)) console.log(`#   ${line}`);
        if (e && e.error !== undefined) console.log(`#   error body: ${JSON.stringify(e.error)}`);
    }
}

async function sdk() {
    const { OpenAI } = require('openai');
    const baseURL = process.env.MG_BASE_URL;
    const capKey = process.env.MG_CAP_KEY;
    const rpmKey = process.env.MG_RPM_KEY;
    let admitted = 0;

    if (!baseURL || !capKey || !rpmKey) {
        console.log('Bail out! MG_BASE_URL, MG_CAP_KEY and MG_RPM_KEY must be set');
        process.exit(2);
    }
    // Every attempt the client makes: its status, when it was answered, and
    // the retry headers.
    let attempts = [];
    const recordingFetch = async (url, init) => {
        const r = await fetch(url, init);
        attempts.push({ status: r.status, at: Date.now(), retryMs: r.headers.get('retry-after-ms') });
        return r;
    };
    const client = (key, options) => new OpenAI({
        apiKey: key, baseURL, timeout: 30000, fetch: recordingFetch, ...options,
    });
    const ask = (c) => c.chat.completions.create({
        model: CHAT_MODEL,
        messages: [{ role: 'user', content: 'quota sdk' }],
        max_tokens: 8,
    });

    async function expectRateLimit(fn) {
        let caught = null;
        try {
            await fn();
        } catch (e) {
            caught = e;
        }
        assert.ok(caught !== null, 'expected OpenAI.RateLimitError, but the call succeeded');
        assert.ok(caught instanceof OpenAI.RateLimitError,
            `expected RateLimitError, got ${caught.constructor && caught.constructor.name}: ${caught.message}`);
        assert.equal(caught.status, 429);
        return caught;
    }

    await check('spend cap: RateLimitError (429, code spend_cap_exceeded, type insufficient_quota), ' +
        'no retry although maxRetries is 2', async () => {
        attempts = [];
        const c = client(capKey, {});
        assert.equal(c.maxRetries, 2, 'the default maxRetries');
        const t0 = Date.now();
        const e = await expectRateLimit(() => ask(c));
        const ms = Date.now() - t0;
        assert.equal(e.code, 'spend_cap_exceeded');
        assert.equal(e.type, 'insufficient_quota');
        assert.equal(e.headers.get('x-should-retry'), 'false');
        assert.deepEqual(attempts.map((a) => a.status), [429], 'attempts made by the client');
        assert.ok(ms < 3000, `the call took ${ms} ms`);
    });

    // Empties the rpm-30 bucket: 35 requests at once; some must be refused.
    const drain = async () => {
        const c = client(rpmKey, { maxRetries: 0 });
        const results = await Promise.allSettled(Array.from({ length: 35 }, () => ask(c)));
        const refused = results.filter((r) => r.status === 'rejected');
        admitted += results.length - refused.length;
        assert.ok(refused.length > 0, 'no request of 35 was refused at rpm 30');
        for (const r of refused) {
            assert.ok(r.reason instanceof OpenAI.RateLimitError, String(r.reason));
            assert.equal(r.reason.code, 'rate_limit_exceeded');
        }
    };

    await check('RPM: RateLimitError (429, code rate_limit_exceeded, type requests) with ' +
        'retry-after-ms <= 2000 and Retry-After its ceiling in seconds', async () => {
        // The bucket is empty, unless this machine stalled for 2 s since the
        // last refusal of the drain: then empty it again (three tries).
        let refused = null;
        for (let i = 0; i < 3 && refused === null; i++) {
            await drain();
            attempts = [];
            try {
                await ask(client(rpmKey, { maxRetries: 0 }));
                admitted++;
            } catch (caught) {
                refused = caught;
            }
        }
        const e = await expectRateLimit(async () => {
            if (refused !== null) throw refused;
        });
        assert.equal(e.code, 'rate_limit_exceeded');
        assert.equal(e.type, 'requests');
        const ms = Number(e.headers.get('retry-after-ms'));
        assert.ok(Number.isInteger(ms) && ms > 0 && ms <= 2000, `retry-after-ms ${ms}`);
        assert.equal(Number(e.headers.get('retry-after')), Math.ceil(ms / 1000));
        assert.equal(e.headers.get('x-should-retry'), null);
        assert.equal(e.headers.get('x-ratelimit-limit-requests'), '30');
        assert.equal(e.headers.get('x-ratelimit-remaining-requests'), '0');
        assert.deepEqual(attempts.map((a) => a.status), [429]);
    });

    await check('RPM: the client\'s default retries (maxRetries 2) succeed once the bucket ' +
        'refills, after waiting retry-after-ms', async () => {
        // The bucket is empty, unless this machine stalled for 2 s since the
        // last refusal: then empty it again (three tries).
        let seen = [];
        for (let i = 0; i < 3; i++) {
            await drain();
            attempts = [];
            const t0 = Date.now();
            const r = await ask(client(rpmKey, {}));
            admitted++;
            assert.equal(r.object, 'chat.completion');
            assert.equal(r.choices[0].message.content, 'mock reply: quota sdk');
            seen = attempts.map((a) => a.status);
            if (seen.length >= 2) {
                assert.equal(seen[seen.length - 1], 200);
                assert.ok(seen.slice(0, -1).every((s) => s === 429), `attempts ${seen}`);
                assert.ok(seen.length <= 3, `attempts ${seen}`);
                const waited = attempts[attempts.length - 1].at - attempts[0].at;
                const asked = Number(attempts[0].retryMs);
                assert.ok(asked > 0 && asked <= 2000, `retry-after-ms ${asked}`);
                assert.ok(waited >= asked, `the client waited ${waited} ms, asked ${asked} ms`);
                assert.ok(Date.now() - t0 < 10000, 'the retried call took over 10 s');
                return;
            }
        }
        assert.fail(`the first attempt was never refused (attempts ${seen})`);
    });

    console.log(`1..${count}`);
    console.log(`# admitted: ${admitted}`);
    process.exit(failed > 0 ? 1 : 0);
}

async function main() {
    const [mode, ...args] = process.argv.slice(2);
    if (mode === 'burst' && args.length === 4) {
        await burst(args[0], args[1], args[2], Number(args[3]));
    } else if (mode === 'sdk') {
        await sdk();
    } else {
        console.error('usage: quota-client.cjs burst URL KEY BODY-FILE N | sdk');
        process.exit(2);
    }
}

main().catch((e) => {
    console.log(`Bail out! ${e && e.stack ? e.stack : e}`);
    process.exit(2);
});
