'use strict';
// tests/integration/openai-client.cjs -- drives the gateway with the official
// `openai` npm client, the way applications use it.  Run by test-gateway.sh.
//
// Environment:
//   MG_BASE_URL  the gateway's OpenAI base URL, http://127.0.0.1:PORT/v1
//   MG_API_KEY   a valid modelgate key
//   MG_MOCK_URL  the mock upstream, http://127.0.0.1:PORT (optional): lets
//                the checks look at what reached the upstream
//
// Prints TAP ("ok N - ...", "not ok N - ...", "1..N"), then
// "# authenticated-calls: N": the number of chat/embeddings requests sent
// with the valid key, each of which must leave one usage row.  Exits 1 if a
// check failed.

const assert = require('node:assert/strict');
const { OpenAI } = require('openai');

const baseURL = process.env.MG_BASE_URL;
const apiKey = process.env.MG_API_KEY;
const mockURL = process.env.MG_MOCK_URL || '';

const CHAT_MODEL = 'openai/gpt-4o-mini';
const EMBEDDING_MODEL = 'openai/text-embedding-3-small';

let count = 0;
let failed = 0;
let authenticatedCalls = 0;

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

// Every URL the client asks for, to see how it spells paths.
const requested = [];
function recordingFetch(url, init) {
    requested.push(String(url));
    return fetch(url, init);
}

function newClient(key) {
    return new OpenAI({
        apiKey: key,
        baseURL,
        maxRetries: 0,
        timeout: 20000,
        fetch: recordingFetch,
    });
}

// The mock's record of the last request that reached it, or null.
async function mockLast() {
    if (!mockURL) return null;
    const r = await fetch(`${mockURL}/__mock/last`);
    assert.equal(r.status, 200, 'mock /__mock/last');
    return r.json();
}

// Expects fn to reject with an instance of cls and the given status.
async function expectError(fn, cls, status) {
    let caught = null;
    try {
        await fn();
    } catch (e) {
        caught = e;
    }
    assert.ok(caught !== null, `expected ${cls.name}, but the call succeeded`);
    assert.ok(caught instanceof cls,
        `expected ${cls.name}, got ${caught && caught.constructor && caught.constructor.name}: ${caught && caught.message}`);
    assert.equal(caught.status, status);
    return caught;
}

function assertVectors(data, n, dim) {
    assert.equal(data.length, n);
    data.forEach((item, i) => {
        assert.equal(item.object, 'embedding');
        assert.equal(item.index, i);
        assert.ok(Array.isArray(item.embedding), `embedding ${i} is ${typeof item.embedding}, not an array`);
        assert.equal(item.embedding.length, dim);
        for (const x of item.embedding) assert.ok(Number.isFinite(x) && x >= -1 && x <= 1, `value ${x}`);
    });
}

async function main() {
    if (!baseURL || !apiKey) {
        console.log('Bail out! MG_BASE_URL and MG_API_KEY must be set');
        process.exit(2);
    }
    const client = newClient(apiKey);

    await check('chat.completions.create: content and usage round-trip', async () => {
        authenticatedCalls++;
        const { data, request_id: requestId } = await client.chat.completions
            .create({
                model: CHAT_MODEL,
                messages: [
                    { role: 'system', content: 'be brief' },
                    { role: 'user', content: 'hello from the sdk' },
                ],
                max_completion_tokens: 32,
            })
            .withResponse();
        assert.equal(data.object, 'chat.completion');
        assert.match(data.id, /^gen-/);
        assert.equal(data.choices.length, 1);
        assert.equal(data.choices[0].message.role, 'assistant');
        assert.equal(data.choices[0].message.content, 'mock reply: hello from the sdk');
        assert.equal(data.choices[0].finish_reason, 'stop');
        const u = data.usage;
        assert.ok(Number.isInteger(u.prompt_tokens) && u.prompt_tokens > 0, 'prompt_tokens');
        assert.equal(u.completion_tokens, data.choices[0].message.content.split(/\s+/).length);
        assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
        assert.match(String(requestId), /^req_[0-9a-f]+$/);
    });

    if (mockURL) {
        await check('what reached the upstream: provider key, no client key, no x-stainless headers', async () => {
            const last = await mockLast();
            assert.equal(last.path, '/api/v1/chat/completions');
            const names = Object.keys(last.headers);
            assert.deepEqual(names.filter((k) => k.startsWith('x-stainless')), []);
            assert.ok(!JSON.stringify(last.headers).includes(apiKey), 'client key forwarded upstream');
            assert.match(last.headers.authorization || '', /^Bearer \S+$/);
            const body = JSON.parse(last.body);
            assert.equal(body.model, CHAT_MODEL);
            assert.equal(body.max_completion_tokens, 32);
        });
    }

    let floats = null;
    await check('embeddings.create with encoding_format float', async () => {
        authenticatedCalls++;
        const r = await client.embeddings.create({
            model: EMBEDDING_MODEL,
            input: ['first text', 'second text'],
            dimensions: 12,
            encoding_format: 'float',
        });
        assert.equal(r.object, 'list');
        assertVectors(r.data, 2, 12);
        assert.ok(r.usage.prompt_tokens > 0);
        floats = r.data.map((d) => d.embedding);
    });

    await check('embeddings.create with the SDK default (base64) decodes to the same vectors', async () => {
        authenticatedCalls++;
        const r = await client.embeddings.create({
            model: EMBEDDING_MODEL,
            input: ['first text', 'second text'],
            dimensions: 12,
        });
        assertVectors(r.data, 2, 12);
        assert.ok(floats !== null, 'no float vectors to compare with');
        r.data.forEach((d, i) => {
            d.embedding.forEach((x, k) => {
                assert.equal(x, Math.fround(floats[i][k]), `vector ${i} value ${k}`);
            });
        });
        if (mockURL) {
            const last = await mockLast();
            assert.equal(JSON.parse(last.body).encoding_format, 'base64',
                'the SDK default should have asked for base64');
        }
    });

    await check('models.list(): every item is an OpenAI model object', async () => {
        const items = [];
        for await (const m of client.models.list()) items.push(m);
        assert.ok(items.length > 0, 'empty model list');
        for (const m of items) {
            assert.equal(m.object, 'model');
            assert.equal(typeof m.id, 'string');
            assert.equal(typeof m.owned_by, 'string');
            assert.equal(typeof m.created, 'number');
        }
        const ids = items.map((m) => m.id);
        assert.ok(ids.includes(CHAT_MODEL), `${CHAT_MODEL} missing from ${ids.join(', ')}`);
        assert.ok(ids.includes(EMBEDDING_MODEL), `${EMBEDDING_MODEL} missing from ${ids.join(', ')}`);
    });

    await check('models.retrieve("openai/gpt-4o-mini") (sent as openai%2Fgpt-4o-mini)', async () => {
        requested.length = 0;
        const m = await client.models.retrieve(CHAT_MODEL);
        assert.equal(m.id, CHAT_MODEL);
        assert.equal(m.object, 'model');
        assert.ok(requested.some((u) => u.endsWith('/models/openai%2Fgpt-4o-mini')),
            `requested: ${requested.join(', ')}`);
    });

    await check('models.retrieve of an unknown model: NotFoundError 404 model_not_found', async () => {
        const e = await expectError(() => client.models.retrieve('openai/no-such-model'),
            OpenAI.NotFoundError, 404);
        assert.equal(e.code, 'model_not_found');
    });

    await check('a bad key surfaces as OpenAI.AuthenticationError (401)', async () => {
        const bad = newClient('mg-' + 'A'.repeat(32));
        const e = await expectError(() => bad.chat.completions.create({
            model: CHAT_MODEL,
            messages: [{ role: 'user', content: 'hi' }],
        }), OpenAI.AuthenticationError, 401);
        assert.equal(e.code, 'invalid_api_key');
        assert.equal(e.type, 'invalid_request_error');
        assert.match(String(e.requestID), /^req_[0-9a-f]+$/);
    });

    await check('missing messages surfaces as OpenAI.BadRequestError (400, param messages)', async () => {
        authenticatedCalls++;
        const e = await expectError(() => client.chat.completions.create({ model: CHAT_MODEL }),
            OpenAI.BadRequestError, 400);
        assert.equal(e.param, 'messages');
        assert.equal(e.type, 'invalid_request_error');
    });

    console.log(`1..${count}`);
    console.log(`# authenticated-calls: ${authenticatedCalls}`);
    process.exit(failed > 0 ? 1 : 0);
}

main().catch((e) => {
    console.log(`Bail out! ${e && e.stack ? e.stack : e}`);
    console.log(`# authenticated-calls: ${authenticatedCalls}`);
    process.exit(2);
});
