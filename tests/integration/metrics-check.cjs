'use strict';
// metrics-check.cjs -- reads Prometheus text expositions for
// test-metrics.sh.  Plain node, no npm package.
//
//   node metrics-check.cjs get FILE SERIES       the value of one series ("" if absent)
//   node metrics-check.cjs same FILE FILE...     the same counts in every file
//                                                 (the metrics route's own
//                                                 requests and the gauges aside)
//   node metrics-check.cjs monotonic OLD NEW     no counter or bucket of OLD is
//                                                 lower (or gone) in NEW
const fs = require('fs');

function parse(file) {
    const m = new Map();
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const i = line.lastIndexOf(' ');
        m.set(line.slice(0, i), line.slice(i + 1));
    }
    return m;
}

// series that may differ between two scrapes: gauges, the scrapes
// themselves, and the Postgres calls of the upkeep threads (the lease
// refresher's among them)
function volatile(k) {
    return /^modelgate_(requests_in_flight|streams_open|settlement_queue_length|responder_processes|reconcile_watermark)/.test(k) ||
        k.includes('endpoint="metrics"') || k.includes('endpoint="healthz"') || k.startsWith('modelgate_db_') ||
        k.startsWith('modelgate_settlements_') || k.startsWith('modelgate_admission_batch') ||
        k.startsWith('modelgate_lease_refreshes');
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'get') {
    const v = parse(args[0]).get(args[1]);
    process.stdout.write(v === undefined ? '' : v);
} else if (cmd === 'same') {
    const first = parse(args[0]);
    let bad = 0;
    for (const f of args.slice(1)) {
        const m = parse(f);
        for (const [k, v] of first) {
            if (volatile(k)) continue;
            if (m.get(k) !== v) {
                console.log(`${f}: ${k} = ${m.get(k)}, first scrape ${v}`);
                bad++;
            }
        }
    }
    process.exit(bad ? 1 : 0);
} else if (cmd === 'monotonic') {
    const old = parse(args[0]), now = parse(args[1]);
    let bad = 0;
    for (const [k, v] of old) {
        if (/^modelgate_(requests_in_flight|streams_open|settlement_queue_length|responder_processes|reconcile_watermark)/.test(k))
            continue;
        const n = now.get(k);
        if (n === undefined || Number(n) < Number(v)) {
            console.log(`${k}: ${v} before, ${n} after`);
            bad++;
        }
    }
    process.exit(bad ? 1 : 0);
} else {
    console.error('usage: metrics-check.cjs get|same|monotonic ...');
    process.exit(2);
}
