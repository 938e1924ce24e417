'use strict';
// tests/integration/openai-stream.cjs -- streamed chat completions through
// the gateway with the official `openai` npm client, the way applications
// consume them.  Run by test-streaming.sh.
//
// Environment:
//   MG_BASE_URL  the gateway's OpenAI base URL, http://127.0.0.1:PORT/v1
//   MG_API_KEY   a valid modelgate key
//   MG_MOCK_URL  the mock upstream, http://127.0.0.1:PORT: the abort checks
//                watch its open_streams
//
// Prints TAP ("ok N - ...", "not ok N - ...", "1..N"), then
//   "# request: NAME REQUEST-ID STATUS"  a request whose usage row the
//                                        caller checks (status expected)
//   "# calls: N"                         chat requests sent with the valid
//                                        key, one usage row each
// Exits 1 if a check failed.

const assert = require('node:assert/strict');
const { OpenAI, APIError, APIUserAbortError, BadRequestError } = require('openai');

const baseURL = process.env.MG_BASE_URL;
const apiKey = process.env.MG_API_KEY;
const mockURL = process.env.MG_MOCK_URL;
const MODEL = 'openai/gpt-4o-mini';

let count = 0;
let failed = 0;
let calls = 0;
const requests = [];

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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The x-request-id of the last answer the client received.
let lastRequestId = null;
async function recordingFetch(url, init) {
    const r = await fetch(url, init);
    lastRequestId = r.headers.get('x-request-id');
    return r;
}

const client = new OpenAI({
    apiKey,
    baseURL,
    maxRetries: 0,
    timeout: 30000,
    fetch: recordingFetch,
});

// A request whose usage row test-streaming.sh looks for.
function expectRow(name, status) {
    assert.match(String(lastRequestId), /^req_[0-9a-f]+$/, `x-request-id of ${name}`);
    requests.push(`${name} ${lastRequestId} ${status}`);
}

async function openStreams() {
    const r = await fetch(`${mockURL}/__mock/stats`);
    assert.equal(r.status, 200, 'mock /__mock/stats');
    return (await r.json()).open_streams;
}

// Milliseconds until the mock has no stream open (at most limit), or -1.
async function msUntilIdle(limit) {
    const t0 = Date.now();
    while (Date.now() - t0 <= limit) {
        if ((await openStreams()) === 0) return Date.now() - t0;
        await sleep(20);
    }
    return -1;
}

function tokens(n) {
    let s = '';
    for (let k = 1; k <= n; k++) s += `tok${k} `;
    return s;
}

function params(options, extra) {
    return {
        model: `${MODEL};${options}`,
        messages: [{ role: 'user', content: 'stream through the sdk' }],
        ...extra,
    };
}

async function main() {
    assert.ok(baseURL && apiKey && mockURL, 'MG_BASE_URL, MG_API_KEY and MG_MOCK_URL are required');

    await check('for await over create({stream: true}) yields every token in order, no usage-only chunk', async () => {
        const stream = await client.chat.completions.create(params('tokens=8', { stream: true }));
        calls++;
        expectRow('sdk-iterate', 200);
        let text = '';
        const chunks = [];
        for await (const chunk of stream) {
            chunks.push(chunk);
            text += chunk.choices[0]?.delta?.content ?? '';
        }
        assert.equal(text, tokens(8));
        assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
        assert.equal(chunks[0].choices[0].delta.role, 'assistant');
        assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'stop');
        assert.ok(!chunks.some((c) => c.choices.length === 0), 'a usage-only chunk without include_usage');
    });

    await check('stream_options.include_usage: the last chunk has choices [] and a usage object', async () => {
        const stream = await client.chat.completions.create(
            params('tokens=3', { stream: true, stream_options: { include_usage: true } }));
        calls++;
        expectRow('sdk-usage', 200);
        const chunks = [];
        for await (const chunk of stream) chunks.push(chunk);
        const last = chunks[chunks.length - 1];
        assert.equal(last.choices.length, 0);
        assert.ok(last.usage && typeof last.usage === 'object', 'usage object');
        assert.equal(last.usage.completion_tokens, 3);
        assert.ok(last.usage.prompt_tokens > 0);
        assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + 3);
        assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), tokens(3));
    });

    await check('chat.completions.stream() helper: finalChatCompletion() has the message and usage', async () => {
        const runner = client.chat.completions.stream(
            params('tokens=4', { stream_options: { include_usage: true } }));
        const deltas = [];
        runner.on('content', (delta) => deltas.push(delta));
        const done = await runner.finalChatCompletion();
        calls++;
        expectRow('sdk-helper', 200);
        assert.equal(done.choices.length, 1);
        assert.equal(done.choices[0].message.role, 'assistant');
        assert.equal(done.choices[0].message.content, tokens(4));
        assert.equal(done.choices[0].finish_reason, 'stop');
        assert.ok(done.usage, 'usage in the final completion');
        assert.equal(done.usage.completion_tokens, 4);
        assert.equal(done.usage.total_tokens, done.usage.prompt_tokens + 4);
        assert.equal(deltas.join(''), tokens(4));
    });

    await check('chat.completions.stream() helper without include_usage: finalChatCompletion() works', async () => {
        const runner = client.chat.completions.stream(params('tokens=2', {}));
        const done = await runner.finalChatCompletion();
        calls++;
        assert.equal(done.choices[0].message.content, tokens(2));
        assert.equal(done.choices[0].finish_reason, 'stop');
        assert.equal(await runner.finalContent(), tokens(2));
    });

    await check('a mid-stream upstream failure (midfail=2) throws APIError (status undefined) after 2 tokens', async () => {
        const stream = await client.chat.completions.create(params('tokens=5;midfail=2', { stream: true }));
        calls++;
        expectRow('sdk-midfail', 502);
        let text = '';
        let caught = null;
        try {
            for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
        } catch (e) {
            caught = e;
        }
        assert.ok(caught !== null, 'the iteration ended without an error');
        assert.ok(caught instanceof APIError,
            `expected APIError, got ${caught && caught.constructor && caught.constructor.name}: ${caught}`);
        assert.equal(caught.status, undefined);
        assert.equal(typeof caught.message, 'string');
        assert.ok(caught.message.length > 0);
        assert.equal(typeof caught.type, 'string');
        assert.equal(text, tokens(2));
    });

    await check('an upstream 400 before the first byte throws BadRequestError (400) from create()', async () => {
        let caught = null;
        try {
            await client.chat.completions.create(params('fail=400', { stream: true }));
        } catch (e) {
            caught = e;
        }
        calls++;
        assert.ok(caught instanceof BadRequestError, `got ${caught}`);
        assert.equal(caught.status, 400);
        assert.equal(caught.error && caught.error.message, 'mock failure 400');
    });

    await check('AbortController after 3 chunks ends the upstream call (open_streams 0 within 2 s)', async () => {
        assert.equal(await openStreams(), 0, 'a stream is open before the check');
        const ac = new AbortController();
        const stream = await client.chat.completions.create(
            params('tokens=50;delay=100', { stream: true }), { signal: ac.signal });
        calls++;
        expectRow('sdk-abort', 499);
        let content = 0;
        let openAtAbort = null;
        let caught = null;
        try {
            for await (const chunk of stream) {
                if (chunk.choices[0]?.delta?.content) content++;
                if (content === 3 && openAtAbort === null) {
                    openAtAbort = await openStreams();
                    ac.abort();
                }
            }
        } catch (e) {
            caught = e;
        }
        const took = await msUntilIdle(2000);
        assert.ok(caught === null || caught instanceof APIUserAbortError || caught.name === 'AbortError',
            `unexpected error: ${caught}`);
        assert.ok(openAtAbort >= 1, `open_streams at the abort: ${openAtAbort}`);
        assert.ok(content >= 3 && content < 50, `content chunks: ${content}`);
        assert.ok(took >= 0, 'the mock still streams 2 s after the abort');
        console.log(`# abort: upstream idle ${took} ms after the abort`);
    });

    await check('breaking out of for await after 3 chunks ends the upstream call too', async () => {
        assert.equal(await openStreams(), 0, 'a stream is open before the check');
        const stream = await client.chat.completions.create(params('tokens=50;delay=100', { stream: true }));
        calls++;
        expectRow('sdk-break', 499);
        let content = 0;
        for await (const chunk of stream) {
            if (chunk.choices[0]?.delta?.content) content++;
            if (content === 3) break;
        }
        const took = await msUntilIdle(2000);
        assert.ok(took >= 0, 'the mock still streams 2 s after the break');
        console.log(`# break: upstream idle ${took} ms after the break`);
    });

    console.log(`1..${count}`);
    for (const r of requests) console.log(`# request: ${r}`);
    console.log(`# calls: ${calls}`);
    process.exitCode = failed > 0 ? 1 : 0;
}

main().catch((e) => {
    console.log(`not ok ${count + 1} - openai-stream.cjs crashed`);
    for (const line of String(e && e.stack ? e.stack : e).split('\n')) console.log(`#   ${line}`);
    console.log(`# calls: ${calls}`);
    process.exitCode = 1;
});
