'use strict';
// tests/integration/server-errors.cjs -- one chat completion with the
// official `openai` npm client, for test-server-errors.sh, and what the
// client made of the answer.
//
//   node server-errors.cjs BASE-URL KEY [PROMPT-BYTES]
//
// BASE-URL is the gateway's OpenAI base URL (http://127.0.0.1:PORT/v1);
// the prompt is PROMPT-BYTES letters (default 16).  No retries, a 20 s
// timeout.  Prints one JSON object: {raised: false} when the call
// succeeded, else {raised: true, name, isAPIError, status, message, code,
// type, param, ms}: the class of what was thrown, whether it is an
// openai.APIError, and its fields.  Exits 0 either way; 1 on a usage
// error.

const { OpenAI, APIError } = require('openai');

const [baseURL, apiKey, bytes] = process.argv.slice(2);
if (!baseURL || !apiKey) {
    console.error('usage: node server-errors.cjs BASE-URL KEY [PROMPT-BYTES]');
    process.exit(1);
}

async function main() {
    const client = new OpenAI({ apiKey, baseURL, maxRetries: 0, timeout: 20000 });
    const started = Date.now();
    let out;
    try {
        await client.chat.completions.create({
            model: 'openai/gpt-4o-mini',
            messages: [{ role: 'user', content: 'a'.repeat(Number(bytes || 16)) }],
        });
        out = { raised: false };
    } catch (e) {
        out = {
            raised: true,
            name: e && e.constructor ? e.constructor.name : typeof e,
            isAPIError: e instanceof APIError,
            status: e ? e.status : undefined,
            message: e ? e.message : String(e),
            code: e ? e.code : undefined,
            type: e ? e.type : undefined,
            param: e ? e.param : undefined,
            ms: Date.now() - started,
        };
    }
    console.log(JSON.stringify(out));
}

main();
