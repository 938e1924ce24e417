'use strict';
// node check.cjs http EXPR WANT-STATUS STATUS-FILE HEADERS-FILE BODY-FILE
// node check.cjs json EXPR FILE...
// node check.cjs value EXPR FILE
const fs = require('fs');

const [mode, expr, ...args] = process.argv.slice(2);

function readText(p) {
    try { return fs.readFileSync(p, 'utf8'); } catch (e) { return ''; }
}
function parse(text) {
    try { return JSON.parse(text); } catch (e) { return undefined; }
}
// Headers of the last response in a curl -D file, lower-case names.
function parseHeaders(text) {
    let h = {};
    for (const raw of text.split('\n')) {
        const line = raw.replace(/\r$/, '');
        if (/^HTTP\//.test(line)) { h = {}; continue; }
        const i = line.indexOf(':');
        if (i <= 0) continue;
        const k = line.slice(0, i).trim().toLowerCase();
        const v = line.slice(i + 1).trim();
        h[k] = k in h ? h[k] + ', ' + v : v;
    }
    return h;
}

// The OpenAI error object: all four keys, with the right types.
function isErr(j, code, param) {
    if (!j || typeof j !== 'object' || !j.error || typeof j.error !== 'object') return false;
    const e = j.error;
    for (const k of ['message', 'type', 'param', 'code'])
        if (!(k in e)) return false;
    if (typeof e.message !== 'string' || e.message.length === 0) return false;
    if (typeof e.type !== 'string' || e.type.length === 0) return false;
    if (e.param !== null && typeof e.param !== 'string') return false;
    if (e.code !== null && typeof e.code !== 'string') return false;
    if (code !== undefined && e.code !== code) return false;
    if (param !== undefined && e.param !== param) return false;
    return true;
}
// A JSON content type and an x-request-id, as on every gateway answer.
function jsonHeaders(h) {
    return /^application\/json\b/.test(h['content-type'] || '') &&
        /^req_[0-9a-f]{8,}$/.test(h['x-request-id'] || '');
}
// Little-endian float32 values of a base64 string.
function f32(b64) {
    if (typeof b64 !== 'string') return null;
    const b = Buffer.from(b64, 'base64');
    if (b.length % 4 !== 0) return null;
    const out = [];
    for (let i = 0; i < b.length; i += 4) out.push(b.readFloatLE(i));
    return out;
}
// Float arrays equal once both are rounded to float32.
function sameF32(a, b) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
        a.every((x, i) => typeof x === 'number' && Math.fround(x) === Math.fround(b[i]));
}
function deepEq(a, b) {
    if (a === b) return true;
    if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
    if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
    return ka.every((k) => deepEq(a[k], b[k]));
}

function run(names, values) {
    const fn = new Function(...names, 'isErr', 'jsonHeaders', 'f32', 'sameF32', 'deepEq',
        '"use strict"; return (' + expr + ');');
    return fn(...values, isErr, jsonHeaders, f32, sameF32, deepEq);
}
function clip(s, n) {
    s = String(s);
    return s.length > n ? s.slice(0, n) + '... (' + s.length + ' bytes)' : s;
}

let ok = false, result, error, diag = [];
try {
    if (mode === 'http') {
        const [want, statusFile, headersFile, bodyFile] = args;
        const s = Number(readText(statusFile).trim());
        const h = parseHeaders(readText(headersFile));
        const t = readText(bodyFile);
        const j = parse(t);
        diag.push('status: ' + s + ' (want ' + want + ')');
        diag.push('content-type: ' + (h['content-type'] || '-') +
            ', x-request-id: ' + (h['x-request-id'] || '-'));
        diag.push('body: ' + clip(t, 600));
        if (s === Number(want)) {
            result = run(['s', 'h', 't', 'j'], [s, h, t, j]);
            ok = result === true;
        }
    } else if (mode === 'json') {
        const texts = args.map(readText);
        const f = texts.map(parse);
        texts.forEach((t, i) => diag.push('f[' + i + ']: ' + clip(t, 600)));
        result = run(['f', 'j'], [f, f[0]]);
        ok = result === true;
    } else if (mode === 'value') {
        const t = readText(args[0]);
        const v = run(['j', 't'], [parse(t), t]);
        process.stdout.write((typeof v === 'string' ? v : JSON.stringify(v)) + '\n');
        process.exit(0);
    } else {
        throw new Error('unknown mode ' + mode);
    }
} catch (e) {
    error = e;
}
if (ok) process.exit(0);
console.log('check: ' + expr.replace(/\s+/g, ' ').trim());
if (error) console.log('error: ' + error.message);
else if (result !== undefined) console.log('result: ' + JSON.stringify(result));
for (const line of diag) console.log(line);
process.exit(1);
