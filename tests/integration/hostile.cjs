'use strict';
// tests/integration/hostile.cjs -- the raw-socket clients of
// test-hostile.sh, for what curl cannot send: a request written byte for
// byte (a Content-Length that lies, a body that never ends) and hundreds
// of clients that send one byte a second.  Prints one JSON object.
//
//   node hostile.cjs raw PORT FILE WAIT-MS [half-close]
//       writes FILE's bytes to 127.0.0.1:PORT (then shuts down the
//       writing side when half-close is given) and reads until the
//       server closes or WAIT-MS pass: {responses: [{status, headers,
//       body}], closed (by the server), ms (until it closed or the wait
//       ended), bytes, after_head (bytes after the first header block:
//       0 for an answer to HEAD)}
//   node hostile.cjs slow PORT CLIENTS DRIP-S WAIT-S KEY
//       CLIENTS connections, each sending one byte a second for DRIP-S
//       seconds -- a third never finish their request line and headers,
//       a third send headers and then a chat body a byte at a time, a
//       third send a chunked body a byte at a time -- then silent, open,
//       until the server closes them or WAIT-S more seconds pass:
//       {clients, connected, refused, answered (with a status),
//       statuses: {status: count}, closed_while_dripping, closed,
//       last_close_ms (after the last byte sent), open}

const net = require('net');
const fs = require('fs');

// The HTTP/1.1 answers in buf (bodies by Content-Length only: the
// gateway's and the web server's errors have one).
function parseResponses(buf) {
    const out = [];
    let at = 0;
    while (at < buf.length) {
        const end = buf.indexOf('\r\n\r\n', at);
        if (end < 0) break;
        const head = buf.slice(at, end).toString('latin1').split('\r\n');
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
        if (!m) break;
        const headers = {};
        for (const line of head.slice(1)) {
            const i = line.indexOf(':');
            if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
        const len = Number(headers['content-length'] || 0);
        const body = buf.slice(end + 4, end + 4 + len).toString('utf8');
        out.push({ status: Number(m[1]), headers, body });
        at = end + 4 + len;
    }
    return out;
}

function raw(port, file, waitMs, halfClose) {
    const data = fs.readFileSync(file);
    const t0 = Date.now();
    const chunks = [];
    let closed = false, done = false;
    const sock = net.connect(Number(port), '127.0.0.1', () => {
        sock.write(data, () => {
            if (halfClose) sock.end();
        });
    });
    const finish = () => {
        if (done) return;
        done = true;
        const buf = Buffer.concat(chunks);
        const head = buf.indexOf('\r\n\r\n');
        console.log(JSON.stringify({ responses: parseResponses(buf), closed,
            ms: Date.now() - t0, bytes: buf.length,
            after_head: head < 0 ? null : buf.length - head - 4 }));
        sock.destroy();
    };
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => { closed = true; finish(); });
    sock.on('close', () => { closed = true; finish(); });
    setTimeout(finish, Number(waitMs));
}

function slow(port, clients, dripS, waitS, key) {
    const body = '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"slow"}]}';
    const heads = [
        // never finishes its headers
        'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(200),
        // a body that trickles
        'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
            `Authorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${body.length + 400}\r\n\r\n` + body + ' '.repeat(400),
        // a chunked body that trickles (one byte per chunk)
        null,
    ];
    const chunked = 'POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
        `Authorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
        'Transfer-Encoding: chunked\r\n\r\n';
    const r = { clients, connected: 0, refused: 0, answered: 0, statuses: {},
        closed_while_dripping: 0, closed: 0, last_close_ms: null, open: 0 };
    const t0 = Date.now();
    const dripEnd = t0 + dripS * 1000;
    const socks = [];
    let finished = false;

    const report = () => {
        if (finished) return;
        finished = true;
        r.open = socks.filter((s) => !s.closedByServer).length;
        console.log(JSON.stringify(r));
        for (const s of socks) s.sock.destroy();
        process.exit(0);
    };
    const checkDone = () => {
        if (r.closed + r.refused === clients && Date.now() >= dripEnd) report();
    };

    for (let i = 0; i < clients; i++) {
        const kind = i % 3;
        const s = { sock: null, closedByServer: false, sent: 0, buf: [] };
        // the headers of the body senders go at once; only their bodies trickle
        let text;
        let pos = 0;
        if (kind === 0) {
            text = heads[0];
        } else if (kind === 1) {
            text = heads[1];
            pos = heads[1].length - body.length - 400;
        } else {
            text = chunked + '1\r\n{\r\n' + '1\r\n \r\n'.repeat(400);
            pos = chunked.length;
        }
        s.sock = net.connect(Number(port), '127.0.0.1');
        s.sock.setNoDelay(true);
        s.sock.on('connect', () => {
            r.connected++;
            if (pos > 0) s.sock.write(text.slice(0, pos));
            s.timer = setInterval(() => {
                if (Date.now() >= dripEnd || pos >= text.length) {
                    clearInterval(s.timer);
                    return;
                }
                s.sock.write(text[pos++]);
            }, 1000);
        });
        s.sock.on('data', (d) => s.buf.push(d));
        s.sock.on('error', (e) => {
            if (!s.sock.connecting && e.code !== 'ECONNREFUSED') return;
            if (e.code === 'ECONNREFUSED') r.refused++;
        });
        s.sock.on('close', () => {
            clearInterval(s.timer);
            if (s.closedByServer) return;
            s.closedByServer = true;
            const now = Date.now();
            r.closed++;
            if (now < dripEnd) r.closed_while_dripping++;
            r.last_close_ms = Math.max(r.last_close_ms || 0, now - dripEnd);
            const res = parseResponses(Buffer.concat(s.buf));
            if (res.length > 0) {
                r.answered++;
                r.statuses[res[0].status] = (r.statuses[res[0].status] || 0) + 1;
            }
            checkDone();
        });
        socks.push(s);
    }
    setInterval(checkDone, 200);
    setTimeout(report, (dripS + waitS) * 1000);
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'raw') {
    raw(args[0], args[1], args[2], args[3] === 'half-close');
} else if (cmd === 'slow') {
    slow(args[0], Number(args[1]), Number(args[2]), Number(args[3]), args[4]);
} else {
    console.error('usage: node hostile.cjs raw|slow ...');
    process.exit(2);
}
