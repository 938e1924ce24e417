// dashboard.cjs -- the dashboard's first paint with data, for
// tests/bench/run --usage: headless Chromium (Debian's chromium through
// playwright-core), a fresh page for each load with the key already in
// the tab's sessionStorage (as after a sign-in), the time from the start
// of the navigation to the moment every figure of the page is drawn
// (body[data-ready]).  One warm-up per case, then REPS loads.
//
//   node dashboard.cjs BASE PROJECT-KEY ADMIN-KEY REPS
//
// Prints one JSON line per case: {kind: "dashboard", who, range, n, p50,
// p95, max, target_ms, ok}.
'use strict';

const { chromium } = require('playwright-core');

const [base, projectKey, adminKey, repsText] = process.argv.slice(2);
const reps = Math.max(3, Number(repsText) || 10);
const TARGET_MS = 1000;

async function load(browser, key, range) {
    const context = await browser.newContext({ timezoneId: 'UTC' });
    await context.addInitScript((k) => sessionStorage.setItem('modelgate.key', k), key);
    const page = await context.newPage();
    if (range !== '7d') {
        // the range is picked before the first load, as a returning user's
        await context.addInitScript((r) => {
            document.addEventListener('DOMContentLoaded', () => {
                document.getElementById('range').value = r;
            });
        }, range);
    }
    await page.goto(base + '/dashboard/');
    try {
        await page.waitForFunction(() => document.body.getAttribute('data-ready') === '1' ||
            !document.getElementById('error').hidden ||
            document.getElementById('signin-error').textContent !== '', null, { timeout: 60000 });
    } catch (e) {
        throw new Error(`no figures within 60 s (${range}): ${e.message}`);
    }
    const said = await page.evaluate(() => document.getElementById('error').textContent ||
        document.getElementById('signin-error').textContent);
    if (said) throw new Error(`the page said: ${said}`);
    // the page marks the moment its figures are drawn (the last mark: a
    // page signed in once draws once)
    const ms = await page.evaluate(() => {
        const m = performance.getEntriesByName('modelgate-ready');
        return m.length ? m[m.length - 1].startTime : performance.now();
    });
    const calls = await page.evaluate(() => performance.getEntriesByType('resource')
        .filter((r) => r.name.includes('/v1/'))
        .map((r) => ({ path: new URL(r.name).pathname + new URL(r.name).search.slice(0, 40),
            start: Math.round(r.startTime), ms: Math.round(r.duration) })));
    if (process.env.MG_BENCH_DASHBOARD_CALLS) process.stderr.write(JSON.stringify({ range, ms, calls }) + '\n');
    await context.close();
    return ms;
}

async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
        args: ['--no-sandbox', '--disable-gpu'],
    });
    for (const [who, key] of [['bench-1', projectKey], ['admin, all projects', adminKey]]) {
        for (const range of ['7d', '30d']) {
            await load(browser, key, range);   // warm-up
            const t = [];
            for (let i = 0; i < reps; i++) t.push(await load(browser, key, range));
            t.sort((a, b) => a - b);
            const q = (p) => t[Math.min(t.length - 1, Math.ceil(p * t.length) - 1)];
            process.stdout.write(JSON.stringify({ kind: 'dashboard', who, range, n: t.length,
                p50: q(0.5), p95: q(0.95), max: t[t.length - 1], target_ms: TARGET_MS,
                ok: q(0.5) < TARGET_MS }) + '\n');
        }
    }
    await browser.close();
}

main().catch((e) => {
    process.stderr.write(`dashboard.cjs: ${e.stack || e}\n`);
    process.exit(1);
});
