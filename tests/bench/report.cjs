'use strict';
// tests/bench/report.cjs -- the arithmetic and the tables of tests/bench/run.
//
//   node report.cjs bench META RESULTS AUX STATEMENTS OUT-JSON
//       medians over the rounds, modelgate (c) in each admission mode of
//       META's modes_run; STATEMENTS-MODE.json the statement check of each;
//       Markdown on stdout, everything in OUT-JSON; exit 1 when a run had
//       errors, a mode's responders failed, a hot-path check failed or a
//       memory or /metrics target was missed
//   node report.cjs pglog LOG N CLIENT-JSON BACKENDS-BEFORE BACKENDS-AFTER
//       what Postgres logged (log_min_duration_statement = 0) over N requests
//   node report.cjs callgrind DUMP N ENDPOINT CLIENT-JSON VERSIONS-JSON OUT-JSON
//       instructions per request by object and our top functions
//   node report.cjs pgbench RESULTS VERSIONS-JSON DURATION OUT-JSON [PG-SETTINGS]
//       admission + settlement straight to Postgres
//   node report.cjs usage RESULTS VERSIONS-JSON OUT-JSON PREV-REV EXPLAINS [PG-SETTINGS]
//       the fill, the reports' timings against their targets and settlement
//       A/B/C of tests/bench/run --usage; exit 1 when a target was missed or
//       a run went wrong

const fs = require('fs');
const os = require('os');

const readJsonLines = (p) => fs.readFileSync(p, 'utf8').split('\n').filter((l) => l.trim() !== '')
    .map((l) => {
        try {
            return JSON.parse(l);
        } catch (e) {
            return { unparsable: l };
        }
    });

function median(xs) {
    const s = xs.filter((x) => typeof x === 'number' && isFinite(x)).sort((a, b) => a - b);
    if (s.length === 0) return null;
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function quantile(xs, q) {
    const s = xs.filter((x) => typeof x === 'number' && isFinite(x)).sort((a, b) => a - b);
    if (s.length === 0) return null;
    return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
const fmtInt = (x) => (x === null || x === undefined ? '–' : String(Math.round(x)));
const fmtMs = (us) => (us === null || us === undefined ? '–' : (us / 1000).toFixed(2));
const fmtSigned = (x) => (x === null || x === undefined ? '–' : (x >= 0 ? '+' : '') + Math.round(x));
const fmtRatio = (x) => (x === null || x === undefined || !isFinite(x) ? '–' : x.toFixed(2) + '×');
// the memory targets: an idle responder (PSS), an open stream (RSS)
const MEM_IDLE_LIMIT_KIB = 8 * 1024;
const MEM_STREAM_LIMIT_KIB = 64;
// GET /metrics with the streams open: the median scrape
const SCRAPE_P50_LIMIT_MS = 50;
// the mock straight, pipelined (what it can answer), against lighttpd
// proxying to it (b): below this the mock, not the web server, may be what
// holds the floor down
const MOCK_OVER_FLOOR_MIN = 5;
// the targets of the issue: modelgate's chat at 64 connections against the
// floor (b) and the peer (d); its added paced p99 against the one lighttpd
// alone adds (b); the time to first token it adds
const OVER_FLOOR_MIN = 0.5;
const OVER_PEER_MIN = 10;
const PACED_P99_OVER_PROXY_MAX = 2;
const TTFT_ADDED_MAX_US = 1000;
// the throughput runs: their mode and connections
const TPUT = [['tput32', 32], ['tput', 64]];

const fmtKiB = (x) => (x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));

function table(head, rows) {
    const out = ['| ' + head.join(' | ') + ' |', '|' + head.map(() => '---').join('|') + '|'];
    for (const r of rows) out.push('| ' + r.join(' | ') + ' |');
    return out.join('\n');
}

// the targets' names; bench() adds modelgate's, c_MODE and c_MODE_100p, for
// each admission mode measured
const TARGETS = {
    a_direct: '(a) direct to the mock, plain (the latency baseline)',
    a_direct_pipelined: '(a) direct to the mock, pipelined (what the mock can answer)',
    a_direct_newconn: '(a′) direct, new connection per request',
    b_lighttpd_proxy: '(b) lighttpd mod_proxy → mock',
    d_portkey: '(d) Portkey → mock',
};
// the admission mode of a modelgate target (c_MODE, c_MODE_100p)
const modeOf = (t) => t.replace(/^c_/, '').replace(/_100p$/, '');
const ENDPOINTS = { chat: 'non-streaming chat', embeddings: 'embeddings (1536 dims)', stream: '20-token stream' };

// ---------------------------------------------------------------------------

// targetBounds(...): for each target of bench(), a function that says in
// one line what bounds the figure, from the run's own numbers: where the
// CPU of a request goes (the cores are shared by every process), what the
// floor (b) and the peer (d) reach, the time the admission spends inside
// Postgres (statements: the statement check of each admission mode), the
// memory the idle process maps.
function targetBounds(meta, stats, get, statements, mem, scrape, decided) {
    const cores = (meta.versions && meta.versions.cores) || '?';
    const cpuOf = (t) => (stats.cpu_per_request_us || {})[t + '/chat'] || null;
    const us = (x) => `${Math.round(x)} µs`;
    const cpuShares = (t) => {
        const m = cpuOf(t);
        if (!m || !m.sum) return null;
        const named = [['Postgres', m.postgres], ['the responders', m.responders],
            ['lighttpd', (m.lighttpd_gw || 0) + (m.lighttpd_proxy || 0)], ['the mock upstream', m.mock], ['Portkey', m.portkey]]
            .filter(([, v]) => v > 0).sort((x, y) => y[1] - x[1]);
        return { m, named };
    };
    const cpuText = (t) => {
        const c = cpuShares(t);
        if (!c) return 'no CPU figures in this run';
        const [top, v] = c.named[0];
        return `the CPU of ${cores} shared cores: ${us(c.m.sum)} a request, most of it ${top}'s (${us(v)}, ` +
            `${Math.round((100 * v) / c.m.sum)} %; then ${c.named.slice(1).map(([n, x]) => `${n} ${us(x)}`).join(', ')})`;
    };
    const admitStmt = (mode) => {
        const d = statements[mode] && statements[mode].durations;
        if (!d) return null;
        const name = Object.keys(d).find((k) => /admit/.test(k));
        return name ? { name, ...d[name] } : null;
    };
    const rps = (t) => { const x = get('tput', t, 'chat'); return x && x.rps ? x.rps : null; };
    return {
        throughputVsPeer: (t) => {
            const b = rps('b_lighttpd_proxy'), d = rps('d_portkey');
            const floor = b && d ? `; lighttpd alone proxying to the mock, (b), reaches ${(b / d).toFixed(1)}× (d), ` +
                'the most any gateway behind it can' : '';
            return `bounded by ${cpuText(t)}${floor}`;
        },
        throughputVsFloor: (t) => {
            const c = cpuShares(t), f = cpuShares('b_lighttpd_proxy');
            const more = c && f ? `; (b) spends ${us(f.m.sum)} a request` : '';
            return `bounded by ${cpuText(t)}${more}`;
        },
        latency: (mode, t, field) => {
            const a = get(mode, 'a_direct', 'chat'), b = get(mode, 'b_lighttpd_proxy', 'chat');
            const floor = a && b ? `(b) lighttpd alone adds ${us(b[field] - a[field])}` : 'no (b) figure';
            const s = admitStmt(modeOf(t));
            const g = decided && decided(mode, t);
            if (g && g.lease > 0) {
                // admitted in memory, most of them: the round trip is not what bounds it
                const pct = (v) => `${((100 * v) / g.req).toFixed(1)} %`;
                const pg = cpuShares(t);
                return `bounded by the web server in front and the cores the stack shares: ${floor}; ` +
                    `${pct(g.lease)} of these requests were admitted in memory and ${pct(Math.max(0, g.el - g.ref))} ` +
                    'waited for an admission in Postgres' +
                    (s ? ` (${s.name}: ${s.p50.toFixed(2)} ms p50 inside Postgres, then its commit)` : '') +
                    '; the rest of the tail is waiting for a core while the other processes run, Postgres\'s ' +
                    'settlement statements among them' + (pg && pg.m.postgres ? ` (${us(pg.m.postgres)} of Postgres CPU a ` +
                    'request at full load)' : '');
            }
            const adm = s ? `; the admission (${s.name}) executes ${s.p50.toFixed(2)} ms p50 inside Postgres, ` +
                'then waits for its commit to reach the disk, before the upstream is called' : '';
            return `bounded by the web server in front and the admission round trip: ${floor}${adm}`;
        },
        ttft: (ttftSum, t) => {
            const a = ttftSum.a_direct, b = ttftSum.b_lighttpd_proxy;
            const floor = a && b && a.first_p50_ms !== null && b.first_p50_ms !== null
                ? `(b) lighttpd alone adds ${us((b.first_p50_ms - a.first_p50_ms) * 1000)}` : 'no (b) figure';
            const s = admitStmt(modeOf(t));
            return `bounded by the admission before the first byte goes upstream: ${floor}` +
                (s ? `; ${s.name} executes ${s.p50.toFixed(2)} ms p50 inside Postgres, plus its commit` : '');
        },
        idleMemory: (x) => `RSS ${fmtKiB(x.idle_per_responder_kib)} KiB, of it private ` +
            `${fmtKiB(x.idle_uss_per_responder_kib)} KiB (the heap the runs left: malloc keeps what it cannot give ` +
            `back whole) and ${fmtKiB(x.idle_per_responder_kib - x.idle_uss_per_responder_kib)} KiB of shared ` +
            `libraries, which PSS splits between the processes`,
        streamMemory: () => `bounded by what each open stream holds in a request thread: ` +
            `${mem.per_stream_kib === null ? '–' : mem.per_stream_kib.toFixed(1)} KiB RSS, ` +
            `${mem.per_stream_uss_kib === null || mem.per_stream_uss_kib === undefined ? '–' : mem.per_stream_uss_kib.toFixed(1)} KiB private, ` +
            `over ${mem.opened} streams on ${mem.mem_processes} × ${mem.mem_threads} threads`,
        scrape: () => {
            const ms = (x) => (x === null || x === undefined ? '–' : x.toFixed(1));
            return `bounded by the ${scrape.opened} open streams' processes sharing the ${cores} cores with the scrape ` +
                `(p90 ${ms(scrape.p90_ms)} ms, max ${ms(scrape.max_ms)} ms)`;
        },
    };
}

function bench(metaFile, resultsFile, auxFile, statementsPrefix, outFile) {
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
    const results = readJsonLines(resultsFile);
    const aux = readJsonLines(auxFile);
    const flags = [];
    TARGETS.a_direct_pipelined = `(a) direct to the mock, pipelined ×${meta.pipeline} (what the mock can answer)`;
    // the admission modes measured, modelgate's targets in each: one
    // project, then 100 projects (chat only)
    const modes = meta.modes_run || [];
    const cOne = modes.map((m) => 'c_' + m);
    const cAll = modes.flatMap((m) => ['c_' + m, 'c_' + m + '_100p']);
    for (const m of modes) {
        TARGETS['c_' + m] = `(c) modelgate, ${m}, one project`;
        TARGETS['c_' + m + '_100p'] = `(c) modelgate, ${m}, 100 projects`;
    }
    const statements = {};
    for (const m of modes) {
        try {
            statements[m] = JSON.parse(fs.readFileSync(`${statementsPrefix}-${m}.json`, 'utf8'));
        } catch (e) {
            statements[m] = { error: 'no statement check: ' + e.message };
        }
    }
    for (const [m, why] of Object.entries(meta.modes_failed || {}))
        flags.push(`admission mode ${m}: its responders started but were left out: ${why}`);

    // group the wrk runs by mode/target/endpoint
    const groups = {};
    for (const r of results) {
        if (!r.label) continue;
        const k = r.label.mode + '/' + r.label.target + '/' + r.label.endpoint;
        (groups[k] = groups[k] || { label: r.label, runs: [] }).runs.push(r);
    }
    const stats = {};
    for (const [k, g] of Object.entries(groups)) {
        const ok = g.runs.filter((r) => !r.failed && r.requests !== undefined);
        const errs = ok.map((r) => Object.values(r.errors).reduce((a, b) => a + b, 0));
        const rps = ok.map((r) => r.requests / (r.duration_us / 1e6));
        const s = {
            mode: g.label.mode, target: g.label.target, endpoint: g.label.endpoint,
            connections: g.label.connections, runs: ok.length, failed_runs: g.runs.length - ok.length,
            rps: median(rps), rps_min: rps.length ? Math.min(...rps) : null,
            rps_max: rps.length ? Math.max(...rps) : null,
            p50_us: median(ok.map((r) => r.latency_us.p50)),
            p90_us: median(ok.map((r) => r.latency_us.p90)),
            p99_us: median(ok.map((r) => r.latency_us.p99)),
            p999_us: median(ok.map((r) => r.latency_us.p999)),
            requests: ok.reduce((a, r) => a + r.requests, 0),
            errors: errs.reduce((a, b) => a + b, 0),
            errors_by_kind: ok.reduce((a, r) => {
                for (const [e, v] of Object.entries(r.errors)) a[e] = (a[e] || 0) + v;
                return a;
            }, {}),
            per_round: g.runs.map((r) => ({
                round: r.label.round, failed: !!r.failed,
                rps: r.failed ? null : r.requests / (r.duration_us / 1e6),
                latency_us: r.latency_us || null, errors: r.errors || null,
            })),
        };
        if (s.errors > 0 || s.failed_runs > 0)
            flags.push(`${k}: ${s.errors} errors/non-2xx, ${s.failed_runs} failed runs`);
        stats[k] = s;
    }
    const get = (mode, t, ep) => stats[mode + '/' + t + '/' + ep] || null;
    const errCell = (s) => (s === null ? '–' : s.errors + s.failed_runs > 0 ? `**${s.errors}** ⚠` : '0');

    const md = [];
    const v = meta.versions;
    md.push('# modelgate benchmark' + (meta.quick ? ' (--quick: smoke test, not a measurement)' : ''));
    md.push('');
    md.push(`Machine: ${v.cores} cores, ${v.cpu}, ${v.kernel}. Versions: ${v.lighttpd}, ${v.postgres}, ` +
        `${v.wrk}, node ${v.node}, libcurl ${v.libcurl}, Portkey ${v.portkey || 'not installed'}, ` +
        `modelgate ${v.modelgate_commit}.`);
    md.push(`Stack: ${meta.procs} responders × ${meta.threads} threads, pool_size ${meta.pool_size}, ` +
        `log_level "${meta.log_level}", catalog empty (refresh_interval 0), one project with an RPM ` +
        `limit and a spend cap that never refuse (admit + settle on every request). Postgres: ` +
        (meta.pg_settings && meta.pg_settings.length ? `**${meta.pg_settings.join(', ')}** (not the defaults)` : 'default settings') +
        `. Everything on this machine: read ratios, not absolute numbers.`);
    md.push(`Method: ${meta.rounds} interleaved rounds, wrk runs of ${meta.duration_s} s, 1 s apart` +
        (meta.warmup_s > 0 ? `, each right after a warm-up of ${meta.warmup_s} s of the same load that is ` +
            `not counted (the steady state is measured: in lease mode a project's first requests after ` +
            `2 s without any wait for Postgres, as in strict mode)` : ', no warm-up') + `; ` +
        `medians over the rounds. Throughput: 32 and 64 connections, wrk -t${meta.wrk_threads}. ` +
        `Latency: 1 connection (sequential). Paced: ${meta.paced_connections} connections with think ` +
        `time for about ${meta.paced_rate} req/s. Errors = socket errors + non-2xx (wrk counts HTTP ≥ 400).`);
    md.push(`The mock straight (a), two ways. Plain: wrk sends a request when the answer to the last has ` +
        `come; the figure is held down by wrk's own cost per request on the shared cores, and it is the ` +
        `baseline of the latency figures. Pipelined: wrk writes ${meta.pipeline} requests at once on each ` +
        `connection (its documented pipelining: a Lua init that concatenates ${meta.pipeline} wrk.format ` +
        `requests), which costs wrk far less per request, so the figure is what the mock can answer -- what ` +
        `"the mock is never the bottleneck" is about: the check (a) ≥ ${MOCK_OVER_FLOOR_MIN}× (b) uses it. ` +
        `A pipelined run's latencies run from the write of a batch to each answer and are not shown.`);
    const skipped = Object.entries(meta.modes_skipped || {}), failed = Object.entries(meta.modes_failed || {});
    md.push(`Admission modes (quota.admission), each its own responders, lighttpd and database role, all ` +
        `running throughout, interleaved in every round: ${modes.length ? modes.join(', ') : 'none'} measured` +
        (skipped.length ? `; skipped: ${skipped.map(([m, why]) => `${m} (${why})`).join('; ')}` : '') +
        (failed.length ? `; **left out with errors**: ${failed.map(([m, why]) => `${m} (${why})`).join('; ')}` : '') +
        '.' + (meta.admission_known === false ? ' The responder does not know quota.admission: strict, its ' +
            'only admission, is configured without the setting.' : ''));
    if (meta.peer_status !== 'ok') md.push(`Peer (Portkey): ${meta.peer_status}.`);
    md.push('');

    const ratios = {};
    for (const ep of Object.keys(ENDPOINTS)) {
        const a = get('tput', 'a_direct', ep);
        const rows = [];
        const order = ['a_direct', 'a_direct_pipelined', 'a_direct_newconn', 'b_lighttpd_proxy', ...cAll, 'd_portkey'];
        for (const t of order) {
            const s = get('tput', t, ep);
            if (s === null) {
                if (t === 'd_portkey' && meta.peer_status === 'ok' && meta.peer_notes['d_portkey/' + ep])
                    rows.push([TARGETS[t], '–', '–', '–', '–', '–', '–', '–', meta.peer_notes['d_portkey/' + ep]]);
                else if (t === 'd_portkey')
                    rows.push([TARGETS[t], '–', '–', '–', '–', '–', '–', '–', meta.peer_status === 'ok' ? 'not run' : meta.peer_status]);
                continue;
            }
            const dt = a && a.rps && s.rps ? 1e6 / s.rps - 1e6 / a.rps : null;
            const s32 = get('tput32', t, ep);
            const piped = t === 'a_direct_pipelined';
            rows.push([TARGETS[t], fmtInt(s32 && s32.rps), fmtInt(s.rps), `${fmtInt(s.rps_min)}–${fmtInt(s.rps_max)}`,
                piped ? '–' : fmtMs(s.p50_us), piped ? '–' : fmtMs(s.p99_us), fmtSigned(dt),
                a && s.rps ? fmtRatio(a.rps / s.rps) : '–',
                s32 && s32.errors + s32.failed_runs > 0 ? `${errCell(s32)} (32), ${errCell(s)} (64)` : errCell(s)]);
        }
        md.push(`## Throughput, ${ENDPOINTS[ep]}`);
        md.push('');
        md.push(table(['target', 'req/s, 32 conns', 'req/s, 64 conns', 'min–max (64)', 'p50 ms (64)', 'p99 ms (64)',
            'Δ time/req vs (a) µs (64)', '(a)/x (64)', 'errors'], rows));
        md.push('');
        ratios[ep] = {};
        for (const [mode, conns] of TPUT) {
            const x = (t) => get(mode, t, ep);
            const over = (p, q) => (x(p) && x(q) && x(p).rps && x(q).rps ? x(p).rps / x(q).rps : null);
            const modelgate = {};
            for (const t of cAll) {
                if (x(t)) modelgate[t] = { over_floor: over(t, 'b_lighttpd_proxy'), over_peer: over(t, 'd_portkey') };
            }
            ratios[ep][conns] = {
                modelgate,
                floor_over_peer: over('b_lighttpd_proxy', 'd_portkey'),
                mock_over_floor: over('a_direct', 'b_lighttpd_proxy'),
                mock_pipelined_over_floor: over('a_direct_pipelined', 'b_lighttpd_proxy'),
            };
        }
    }

    // CPU time per request by process, throughput runs
    {
        const parts = ['lighttpd_gw', 'lighttpd_proxy', 'responders', 'postgres', 'mock', 'portkey'];
        const tick = 1e6 / (meta.clk_tck || 100);
        const rows = [];
        const cpu = {};
        for (const ep of Object.keys(ENDPOINTS)) {
            for (const t of ['a_direct', 'a_direct_pipelined', 'a_direct_newconn', 'b_lighttpd_proxy', ...cAll, 'd_portkey']) {
                const runs = aux.filter((x) => x.label && x.label.mode === 'tput' && x.label.target === t &&
                    x.label.endpoint === ep && x.cpu_before && x.cpu_after);
                const res = results.filter((r) => r.label && r.label.mode === 'tput' && r.label.target === t &&
                    r.label.endpoint === ep && !r.failed);
                if (!runs.length || !res.length) continue;
                const perRound = runs.map((x) => {
                    const r = res.find((r) => r.label.round === x.label.round);
                    if (!r || !r.requests) return null;
                    const o = {};
                    for (const p of parts) o[p] = ((x.cpu_after[p] - x.cpu_before[p]) * tick) / r.requests;
                    return o;
                }).filter((o) => o !== null);
                const m = {};
                for (const p of parts) m[p] = median(perRound.map((o) => o[p]));
                m.sum = parts.reduce((a, p) => a + (m[p] || 0), 0);
                cpu[t + '/' + ep] = m;
                const cell = (x) => (x === null ? '–' : x < 0.5 ? '0' : String(Math.round(x)));
                rows.push([TARGETS[t], ENDPOINTS[ep], cell(m.lighttpd_gw + m.lighttpd_proxy), cell(m.responders),
                    cell(m.postgres), cell(m.mock), cell(m.portkey), cell(m.sum)]);
            }
        }
        stats.cpu_per_request_us = cpu;
        md.push('## CPU time per request by process (throughput runs; µs of user + system time, from /proc)');
        md.push('');
        md.push(table(['target', 'endpoint', 'lighttpd', 'responders', 'postgres', 'mock', 'portkey', 'sum (without wrk)'], rows));
        md.push('');
    }

    // ratios in one place: what a user compares
    {
        const peerCell = (ep, x) => (x !== null ? fmtRatio(x)
            : meta.peer_notes['d_portkey/' + ep] ? 'peer fails (see notes)' : 'not measured');
        const rows = [], floorRows = [];
        for (const ep of Object.keys(ENDPOINTS)) {
            for (const [, conns] of TPUT) {
                const r = ratios[ep][conns];
                for (const [t, x] of Object.entries(r.modelgate))
                    rows.push([ENDPOINTS[ep], String(conns), TARGETS[t], fmtRatio(x.over_floor), peerCell(ep, x.over_peer)]);
                floorRows.push([ENDPOINTS[ep], String(conns), peerCell(ep, r.floor_over_peer),
                    fmtRatio(r.mock_pipelined_over_floor), fmtRatio(r.mock_over_floor)]);
            }
        }
        md.push('## Ratios (throughput, same run)');
        md.push('');
        md.push(table(['endpoint', 'connections', 'modelgate', '(c) / floor (b)', '(c) / Portkey (d)'], rows));
        md.push('');
        md.push(table(['endpoint', 'connections', 'floor (b) / Portkey (d)',
            `mock pipelined (a) / floor (b) (check: ≥ ${MOCK_OVER_FLOOR_MIN}×)`, 'mock plain (a) / floor (b)'], floorRows));
        md.push('');
    }

    // latency with one connection
    for (const ep of Object.keys(ENDPOINTS)) {
        const a = get('lat', 'a_direct', ep);
        const rows = [];
        for (const t of ['a_direct', 'b_lighttpd_proxy', ...cAll, 'd_portkey']) {
            const s = get('lat', t, ep);
            if (s === null) continue;
            const add = (k) => (a && s[k] !== null && a[k] !== null ? fmtSigned(s[k] - a[k]) : '–');
            rows.push([TARGETS[t], fmtInt(s.rps), fmtInt(s.p50_us), fmtInt(s.p99_us), fmtInt(s.p999_us),
                add('p50_us'), add('p99_us'), add('p999_us'), errCell(s)]);
        }
        md.push(`## Added latency, ${ENDPOINTS[ep]} (1 connection, sequential)`);
        md.push('');
        md.push(table(['target', 'req/s', 'p50 µs', 'p99 µs', 'p99.9 µs', 'added p50 vs (a) µs', 'added p99 vs (a) µs',
            'added p99.9 vs (a) µs', 'errors'], rows));
        md.push('');
    }

    // paced
    {
        const a = get('paced', 'a_direct', 'chat');
        const rows = [];
        for (const t of ['a_direct', 'b_lighttpd_proxy', ...cAll, 'd_portkey']) {
            const s = get('paced', t, 'chat');
            if (s === null) continue;
            const add = (k) => (a && s[k] !== null && a[k] !== null ? fmtSigned(s[k] - a[k]) : '–');
            rows.push([TARGETS[t], fmtInt(s.rps), fmtMs(s.p50_us), fmtMs(s.p90_us), fmtMs(s.p99_us), fmtMs(s.p999_us),
                add('p50_us'), add('p99_us'), add('p999_us'), errCell(s)]);
        }
        md.push(`## Paced at about ${meta.paced_rate} req/s, non-streaming chat (${meta.paced_connections} connections, think time)`);
        md.push('');
        md.push(table(['target', 'achieved req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'Δp50 vs (a) µs',
            'Δp99 vs (a) µs', 'Δp99.9 vs (a) µs', 'errors'], rows));
        md.push('');
    }

    // one hot project vs 100 projects
    md.push('## One hot project vs 100 projects (modelgate, non-streaming chat, 64 connections)');
    md.push('');
    // what the responders' Postgres connections were doing, mean over the samples of the rounds
    const pgOf = (t, ep, mode) => {
        const xs = aux.filter((x) => x.label && x.label.mode === (mode || 'tput') && x.label.target === t &&
            x.label.endpoint === ep && x.pg);
        if (!xs.length) return null;
        return {
            active: median(xs.map((x) => x.pg.active_mean)),
            lock: median(xs.map((x) => x.pg.lock_wait_mean)),
            wal: median(xs.map((x) => x.pg.wal_wait_mean)),
            max: Math.max(...xs.map((x) => x.pg.conns_max)),
        };
    };
    const pgCells = (p) => (p ? [`${p.max}`, p.active.toFixed(1), p.lock.toFixed(1), p.wal.toFixed(1)] : ['–', '–', '–', '–']);
    const hotRows = [], spreadRatios = [];
    for (const m of modes) {
        const hot = get('tput', 'c_' + m, 'chat'), spread = get('tput', 'c_' + m + '_100p', 'chat');
        const row = (s, what, p) => [`${m}: ${what}`, fmtInt(s && s.rps), s ? `${fmtInt(s.rps_min)}–${fmtInt(s.rps_max)}` : '–',
            fmtMs(s && s.p50_us), fmtMs(s && s.p99_us), errCell(s), ...pgCells(p)];
        hotRows.push(row(hot, '1 project, 1 key (one project_quota row)', pgOf('c_' + m, 'chat')),
            row(spread, '100 projects, round-robin', pgOf('c_' + m + '_100p', 'chat')));
        spreadRatios.push(`${m} ${hot && spread ? fmtRatio(spread.rps / hot.rps) : '–'}`);
    }
    md.push(table(['admission: keys', 'req/s', 'min–max', 'p50 ms', 'p99 ms', 'errors', 'pg conns', 'busy',
        'waiting for a lock', 'waiting for WAL'], hotRows));
    md.push('');
    md.push('The last four columns: the Postgres connections of the mode\'s responders (pg_stat_activity every ' +
        '0.5 s, by the mode\'s database role; median over the rounds of the mean per run): the most seen, busy, ' +
        'waiting for a lock (wait_event_type Lock: the project_quota row), waiting for the WAL (WALWrite/WALSync).');
    md.push('');
    md.push(`100 projects / 1 project: ${spreadRatios.join(', ') || '–'}.`);
    md.push('');

    // where the admissions were decided: the responders' own counters
    const gwOf = (run, t) => {
        const xs = aux.filter((x) => x.label && x.label.mode === run && x.label.target === t &&
            x.label.endpoint === 'chat' && x.gw_before && x.gw_after);
        const d = (x, k) => x.gw_after[k] - x.gw_before[k];
        const req = xs.reduce((a, x) => a + d(x, 'requests'), 0);
        if (!req) return null;
        const sum = (k) => xs.reduce((a, x) => a + d(x, k), 0);
        return { req, lease: sum('lease'), el: sum('elements'), bat: sum('batches'), ref: sum('refreshes') };
    };
    const gwRows = [];
    for (const m of modes) {
        for (const [t, what] of [['c_' + m, '1 project'], ['c_' + m + '_100p', '100 projects']]) {
            for (const [run, runWhat] of [['tput', '64 connections'], ['paced', `paced ~${meta.paced_rate} req/s`]]) {
                const g = gwOf(run, t);
                if (!g) continue;
                const pct = (v) => `${((100 * v) / g.req).toFixed(1)}%`;
                gwRows.push([`${m}, ${what}`, runWhat, fmtInt(g.req), pct(g.lease), pct(Math.max(0, g.el - g.ref)),
                    ((1000 * g.ref) / g.req).toFixed(1), ((1000 * g.bat) / g.req).toFixed(1)]);
            }
        }
    }
    if (gwRows.length) {
        md.push('## Where admissions were decided (modelgate, non-streaming chat)');
        md.push('');
        md.push(table(['admission, projects', 'run', 'requests', 'admitted in memory (lease)',
            'waited for Postgres', 'refreshes per 1000 requests', 'admission statements per 1000 requests'], gwRows));
        md.push('');
        md.push('From the responders\' own counters (GET /metrics before and after each run, summed over the rounds): ' +
            'requests answered, those admitted from a lease without a round trip, the admission elements a request ' +
            'waited for (the elements sent less the refreshes), the refreshes a responder sent in the background, and ' +
            'the admission statements (batches) they made.');
        md.push('');
    }

    // time to first token
    const ttft = {};
    for (const x of aux.filter((x) => x.ttft)) {
        (ttft[x.target] = ttft[x.target] || []).push(x.result);
        if (!x.result || x.result.failed || x.result.errors > 0)
            flags.push(`ttft ${x.target} round ${x.round}: ${x.result && x.result.errors} errors`);
    }
    const ttftSum = {};
    for (const [t, rs] of Object.entries(ttft)) {
        const ok = rs.filter((r) => r && !r.failed && r.first_token_ms);
        ttftSum[t] = {
            rounds: ok.length, n: ok.reduce((a, r) => a + r.ok, 0), errors: rs.reduce((a, r) => a + ((r && r.errors) || 0), 0),
            headers_p50_ms: median(ok.map((r) => r.headers_ms.p50)),
            first_p50_ms: median(ok.map((r) => r.first_token_ms.p50)),
            first_p99_ms: median(ok.map((r) => r.first_token_ms.p99)),
            done_p50_ms: median(ok.map((r) => r.done_ms.p50)),
        };
    }
    {
        const a = ttftSum.a_direct;
        const rows = [];
        for (const t of ['a_direct', 'b_lighttpd_proxy', ...cOne]) {
            const s = ttftSum[t];
            if (!s) continue;
            const add = (x, y) => (a && x !== null && y !== null ? fmtSigned((x - y) * 1000) : '–');
            rows.push([TARGETS[t], String(s.n), s.headers_p50_ms === null ? '–' : s.headers_p50_ms.toFixed(3),
                s.first_p50_ms === null ? '–' : s.first_p50_ms.toFixed(3),
                s.first_p99_ms === null ? '–' : s.first_p99_ms.toFixed(3),
                s.done_p50_ms === null ? '–' : s.done_p50_ms.toFixed(3),
                add(s.first_p50_ms, a && a.first_p50_ms), add(s.first_p99_ms, a && a.first_p99_ms),
                s.errors ? `**${s.errors}** ⚠` : '0']);
        }
        md.push(`## Time to first token (20-token stream, no delay; ${meta.ttft_n} sequential streams per round, node client)`);
        md.push('');
        md.push(table(['path', 'streams', 'headers p50 ms', 'first token p50 ms', 'first token p99 ms', '[DONE] p50 ms', 'added TTFT p50 µs', 'added TTFT p99 µs', 'errors'], rows));
        md.push('');
    }

    // memory
    const mem = aux.find((x) => x.memory) || null;
    // the idle responders of the other admission modes, measured with the first's
    const idleOthers = aux.filter((x) => x.idle_memory);
    for (const x of idleOthers) x.idle_ok = x.idle_pss_per_responder_kib < MEM_IDLE_LIMIT_KIB;
    if (mem) {
        const opened = mem.opened || 0;
        const perStream = opened > 0 ? (mem.rss_open_kib - mem.rss_before_kib) / opened : null;
        const perStreamUss = opened > 0 && mem.uss_open_kib ? (mem.uss_open_kib - mem.uss_before_kib) / opened : null;
        const idle = { rss: mem.idle_per_responder_kib, pss: mem.idle_pss_per_responder_kib || null,
            uss: mem.idle_uss_per_responder_kib || null };
        mem.per_stream_kib = perStream;
        mem.per_stream_uss_kib = perStreamUss;
        /* RSS counts the pages of the shared libraries (libc, libcurl with its
         * TLS libraries, libpq, json-c ...) that every process maps, whole in
         * each; PSS counts a 1/n share of each page mapped by n processes */
        mem.idle_checked = 'pss';
        mem.idle_limit_kib = MEM_IDLE_LIMIT_KIB;
        mem.idle_ok = idle.pss !== null && idle.pss < MEM_IDLE_LIMIT_KIB;
        mem.per_stream_limit_kib = MEM_STREAM_LIMIT_KIB;
        mem.per_stream_ok = perStream !== null && perStream < MEM_STREAM_LIMIT_KIB;
        md.push('## Responder memory');
        md.push('');
        md.push(`Idle responder after the runs (production config, ${meta.threads} threads, ` +
            `admission ${mem.admission || '–'}), per process, ` +
            `from /proc/PID/smaps_rollup of the ${mem.idle_processes || meta.procs} responders:`);
        md.push('');
        md.push(table(['what', 'KiB', 'target'], [
            ['RSS: every page mapped, shared library pages counted whole', fmtKiB(idle.rss), 'not checked (see below)'],
            ['**PSS**: private + a proportional share of shared pages', fmtKiB(idle.pss),
                `**< ${fmtKiB(MEM_IDLE_LIMIT_KIB)}: ${mem.idle_ok ? 'ok' : 'FAILED'}**`],
            ['private (USS: Private_Clean + Private_Dirty)', fmtKiB(idle.uss), 'for information'],
            ['shared pages in RSS (RSS − private)', idle.uss === null ? '–' : fmtKiB(idle.rss - idle.uss), 'for information'],
        ]));
        md.push('');
        if (idleOthers.length) {
            md.push('The idle responders of the other admission modes, at the same moment (each per process):');
            md.push('');
            md.push(table(['admission', 'RSS KiB', '**PSS** KiB', 'private KiB', 'target'], idleOthers.map((x) => [
                x.admission, fmtKiB(x.idle_per_responder_kib), fmtKiB(x.idle_pss_per_responder_kib),
                fmtKiB(x.idle_uss_per_responder_kib),
                `**< ${fmtKiB(MEM_IDLE_LIMIT_KIB)}: ${x.idle_ok ? 'ok' : 'FAILED'}**`])));
            md.push('');
            for (const x of idleOthers)
                if (!x.idle_ok)
                    flags.push(`memory: an idle responder's PSS (admission ${x.admission}) is ` +
                        `${fmtKiB(x.idle_pss_per_responder_kib)} KiB, not under ${fmtKiB(MEM_IDLE_LIMIT_KIB)} KiB`);
        }
        md.push(`The < ${MEM_IDLE_LIMIT_KIB / 1024} MiB target for an idle responder is checked against PSS: RSS cannot get under it, ` +
            'since most of it is the pages of shared libraries (libc, libcurl and its TLS libraries, libpq, ' +
            'json-c …) that every process maps, counted whole in each process\'s RSS; PSS counts each such ' +
            'page divided among the processes that map it, and private memory is what the process alone holds.');
        md.push('');
        md.push(`${mem.mem_processes} responders × ${mem.mem_threads} threads, warmed (sums over the processes):`);
        md.push('');
        md.push(table(['what', 'RSS KiB', 'private KiB'], [
            ['idle', fmtKiB(mem.rss_before_kib), fmtKiB(mem.uss_before_kib)],
            [`with ${opened} streams open (;tokens=50;delay=100; mock saw ${mem.mock_open_streams} open)`,
                fmtKiB(mem.rss_open_kib), fmtKiB(mem.uss_open_kib)],
            ['after the streams ended', fmtKiB(mem.rss_after_kib), fmtKiB(mem.uss_after_kib)],
            [`**per open stream** ((open − idle) / streams; target < ${MEM_STREAM_LIMIT_KIB} KiB of RSS: ` +
                `${mem.per_stream_ok ? 'ok' : 'FAILED'})`,
                perStream === null ? '–' : perStream.toFixed(1), perStreamUss === null ? '–' : perStreamUss.toFixed(1)],
        ]));
        md.push('');
        if (opened < mem.streams) flags.push(`memory: only ${opened} of ${mem.streams} streams were open at once`);
        if (mem.client && mem.client.errors) flags.push(`memory: ${mem.client.errors} streams failed`);
        if (!mem.idle_ok) flags.push(`memory: an idle responder's PSS is ${fmtKiB(idle.pss)} KiB, not under ${fmtKiB(MEM_IDLE_LIMIT_KIB)} KiB`);
        if (!mem.per_stream_ok) flags.push(`memory: ${perStream === null ? '–' : perStream.toFixed(1)} KiB per open stream, not under ${MEM_STREAM_LIMIT_KIB} KiB`);
    }

    // GET /metrics while many streams are open
    const scrape = aux.find((x) => x.scrape) || null;
    if (scrape) {
        const codes = scrape.codes || [];
        const times = (scrape.times_ms || []).filter((x, i) => codes[i] === '200');
        const bad = codes.filter((c) => c !== '200').length;
        const fmt = (x) => (x === null ? '–' : x.toFixed(1));
        scrape.p50_ms = quantile(times, 0.5);
        scrape.p90_ms = quantile(times, 0.9);
        scrape.p99_ms = quantile(times, 0.99);
        scrape.max_ms = times.length ? Math.max(...times) : null;
        scrape.not_200 = bad;
        scrape.p50_limit_ms = SCRAPE_P50_LIMIT_MS;
        scrape.ok = scrape.p50_ms !== null && scrape.p50_ms < SCRAPE_P50_LIMIT_MS;
        md.push('## GET /metrics under load');
        md.push('');
        md.push(`${scrape.procs} responders × ${scrape.threads} threads (admission ${scrape.admission || '–'}), ` +
            `${scrape.opened} of ${scrape.streams} ` +
            'streams open (;tokens=150;delay=100, through lighttpd); the scrapes one after another, ' +
            'curl with a new connection each (time_total), ' +
            `${fmtKiB((scrape.bytes || 0) / 1024)} KiB each; streams open by modelgate_streams_open at the ` +
            `first and the last scrape: ${scrape.open_first === null ? '–' : scrape.open_first} and ` +
            `${scrape.open_last === null ? '–' : scrape.open_last}.`);
        md.push('');
        md.push(table(['scrapes', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'not 200', 'target'], [[
            String(codes.length), fmt(scrape.p50_ms), fmt(scrape.p90_ms), fmt(scrape.p99_ms), fmt(scrape.max_ms),
            bad ? `**${bad}** ⚠` : '0',
            `**p50 < ${SCRAPE_P50_LIMIT_MS} ms: ${scrape.ok ? 'ok' : 'FAILED'}**`]]));
        md.push('');
        if (bad) flags.push(`metrics: ${bad} of ${codes.length} scrapes not answered 200`);
        if ((scrape.opened || 0) < scrape.streams)
            flags.push(`metrics: only ${scrape.opened || 0} of ${scrape.streams} streams were open at once`);
        else if (scrape.open_first !== scrape.opened)
            flags.push(`metrics: the first scrape counted ${scrape.open_first} streams open, not ${scrape.opened}`);
        if (scrape.client && scrape.client.errors) flags.push(`metrics: ${scrape.client.errors} streams failed`);
        if (!scrape.ok)
            flags.push(`metrics: a scrape took ${fmt(scrape.p50_ms)} ms (p50), not under ${SCRAPE_P50_LIMIT_MS} ms`);
    }

    // the targets, in one place: measured against them, not flagged (the
    // memory and /metrics ones are flagged above, the rest depend on the
    // machine)
    {
        const rows = [], targets = [];
        // bound: a function giving one line on what bounds the figure,
        // from this run's numbers; asked only of a missed target.  mode:
        // the admission mode the target is of, null for the others
        let mode = null;
        const add = (what, goal, value, text, met, bound) => {
            const b = met === false && bound ? bound() : null;
            targets.push({ admission: mode, what, goal, value, met, bound: b });
            rows.push([mode || '–', what, goal, text, met === null ? '–' : met ? 'met' : '**missed**']);
        };
        const bounds = targetBounds(meta, stats, get, statements, mem, scrape, gwOf);
        const ratioOf = (x, y) => (x && y && y.rps ? x.rps / y.rps : null);
        const paced = (t, field) => {
            const a = get('paced', 'a_direct', 'chat'), s = get('paced', t, 'chat');
            return a && s ? s[field] - a[field] : null;
        };
        const within = (x, lim) => (x === null || lim === null ? null : x <= lim);
        // the paced p99 that lighttpd alone adds: modelgate may add twice it
        const proxyP99 = paced('b_lighttpd_proxy', 'p99_us');
        const p99Max = proxyP99 === null ? null : PACED_P99_OVER_PROXY_MAX * proxyP99;
        for (const m of modes) {
            mode = m;
            for (const [t, who] of [['c_' + m, 'one project'], ['c_' + m + '_100p', '100 projects']]) {
                const c = get('tput', t, 'chat');
                const rp = ratioOf(c, get('tput', 'd_portkey', 'chat')), rb = ratioOf(c, get('tput', 'b_lighttpd_proxy', 'chat'));
                add(`chat req/s at 64 connections vs (d), ${who}`, `≥ ${OVER_PEER_MIN}×`, rp, fmtRatio(rp),
                    rp === null ? null : rp >= OVER_PEER_MIN, () => bounds.throughputVsPeer(t));
                add(`chat req/s at 64 connections vs (b), ${who}`, `≥ ${OVER_FLOOR_MIN}×`, rb, fmtRatio(rb),
                    rb === null ? null : rb >= OVER_FLOOR_MIN, () => bounds.throughputVsFloor(t));
                const p50 = paced(t, 'p50_us'), p99 = paced(t, 'p99_us');
                add(`paced ~${meta.paced_rate} req/s, added p50 vs (a), ${who}`, '≤ 0.6 ms', p50,
                    p50 === null ? '–' : fmtSigned(p50) + ' µs', within(p50, 600), () => bounds.latency('paced', t, 'p50_us'));
                add(`paced ~${meta.paced_rate} req/s, added p99 vs (a), ${who}`,
                    `≤ ${PACED_P99_OVER_PROXY_MAX} × (b)'s ${proxyP99 === null ? '–' : fmtSigned(proxyP99)} µs` +
                    ` = ${p99Max === null ? '–' : fmtSigned(p99Max)} µs`, p99,
                    p99 === null ? '–' : fmtSigned(p99) + ' µs', within(p99, p99Max), () => bounds.latency('paced', t, 'p99_us'));
            }
            const ta = ttftSum.a_direct, tc = ttftSum['c_' + m];
            const tt = ta && tc && ta.first_p50_ms !== null && tc.first_p50_ms !== null ? (tc.first_p50_ms - ta.first_p50_ms) * 1000 : null;
            add('time to first token added vs (a), p50', `≤ ${TTFT_ADDED_MAX_US / 1000} ms`, tt,
                tt === null ? '–' : fmtSigned(tt) + ' µs', within(tt, TTFT_ADDED_MAX_US), () => bounds.ttft(ttftSum, 'c_' + m));
        }
        mode = modes.length ? modes[0] : null;
        if (mem) {
            add('idle responder PSS', '< 8 MiB', mem.idle_pss_per_responder_kib || null,
                fmtKiB(mem.idle_pss_per_responder_kib) + ' KiB', mem.idle_ok, () => bounds.idleMemory(mem));
            add('responder memory per open stream', '< 64 KiB', mem.per_stream_kib,
                mem.per_stream_kib === null ? '–' : mem.per_stream_kib.toFixed(1) + ' KiB', mem.per_stream_ok,
                () => bounds.streamMemory());
        }
        for (const x of idleOthers) {
            mode = x.admission;
            add('idle responder PSS', '< 8 MiB', x.idle_pss_per_responder_kib,
                fmtKiB(x.idle_pss_per_responder_kib) + ' KiB', x.idle_ok, () => bounds.idleMemory(x));
        }
        mode = modes.length ? modes[0] : null;
        if (scrape) {
            add(`GET /metrics p50 with ${scrape.opened} streams open`, `< ${SCRAPE_P50_LIMIT_MS} ms`, scrape.p50_ms,
                scrape.p50_ms === null ? '–' : scrape.p50_ms.toFixed(1) + ' ms', scrape.ok, () => bounds.scrape());
        }
        stats.targets = targets;
        md.push('## Targets');
        md.push('');
        md.push(table(['admission', 'what', 'target', 'measured', ''], rows));
        md.push('');
        for (const m of [...modes, null]) {
            const missed = targets.filter((x) => x.met === false && x.admission === m);
            if (!missed.length) continue;
            md.push(`What bounds each missed target${m ? ', admission ' + m : ''} (from this run's figures):`);
            md.push('');
            for (const x of missed) md.push(`- ${x.what}: ${x.bound || 'no figure of this run says'}`);
            md.push('');
        }
    }

    // hot-path checks
    const checks = [];
    {
        const ofMode = (l, m) => l.target && l.target.startsWith('c_') && modeOf(l.target) === m;
        const limit = meta.procs * meta.pool_size;
        for (const m of modes) {
            const cRuns = aux.filter((x) => x.label && ofMode(x.label, m));
            const pgMax = Math.max(0, ...cRuns.map((x) => (x.pg && x.pg.conns_max) || 0));
            checks.push({ check: `Postgres connections during the modelgate runs, ${m} (pg_stat_activity by the mode's ` +
                'role, sampled every 0.5 s)',
                seen: `max ${pgMax}`, expected: `≤ ${meta.procs} × ${meta.pool_size} = ${limit}`, ok: pgMax <= limit && pgMax > 0 });
        }
        const conn = (filter) => {
            let c = 0, r = 0, maxRun = 0;
            for (const x of aux.filter((x) => x.label && filter(x.label))) {
                if (!x.mock_before || !x.mock_after) continue;
                // less one: the connection of the request that read mock_after
                const dc = x.mock_after.connections - x.mock_before.connections - 1;
                c += dc;
                r += x.mock_after.requests - x.mock_before.requests;
                maxRun = Math.max(maxRun, dc);
            }
            return { connections: c, requests: r, per_request: r ? c / r : null, max_per_run: maxRun };
        };
        const bNon = conn((l) => l.target === 'b_lighttpd_proxy' && l.endpoint !== 'stream');
        const maxConns = meta.procs * meta.threads;
        const seenConns = (x, what) => `${x.connections} for ${x.requests} ${what} ` +
            `(${x.per_request === null ? '–' : x.per_request.toFixed(4)}/${what === 'streams' ? 'stream' : 'request'}); ` +
            `at most ${x.max_per_run} in one run`;
        const keeps = `≤ ${maxConns} per run (${meta.procs} × ${meta.threads} threads, each keeps its connection)`;
        for (const m of modes) {
            const cNon = conn((l) => ofMode(l, m) && l.endpoint !== 'stream');
            const cStr = conn((l) => ofMode(l, m) && l.endpoint === 'stream');
            checks.push({ check: `new upstream TCP connections, modelgate ${m}, chat + embeddings (mock connection counter)`,
                seen: seenConns(cNon, 'requests'), expected: keeps,
                ok: cNon.requests > 0 && cNon.max_per_run <= maxConns });
            checks.push({ check: `new upstream TCP connections, modelgate ${m}, streams (the mock keeps the connection ` +
                'after a whole stream)',
                seen: seenConns(cStr, 'streams'), expected: keeps,
                ok: cStr.requests > 0 && cStr.max_per_run <= maxConns });
        }
        /* the floor (b) is lighttpd's only if the mock behind it could
         * answer far more: straight to it, in the same run, pipelined --
         * what the mock can answer, wrk's own cost per request cut down */
        for (const ep of Object.keys(ENDPOINTS)) {
            const seen = [], plain = [], oks = [];
            for (const [, conns] of TPUT) {
                const r = ratios[ep] && ratios[ep][conns];
                if (!r) continue;
                if (r.mock_over_floor !== null) plain.push(`${fmtRatio(r.mock_over_floor)} at ${conns}`);
                if (r.mock_pipelined_over_floor === null) continue;
                seen.push(`${fmtRatio(r.mock_pipelined_over_floor)} at ${conns} connections`);
                oks.push(r.mock_pipelined_over_floor >= MOCK_OVER_FLOOR_MIN);
            }
            const cpus = stats.cpu_per_request_us || {};
            const cpu = cpus['a_direct/' + ep], cpuPiped = cpus['a_direct_pipelined/' + ep];
            const b = get('tput', 'b_lighttpd_proxy', ep);
            const cap = cpu && cpu.mock > 0 && b && b.rps ? 1e6 / cpu.mock / b.rps : null;
            checks.push({ check: `the mock is not the floor's bottleneck, ${ENDPOINTS[ep]}: direct (a), pipelined ` +
                `×${meta.pipeline} (what the mock can answer) / lighttpd proxy (b)`,
                seen: (seen.join(', ') || '–') + `; plain (a) / (b), held down by wrk's own cost a request: ` +
                    `${plain.join(', ') || '–'}` + (cpu ? `; the mock spends ${Math.round(cpu.mock)} µs of CPU a request ` +
                    `plain, ${cpuPiped ? Math.round(cpuPiped.mock) : '–'} pipelined, one core's worth of plain ` +
                    `${cap === null ? '–' : fmtRatio(cap)} (b)` : ''),
                expected: `pipelined ≥ ${MOCK_OVER_FLOOR_MIN}× at each`, ok: oks.length > 0 && oks.every((x) => x) });
        }
        checks.push({ check: 'upstream connections, lighttpd mod_proxy (b), for information',
            seen: `${bNon.connections} for ${bNon.requests} requests`,
            expected: 'one per request: lighttpd 1.4 does not keep backend connections', ok: null });
        for (const m of modes) {
            const s = statements[m];
            if (!s || s.error) {
                checks.push({ check: `statement parsing, ${m}`, seen: s ? s.error : 'no statement check', expected: '', ok: false });
                continue;
            }
            checks.push({ check: `statements parsed while serving ${s.n} requests, ${m} (Postgres log, ` +
                'log_min_duration_statement = 0)',
                seen: `${s.parse} parse, ${s.simple} simple-protocol statements, ${s.unnamed} unnamed`,
                expected: '0: only statements prepared at connect are executed', ok: s.parse === 0 && s.simple === 0 && s.unnamed === 0 });
            /* admissions and settlements may go in batches (mg_admit_batch,
             * mg_settle_batch): at most one of each per request, at least
             * one; nothing else on the request path */
            const ex = s.execute, admits = (ex.mg_admit || 0) + (ex.mg_admit_batch || 0),
                settles = (ex.mg_settle || 0) + (ex.mg_settle_batch || 0) +
                    (ex.mg_settle_lease_batch || 0),
                /* the upkeep thread's (lib/upkeep.c), which runs on its own clock */
                upkeep = ['mg_reap', 'mg_catalog_claim', 'mg_catalog_replace', 'mg_ping',
                    'mg_partitions', 'mg_compact', 'mg_recon_claim', 'mg_recon_apply',
                    'mg_recon_retry', 'mg_recon_unsupported', 'mg_recon_watermark',
                    'mg_recon_dequeue', 'mg_recon_close_claim', 'mg_recon_close_record',
                    /* the settler thread's, in lease mode (lib/ledger.c), and
                     * the refresher's check of the admission changes */
                    'mg_lease_renew', 'mg_lease_release', 'mg_admission_changes'],
                others = Object.keys(ex).filter((k) => !/^mg_(admit|settle|settle_lease)(_batch)?$/.test(k) &&
                    !upkeep.includes(k));
            checks.push({ check: `named prepared statements executed per request, ${m}`,
                seen: Object.entries(ex).map(([k, v]) => `${k} ${v}`).join(', ') || 'none',
                expected: `1..${s.n} admission statements (mg_admit, mg_admit_batch; from leases, fewer) and 1..${s.n} settlement statements (mg_settle, mg_settle_batch, mg_settle_lease_batch) for ${s.n} requests, nothing else but upkeep`,
                ok: admits >= 1 && admits <= s.n && settles >= 1 && settles <= s.n && others.length === 0 });
            checks.push({ check: `responder backends before/after (no reconnect, so no re-prepare), ${m}`,
                seen: `${s.backends_before.length} → ${s.backends_after.length}, same pids: ${s.same_backends}`,
                expected: 'the same backends', ok: s.same_backends });
            if (s.client && s.client.errors) flags.push(`statement check, ${m}: ${s.client.errors} requests failed`);
        }
        checks.push({ check: 'framing of a non-streaming answer through lighttpd → modelgate (for information)',
            seen: meta.gw_framing || '–',
            expected: 'Content-Length (set by lighttpd) means lighttpd had the whole answer, END_REQUEST included, ' +
                'before it answered: the responder ends the response (mg_fcgi_end) before its log line; the settlement is written by another thread', ok: null });
        for (const c of checks) if (c.ok === false) flags.push('check failed: ' + c.check);
        md.push('## What the hot path may not do');
        md.push('');
        md.push(table(['check', 'seen', 'expected', 'result'], checks.map((c) => [c.check, c.seen, c.expected,
            c.ok === null ? 'info' : c.ok ? 'ok' : '**FAILED**'])));
        md.push('');
        const timed = modes.filter((m) => statements[m] && statements[m].durations);
        if (timed.length) {
            const rows = timed.flatMap((m) => Object.entries(statements[m].durations).map(([k, d]) =>
                [m, k, String(d.n), d.p50.toFixed(3), d.p99.toFixed(3), d.bind_p50 === null ? '–' : d.bind_p50.toFixed(3)]));
            md.push('Time inside Postgres per statement (log_min_duration_statement, sequential requests; ' +
                'the commit at the end of each statement\'s implicit transaction is not in it):');
            md.push('');
            md.push(table(['admission', 'statement', 'executions', 'execute p50 ms', 'execute p99 ms', 'bind p50 ms'], rows));
            md.push('');
        }
        for (const m of timed) {
            const pr = statements[m].per_request;
            if (pr) {
                md.push(`Per request over the same ${statements[m].n} sequential requests, ${m}: ${pr.xact_commit.toFixed(2)} commits, ` +
                    `${pr.wal_records.toFixed(1)} WAL records, ${Math.round(pr.wal_bytes)} WAL bytes, ` +
                    `${pr.wal_write.toFixed(2)} WAL writes, ${pr.wal_sync.toFixed(2)} WAL flushes (fsync); ` +
                    `usage_events rows updated ${pr.usage_events_upd.toFixed(2)} (HOT ${pr.usage_events_hot_upd.toFixed(2)}), ` +
                    `project_quota rows updated ${pr.project_quota_upd.toFixed(2)} (HOT ${pr.project_quota_hot_upd.toFixed(2)}).`);
                md.push('');
            }
        }
    }

    const notes = Object.entries(meta.peer_notes || {});
    if (notes.length) {
        md.push('Targets that could not serve an endpoint (compared against the floors only):');
        md.push('');
        for (const [k, n] of notes) md.push(`- ${k}: ${n}`);
        md.push('');
    }
    if (flags.length) {
        md.push('## ⚠ THIS RUN HAD ERRORS');
        md.push('');
        for (const f of flags) md.push('- ' + f);
        md.push('');
    } else {
        md.push('No errors: every request of every run was answered 2xx.');
        md.push('');
    }
    process.stdout.write(md.join('\n'));
    const out = { meta, stats, ratios, ttft: ttftSum, ttft_rounds: ttft, memory: mem, metrics_scrape: scrape, checks,
        statements, flags, ok: flags.length === 0 };
    fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
    process.stdout.write(`\nJSON: ${outFile}\n`);
    process.exit(flags.length ? 1 : 0);
}

// ---------------------------------------------------------------------------

function pglog(logFile, nText, clientText, beforeFile, afterFile, countersBefore, countersAfter) {
    const n = Number(nText);
    const text = fs.readFileSync(logFile, 'utf8');
    const out = { n, parse: 0, simple: 0, unnamed: 0, execute: {}, bind: {}, parse_by_name: {}, durations: {} };
    const exec = {}, bind = {};
    for (const line of text.split('\n')) {
        let m = line.match(/duration: ([\d.]+) ms\s+(parse|bind|execute) ([^:]+):/);
        if (m) {
            const [, ms, kind, name] = m;
            if (name === '<unnamed>') out.unnamed++;
            if (kind === 'parse') {
                out.parse++;
                out.parse_by_name[name] = (out.parse_by_name[name] || 0) + 1;
            } else if (kind === 'bind') {
                out.bind[name] = (out.bind[name] || 0) + 1;
                (bind[name] = bind[name] || []).push(Number(ms));
            } else {
                out.execute[name] = (out.execute[name] || 0) + 1;
                (exec[name] = exec[name] || []).push(Number(ms));
            }
            continue;
        }
        if (/duration: [\d.]+ ms\s+statement: /.test(line)) out.simple++;
    }
    for (const [name, xs] of Object.entries(exec))
        out.durations[name] = { n: xs.length, p50: median(xs), p99: quantile(xs, 0.99), bind_p50: bind[name] ? median(bind[name]) : null };
    try {
        out.client = JSON.parse(clientText);
    } catch (e) {
        out.client = { failed: true };
    }
    const pids = (f) => fs.readFileSync(f, 'utf8').split('\n').filter((l) => /^\d+$/.test(l.trim()));
    out.backends_before = pids(beforeFile);
    out.backends_after = pids(afterFile);
    try {
        const b = JSON.parse(countersBefore), a = JSON.parse(countersAfter);
        out.per_request = {};
        for (const k of Object.keys(a)) out.per_request[k] = (Number(a[k]) - Number(b[k])) / n;
    } catch (e) {
        out.per_request = null;
    }
    out.same_backends = out.backends_before.length > 0 &&
        out.backends_before.join(',') === out.backends_after.join(',');
    process.stdout.write(JSON.stringify(out) + '\n');
}

// ---------------------------------------------------------------------------
// Callgrind's output format: "ob=", "fn=" (with "(id) name" compression),
// cost lines "POSITIONS COSTS", and "calls=" lines whose next cost line is
// the inclusive cost of the call (not self cost).

function parseCallgrind(file) {
    const names = { ob: {}, fl: {}, fn: {} };
    const ns = { ob: 'ob', cob: 'ob', fl: 'fl', fi: 'fl', fe: 'fl', cfi: 'fl', cfl: 'fl', fn: 'fn', cfn: 'fn' };
    let ob = '???', fn = '???', skip = false, npos = 1, summary = null, totals = null, events = null;
    const self = new Map();
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (line === '') continue;
        const eq = line.match(/^(ob|cob|fl|fi|fe|cfi|cfl|fn|cfn)=(.*)$/);
        if (eq) {
            const space = ns[eq[1]];
            const m = eq[2].match(/^\((\d+)\)(?: (.*))?$/);
            let name = eq[2];
            if (m) {
                if (m[2] !== undefined) names[space][m[1]] = m[2];
                name = names[space][m[1]];
            }
            if (eq[1] === 'ob') ob = name;
            else if (eq[1] === 'fn') fn = name;
            continue;
        }
        if (line.startsWith('calls=')) {
            skip = true;
            continue;
        }
        if (/^[0-9+\-*]/.test(line)) {
            if (skip) {
                skip = false;
                continue;
            }
            const parts = line.trim().split(/\s+/);
            const ir = Number(parts[npos] || 0);
            const k = ob + '\u0000' + fn;
            self.set(k, (self.get(k) || 0) + ir);
            continue;
        }
        let m = line.match(/^positions:\s+(.*)$/);
        if (m) npos = m[1].trim().split(/\s+/).length;
        m = line.match(/^summary:\s+(\d+)/);
        if (m) summary = Number(m[1]);
        m = line.match(/^totals:\s+(\d+)/);
        if (m) totals = Number(m[1]);
        m = line.match(/^events:\s+(.*)$/);
        if (m) events = m[1];
    }
    return { self, summary, totals, events };
}

function objectGroup(ob) {
    const base = ob.split('/').pop();
    if (/^modelgate-fcgi$/.test(base)) return 'modelgate (our code)';
    if (/^libcurl/.test(base)) return 'libcurl';
    if (/^libjson-c/.test(base)) return 'json-c';
    if (/^libpq\./.test(base)) return 'libpq';
    if (/^libfcgi/.test(base)) return 'libfcgi';
    if (/^libc\.so/.test(base)) return 'libc';
    return 'other';
}

function callgrind(dumpFile, nText, endpoint, clientText, versionsText, outFile) {
    const n = Number(nText);
    const { self, summary, totals, events } = parseCallgrind(dumpFile);
    let total = 0;
    const groups = {}, objects = {}, ours = [], all = [];
    for (const [k, ir] of self) {
        const [ob, fn] = k.split('\u0000');
        total += ir;
        all.push({ ob, fn, ir });
        const g = objectGroup(ob);
        groups[g] = (groups[g] || 0) + ir;
        objects[ob] = (objects[ob] || 0) + ir;
        if (g === 'modelgate (our code)') ours.push({ fn, ir });
    }
    ours.sort((a, b) => b.ir - a.ir);
    const order = ['modelgate (our code)', 'libcurl', 'json-c', 'libpq', 'libfcgi', 'libc', 'other'];
    const rows = order.map((g) => [g, fmtInt((groups[g] || 0) / n), ((100 * (groups[g] || 0)) / total).toFixed(1) + '%']);
    rows.push(['**total**', '**' + fmtInt(total / n) + '**', '100%']);
    const others = Object.entries(objects).filter(([ob]) => objectGroup(ob) === 'other')
        .sort((a, b) => b[1] - a[1]).slice(0, 6);
    let client = {};
    try {
        client = JSON.parse(clientText);
    } catch (e) {
        client = { failed: true };
    }
    const versions = JSON.parse(versionsText);
    const md = [];
    md.push('# modelgate: instructions per request (callgrind)');
    md.push('');
    md.push(`One responder (1 thread, reaper off) under valgrind --tool=callgrind behind lighttpd; ` +
        `counters zeroed after the warm-up (callgrind_control -z), then ${n} sequential ${({ chat: 'non-streaming chats', embeddings: 'embeddings requests', stream: '20-token streamed chats' })[endpoint]} ` +
        `(admit + relay + settle), then dumped (callgrind_control -d). Self cost (--inclusive=no) summed per object. ` +
        `Client: ${JSON.stringify(client.statuses || client)}. Machine: ${versions.cores} cores, ${versions.cpu}; ` +
        `${versions.libcurl ? 'libcurl ' + versions.libcurl + ', ' : ''}modelgate ${versions.modelgate_commit}.`);
    md.push('');
    md.push(table(['object', 'instructions / request', 'share'], rows));
    md.push('');
    md.push('"other", largest: ' + others.map(([ob, ir]) => `${ob.split('/').pop()} ${fmtInt(ir / n)}`).join(', ') + '.');
    md.push('');
    md.push('Top five of our functions by self cost:');
    md.push('');
    md.push(table(['function', 'instructions / request', 'share of all'], ours.slice(0, 5).map((o) =>
        [o.fn, fmtInt(o.ir / n), ((100 * o.ir) / total).toFixed(2) + '%'])));
    md.push('');
    all.sort((a, b) => b.ir - a.ir);
    md.push('Top ten functions of all objects by self cost:');
    md.push('');
    md.push(table(['function', 'object', 'instructions / request', 'share of all'], all.slice(0, 10).map((o) =>
        [o.fn, o.ob.split('/').pop(), fmtInt(o.ir / n), ((100 * o.ir) / total).toFixed(2) + '%'])));
    md.push('');
    if (totals !== null && totals !== total)
        md.push(`(warning: the parsed total ${total} differs from the file's totals ${totals})`);
    process.stdout.write(md.join('\n') + '\n');
    const out = { endpoint, requests: n, events, total_ir: total, totals_ir: totals, summary_ir: summary, ir_per_request: total / n,
        top_functions: all.slice(0, 30).map((o) => ({ fn: o.fn, object: o.ob, ir_per_request: o.ir / n })),
        by_group: Object.fromEntries(order.map((g) => [g, { ir_per_request: (groups[g] || 0) / n, share: (groups[g] || 0) / total }])),
        other_objects: Object.fromEntries(others.map(([ob, ir]) => [ob, ir / n])),
        top_own_functions: ours.slice(0, 20).map((o) => ({ fn: o.fn, ir_per_request: o.ir / n })),
        client, versions };
    fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
    process.stdout.write(`\nJSON: ${outFile}\n`);
}

// ---------------------------------------------------------------------------

function pgbench(resultsFile, versionsText, durationText, outFile, pgSettings) {
    const runs = readJsonLines(resultsFile).filter((r) => r.clients);
    const versions = JSON.parse(versionsText);
    const groups = {};
    for (const r of runs) (groups[r.clients + '/' + r.projects] = groups[r.clients + '/' + r.projects] || []).push(r);
    const rows = [], summary = {}, flags = [];
    for (const [k, rs] of Object.entries(groups)) {
        const [c, n] = k.split('/').map(Number);
        const tps = rs.map((r) => r.tps).filter((x) => x !== null);
        const failed = rs.reduce((a, r) => a + (r.failed || 0), 0);
        const bad = rs.filter((r) => r.tps === null).length;
        if (failed || bad) flags.push(`${c} clients, ${n} projects: ${failed} failed transactions, ${bad} runs without a result`);
        const s = { clients: c, projects: n, runs: rs.length, requests_per_s: median(tps),
            min: tps.length ? Math.min(...tps) : null, max: tps.length ? Math.max(...tps) : null,
            latency_ms: median(rs.map((r) => r.latency_ms)), failed };
        summary[k] = s;
        rows.push([String(c), n === 1 ? 'one project (one project_quota row)' : '100 projects, random',
            fmtInt(s.requests_per_s), `${fmtInt(s.min)}–${fmtInt(s.max)}`, s.latency_ms === null ? '–' : s.latency_ms.toFixed(3),
            failed || bad ? `**${failed + bad}** ⚠` : '0']);
    }
    const md = [];
    md.push('# Admission + settlement in Postgres alone (pgbench)');
    md.push('');
    md.push(`pgbench -M prepared, ${durationText} s per run, rounds interleaved, medians. One pgbench transaction is ` +
        `one request's admission and its settlement, each a batch of one (two statements, two commits), as a responder sends them when requests come one at a time. ` +
        `${versions.postgres}, ${pgSettings ? '**' + pgSettings + '** (not the defaults)' : 'default settings'}; ` +
        `${versions.cores} cores, ${versions.cpu}.`);
    md.push('');
    md.push(table(['clients', 'keys', 'requests/s (admit + settle)', 'min–max', 'latency ms', 'failed'], rows));
    md.push('');
    md.push(flags.length ? '## ⚠ errors\n\n' + flags.map((f) => '- ' + f).join('\n') + '\n' : 'No failed transactions.');
    process.stdout.write(md.join('\n') + '\n');
    fs.writeFileSync(outFile, JSON.stringify({ summary, runs, versions, pg_settings: pgSettings || '', flags }, null, 2) + '\n');
    process.stdout.write(`\nJSON: ${outFile}\n`);
    process.exit(flags.length ? 1 : 0);
}

// ---------------------------------------------------------------------------

const ZONES = ['UTC', 'America/New_York', 'Asia/Kolkata'];
const REPORTS = {
    day: 'last month by day',
    model: 'last month by model',
    key: 'last month by key',
    requests: 'latest 50 requests',
};
const SETTLE_DBS = { settle_prev: 'A', settle_cur: 'B', modelgate: 'C' };
const SETTLE_RATIO_MIN = 0.9;
const BATCH = 16;

function usage(resultsFile, versionsText, outFile, prevRev, explains, pgSettings) {
    const lines = readJsonLines(resultsFile);
    const versions = JSON.parse(versionsText);
    const fill = lines.find((l) => l.kind === 'fill') || null;
    const reports = lines.filter((l) => l.kind === 'report');
    const settles = lines.filter((l) => l.kind === 'settle');
    const flags = [], misses = [];
    for (const l of lines) if (l.unparsable !== undefined) flags.push('unparsable result line: ' + l.unparsable.slice(0, 120));
    const f1 = (x) => (x === null || x === undefined ? '–' : x.toFixed(1));
    const gib = (b) => (b === null || b === undefined ? '–' : (b / 1073741824).toFixed(2) + ' GiB');
    const md = [];
    md.push('# The usage layer at size (tests/bench/run --usage)');
    md.push('');
    md.push(`${versions.postgres}, ${pgSettings ? '**' + pgSettings + '** (not the defaults)' : 'default settings'}` +
        (fill ? ` (shared_buffers ${fill.shared_buffers}, work_mem ${fill.work_mem})` : '') +
        `; ${versions.cores} cores, ${versions.cpu}; modelgate ${versions.modelgate_commit}.`);
    md.push('');

    md.push('## Fill');
    md.push('');
    if (!fill) {
        flags.push('no fill result');
    } else {
        const rps = fill.rows / fill.fill_s;
        md.push(table(['usage rows', 'projects', 'keys', 'days', 'fill', 'rows/s', 'VACUUM ANALYZE',
            'usage_events', 'usage_rollup rows', 'usage_rollup', 'rollups = rows'],
        [[String(fill.rows), String(fill.projects), String(fill.keys), String(fill.days),
            `${f1(fill.fill_s)} s (${fill.jobs} at a time)`, fmtInt(rps), `${f1(fill.vacuum_s)} s`,
            gib(Number(fill.usage_bytes)), String(fill.rollup_rows), gib(Number(fill.rollup_bytes)),
            fill.rollups_match ? 'yes' : '**no** ⚠']]));
        md.push('');
        md.push(`Rollup rows by grain: ${Object.entries(fill.rollup_by_grain || {}).map(([g, n]) => `${g} ${n}`).join(', ')}. ` +
            `${(100 * fill.chat_rows / fill.rows).toFixed(1)} % chat, ${(100 * fill.ok_rows / fill.rows).toFixed(1)} % status 200; ` +
            `bench-1 has ${fill.hot_rows} rows (${fill.hot_last_month_rows} last month); last month has ${fill.last_month_rows}. ` +
            `Load average at the end of the fill: ${fill.load}.`);
        md.push('');
        if (!fill.rollups_match) flags.push('the rollups do not add up to the usage rows');
    }

    md.push('## Reports');
    md.push('');
    const n = reports.length ? Math.max(...reports.map((r) => r.n)) : 0;
    md.push(`Each through its SQL function as the faces call it, in one session: one warm-up, then ${n} calls ` +
        '(fewer, at least 3, where the warm-up was slow: about 20 s a report; see calls). bench.time_calls takes ' +
        'clock_timestamp() around each EXECUTE: the server\'s time, without the network. ms as p50 / p95 / max. ' +
        'Last month is the calendar month before this one in the zone; bench-1 is the busiest project.');
    md.push('');
    const rrows = [];
    const rsummary = [];
    for (const name of Object.keys(REPORTS)) {
        for (const project of ['bench-1', null]) {
            const row = [REPORTS[name], project || 'all projects'];
            let target = null, met = true, bytes = null, any = false;
            const calls = [];
            for (const tz of ZONES) {
                const r = reports.find((x) => x.report === name && x.tz === tz && x.project === project);
                if (!r) {
                    row.push('–');
                    continue;
                }
                any = true;
                target = r.target_ms;
                bytes = r.bytes;
                calls.push(r.n);
                row.push(`${r.ok ? '' : '**'}${r.p50.toFixed(1)}${r.ok ? '' : '**'} / ${r.p95.toFixed(1)} / ${r.max.toFixed(1)}`);
                rsummary.push({ report: name, project, tz, calls: r.n, p50: r.p50, p95: r.p95, max: r.max,
                    warm_ms: r.warm_ms, bytes: r.bytes, target_ms: r.target_ms, ok: r.ok });
                if (!r.ok) {
                    met = false;
                    misses.push(`${REPORTS[name]}, ${project || 'all projects'}, ${tz}: p50 ${r.p50.toFixed(1)} ms, target < ${r.target_ms} ms` +
                        `\n  - bounded by its statement inside Postgres (server time, no network): p95 ${r.p95.toFixed(1)} ms, ` +
                        `${r.bytes === null || r.bytes === undefined ? '–' : r.bytes} bytes of answer; the rows it reads are in its plan` +
                        (explains ? ` (${explains})` : ''));
                }
            }
            if (!any) flags.push(`no timings of ${REPORTS[name]}, ${project || 'all projects'}`);
            row.push(calls.length ? `${Math.min(...calls)}${Math.max(...calls) > Math.min(...calls) ? '–' + Math.max(...calls) : ''}` : '–',
                bytes === null ? '–' : String(bytes), target === null ? '–' : `p50 < ${target} ms`,
                any ? (met ? 'yes' : '**no** ✗') : '–');
            rrows.push(row);
        }
    }
    md.push(table(['report', 'scope', ...ZONES.map((z) => z + ' ms'), 'calls', 'answer bytes', 'target', 'met'], rrows));
    md.push('');
    if (explains) md.push(`The plans of the reports that missed (EXPLAIN ANALYZE BUFFERS of each statement): ${explains}`);
    md.push('');

    const dash = lines.filter((l) => l.kind === 'dashboard');
    md.push('## The dashboard\'s first paint');
    md.push('');
    if (!dash.length) {
        md.push('Not timed (no chromium or playwright-core on this machine).');
    } else {
        md.push(`Headless Chromium, a fresh page each load with the key already in the tab: from the start of ` +
            `the navigation to every figure drawn (the page's calls to /v1/usage, /v1/quota, /v1/usage/models ` +
            `and /v1/usage/requests answered through lighttpd and two responders), on the filled database; ` +
            `one warm-up, then ${dash[0].n} loads; ms as p50 / p95 / max.`);
        md.push('');
        md.push(table(['key', 'range', 'ms', 'target', 'met'], dash.map((d) => [d.who, d.range,
            `${d.ok ? '' : '**'}${d.p50.toFixed(0)}${d.ok ? '' : '**'} / ${d.p95.toFixed(0)} / ${d.max.toFixed(0)}`,
            `p50 < ${d.target_ms} ms`, d.ok ? 'yes' : '**no** ✗'])));
        for (const d of dash) {
            if (!d.ok) {
                misses.push(`dashboard, ${d.who}, ${d.range}: p50 ${d.p50.toFixed(0)} ms, target < ${d.target_ms} ms` +
                    `\n  - bounded by the slowest of the page's calls to /v1/usage… answered at once by two responders ` +
                    `and Postgres on the machine's ${os.cpus().length} cores, which Chromium shares (p95 ${d.p95.toFixed(0)} ms)`);
            }
        }
    }
    md.push('');

    md.push('## Settlement: rollups on against the previous release');
    md.push('');
    const rounds = new Set(settles.map((r) => r.round)).size;
    md.push(`pgbench -M prepared, ${rounds} rounds of ${settles.length ? settles[0].duration_s : '–'} s per run, ` +
        'A and B interleaved, then A and C (the order reversed every other round; each round\'s two runs of a cell back to back), ' +
        'medians; B/A and C/A are the medians of each round\'s ratio, read at one load. One transaction is one mg_admit_batch of ' +
        `${BATCH} requests and one mg_settle_batch of them (two statements, two commits); rows/s = transactions/s × ${BATCH}. ` +
        `A: the SQL of ${prevRev} (the previous release: no partitions, no rollups); B: this release, empty; ` +
        'C: this release, the filled database. The statement latencies are pgbench\'s averages (per batch, lock waits included); ' +
        'the settle statement alone is what settlement costs. WAL: the cluster\'s over the run (admission and settlement) ' +
        'per request settled.');
    md.push('');
    const srows = [];
    const ssummary = {};
    for (const projects of [1, 100]) {
        for (const clients of [1, 8]) {
            const by = {};
            const cellRuns = (db, phase) => settles.filter((r) => r.db === db && r.projects === projects &&
                r.clients === clients && (!r.phase || !phase || r.phase === phase));
            for (const [db, label] of Object.entries(SETTLE_DBS)) {
                /* A's runs of the A/B phase stand for A in the table */
                const rs = cellRuns(db, label === 'C' ? 'ac' : 'ab');
                for (const r of rs) {
                    if (r.tps === null || r.transactions === null) flags.push(`${label} ${projects}p ${clients}c round ${r.round}: no result`);
                    else if (r.failed || r.pending || r.settled !== r.transactions * BATCH) {
                        flags.push(`${label} ${projects}p ${clients}c round ${r.round}: ${r.failed} failed transactions, ` +
                            `${r.settled} rows settled of ${r.transactions * BATCH}, ${r.pending} pending`);
                    }
                }
                by[label] = rs.length ? {
                    runs: rs.length,
                    rows_per_s: median(rs.map((r) => (r.tps === null ? null : r.tps * BATCH))),
                    min: Math.min(...rs.map((r) => r.tps * BATCH)), max: Math.max(...rs.map((r) => r.tps * BATCH)),
                    admit_ms: median(rs.map((r) => r.admit_ms)), settle_ms: median(rs.map((r) => r.settle_ms)),
                    wal_per_request: median(rs.map((r) => (r.wal_bytes && r.settled ? r.wal_bytes / r.settled : null))),
                } : null;
            }
            /* each round's ratio of the two runs of its phase, then their median */
            const ratio = (xdb, phase) => {
                const rs = [];
                for (const x of cellRuns(xdb, phase)) {
                    const a = cellRuns('settle_prev', phase).find((r) => r.round === x.round &&
                        (r.phase || null) === (x.phase || null));
                    if (a && a.tps && x.tps !== null) rs.push(x.tps / a.tps);
                }
                return rs.length ? median(rs) : null;
            };
            const ba = ratio('settle_cur', 'ab'), ca = ratio('modelgate', 'ac');
            const ok = ba !== null && ba >= SETTLE_RATIO_MIN;
            if (ba !== null && !ok) {
                const st = (l, k) => (by[l] && by[l][k] !== null ? by[l][k].toFixed(2) : '–');
                misses.push(`settlement, ${projects === 1 ? 'one project' : '100 projects'}, ${clients} client(s): ` +
                    `B/A ${ba.toFixed(2)}, target >= ${SETTLE_RATIO_MIN}` +
                    `\n  - bounded by the settle statement, which also appends the rollup increments: ` +
                    `${st('B', 'settle_ms')} ms a batch against ${st('A', 'settle_ms')} ms in A ` +
                    `(the admission: ${st('B', 'admit_ms')} against ${st('A', 'admit_ms')} ms)`);
            }
            const cell = (l) => (by[l] ? `${fmtInt(by[l].rows_per_s)} (${fmtInt(by[l].min)}–${fmtInt(by[l].max)})` : '–');
            const ms = (k) => ['A', 'B', 'C'].map((l) => (by[l] && by[l][k] !== null ? by[l][k].toFixed(2) : '–')).join(' / ');
            srows.push([projects === 1 ? 'one project' : '100 projects', String(clients), cell('A'), cell('B'),
                ba === null ? '–' : `${ok ? '' : '**'}${ba.toFixed(2)}${ok ? '' : '** ✗'}`, cell('C'),
                ca === null ? '–' : ca.toFixed(2), ms('admit_ms'), ms('settle_ms'),
                ['A', 'B', 'C'].map((l) => (by[l] ? fmtInt(by[l].wal_per_request) : '–')).join(' / ')]);
            ssummary[`${projects}/${clients}`] = { projects, clients, ...by, b_over_a: ba, c_over_a: ca, ok };
        }
    }
    md.push(table(['keys', 'clients', 'A rows/s (min–max)', 'B rows/s', 'B/A (≥ 0.90)', 'C rows/s', 'C/A',
        'admit ms A / B / C', 'settle ms A / B / C', 'WAL bytes/request A / B / C'], srows));
    md.push('');
    const loads = settles.map((r) => Number(String(r.load).split(' ')[0])).filter((x) => isFinite(x));
    if (loads.length) md.push(`Load average (1 min) during the settlement runs: ${Math.min(...loads)}–${Math.max(...loads)}.`);
    md.push('');
    md.push(misses.length ? '## ✗ targets missed\n\n' + misses.map((m) => '- ' + m).join('\n') + '\n' : 'Every target met.');
    md.push('');
    md.push(flags.length ? '## ⚠ errors\n\n' + flags.map((f) => '- ' + f).join('\n') + '\n' : 'No errors.');
    process.stdout.write(md.join('\n') + '\n');
    fs.writeFileSync(outFile, JSON.stringify({ fill, reports: rsummary, dashboard: dash, settlement: ssummary, runs: settles,
        prev: prevRev, explains: explains || null, versions, pg_settings: pgSettings || '', misses, flags }, null, 2) + '\n');
    process.stdout.write(`\nJSON: ${outFile}\n`);
    process.exit(flags.length || misses.length ? 1 : 0);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'bench') bench(...args);
else if (mode === 'pglog') pglog(...args);
else if (mode === 'callgrind') callgrind(...args);
else if (mode === 'pgbench') pgbench(...args);
else if (mode === 'usage') usage(...args);
else {
    process.stderr.write('usage: report.cjs bench|pglog|callgrind|pgbench|usage ...\n');
    process.exit(2);
}
