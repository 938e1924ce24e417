// dashboard-browser.cjs -- the dashboard in headless Chromium (Debian's
// chromium, driven by playwright-core), for test-dashboard.sh.
//
//   node dashboard-browser.cjs BASE OUTDIR
//
// Environment: MG_KEY_PROJECT (a key of project alpha), MG_KEY_ADMIN,
// MG_KEY_REVOKED (a key revoked already), MG_KEY_TO_REVOKE and
// MG_REVOKE_CMD (a shell command that revokes it), MG_TZ (the browser's
// time zone), CHROMIUM (default /usr/bin/chromium).  Prints one JSON
// object of what the pages showed; screenshots go to OUTDIR.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { execSync } = require('node:child_process');
const { chromium } = require('playwright-core');

const [base, outdir] = process.argv.slice(2);
const env = process.env;

async function ready(page) {
    await page.waitForFunction(() => document.body.getAttribute('data-ready') === '1' &&
        !document.body.hasAttribute('data-busy'), null, { timeout: 20000 });
}

// the admin's reconciliation comes after the figures
async function reconReady(page) {
    await page.waitForFunction(() => document.body.getAttribute('data-recon-ready') === '1', null,
        { timeout: 20000 });
}

async function settle(page) {
    await page.waitForTimeout(50);
    await page.waitForFunction(() => !document.body.hasAttribute('data-busy'), null,
        { timeout: 20000 });
}

// What the page shows now.
async function observe(page) {
    return page.evaluate(() => {
        const rows = (id) => Array.from(document.querySelectorAll(`#${id} tbody tr`))
            .map((tr) => Array.from(tr.children).map((td) => td.textContent));
        const series = (id) => JSON.parse(document.getElementById(id).getAttribute('data-series') || 'null');
        return {
            who: document.getElementById('who').textContent,
            error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
            period: document.getElementById('period').textContent,
            endpoint: document.getElementById('endpoint').textContent,
            chips: Array.from(document.querySelectorAll('#models .chip')).map((c) => ({
                model: c.getAttribute('data-model'),
                id: c.querySelector('.id').textContent,
                price: c.querySelector('.price').textContent,
                provider: c.closest('.provider').querySelector('h4').textContent,
            })),
            imgsInModels: document.querySelectorAll('#models img, #top-models img, #requests img').length,
            spend: series('chart-spend'),
            requests: series('chart-requests'),
            tokens: series('chart-tokens'),
            days: rows('days'),
            topModels: rows('top-models'),
            latest: rows('requests'),
            cards: Array.from(document.querySelectorAll('#cards .card')).map((c) => c.textContent),
            cap: document.getElementById('cap').textContent,
            recon: document.getElementById('recon-box').hidden ? null : document.getElementById('recon').textContent,
            projects: Array.from(document.querySelectorAll('#project option')).map((o) => o.value),
            projectBox: !document.getElementById('project-box').hidden,
            xss: window.__xss === undefined ? null : window.__xss,
        };
    });
}

async function signIn(page, key) {
    await page.fill('#key', key);
    await page.click('#signin-form button[type=submit]');
}

async function main() {
    const browser = await chromium.launch({
        executablePath: env.CHROMIUM || '/usr/bin/chromium',
        args: ['--no-sandbox', '--disable-gpu'],
    });
    const context = await browser.newContext({
        timezoneId: env.MG_TZ || 'UTC', acceptDownloads: true, locale: 'en-US',
        viewport: { width: 1280, height: 1600 },
    });
    const page = await context.newPage();
    const out = { consoleErrors: [], apiCalls: [], requestsWithKeyInUrl: 0 };
    // (the 401s and 403s the page asks for are not errors of the page)
    page.on('console', (m) => {
        if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) {
            out.consoleErrors.push(m.text());
        }
    });
    page.on('response', (r) => {
        if (r.status() === 404) out.notFound = (out.notFound || []).concat(r.url());
    });
    page.on('pageerror', (e) => out.consoleErrors.push(String(e)));
    page.on('request', (r) => {
        const u = new URL(r.url());
        for (const k of [env.MG_KEY_PROJECT, env.MG_KEY_ADMIN]) {
            if (k && r.url().includes(k)) out.requestsWithKeyInUrl++;
        }
        if (u.pathname.startsWith('/v1/')) out.apiCalls.push(u.pathname + u.search);
        if (u.origin !== new URL(base).origin) out.offsite = (out.offsite || 0) + 1;
    });

    // the page, its headers
    const resp = await page.goto(base + '/dashboard/');
    out.status = resp.status();
    out.headers = resp.headers();

    // no key, a wrong key, a revoked key
    await page.click('#signin-form button[type=submit]');
    out.emptyKey = await page.evaluate(() => document.getElementById('key').validity.valueMissing);
    await signIn(page, 'mg-notakeyatallnotakeyatallnotakey12');
    await page.waitForFunction(() => document.getElementById('signin-error').textContent !== '');
    out.wrongKey = await page.textContent('#signin-error');
    await page.evaluate(() => { document.getElementById('signin-error').textContent = ''; });
    await signIn(page, env.MG_KEY_REVOKED);
    await page.waitForFunction(() => document.getElementById('signin-error').textContent !== '');
    out.revokedKey = await page.textContent('#signin-error');

    // the project key, 7 days
    await signIn(page, env.MG_KEY_PROJECT);
    await ready(page);
    out.project7d = await observe(page);
    out.project7d.calls = out.apiCalls.splice(0);
    out.storage = await page.evaluate(() => ({
        session: Object.keys(sessionStorage), local: Object.keys(localStorage),
        cookie: document.cookie, href: location.href,
    }));
    out.snippets = {};
    for (const lang of ['curl', 'Node', 'Python']) {
        await page.click(`#snippet-tabs button:text-is("${lang}")`);
        out.snippets[lang] = await page.$$eval('#snippets .snippet', (s) =>
            s.map((x) => ({ kind: x.getAttribute('data-kind'), code: x.querySelector('code').textContent })));
    }
    await page.click('#snippet-tabs button:text-is("curl")');
    await page.screenshot({ path: path.join(outdir, 'dashboard-project.png'), fullPage: true });

    // the CSV of what is on screen
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
    await download.saveAs(path.join(outdir, 'usage.csv'));
    out.csvName = download.suggestedFilename();

    // paging: the next 20, then back to the newest
    await page.click('#req-next');
    await settle(page);
    out.page2 = (await observe(page)).latest;
    out.page2First = await page.evaluate(() => !document.getElementById('req-first').disabled);
    await page.click('#req-first');
    await settle(page);
    out.page1Again = (await observe(page)).latest;

    // filters: errors only; then today
    await page.selectOption('#f-status', '5xx');
    await settle(page);
    out.errorsOnly = (await observe(page)).latest;
    await page.selectOption('#f-status', '');
    await settle(page);
    await page.selectOption('#range', 'today');
    await page.click('#range-form button[type=submit]');
    await settle(page);
    out.projectToday = await observe(page);
    out.projectToday.calls = out.apiCalls.splice(0);
    // a custom range: the three days up to today, in the browser's zone
    const today = await page.evaluate(() => new Intl.DateTimeFormat('en-CA', {
        timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone, year: 'numeric',
        month: '2-digit', day: '2-digit' }).format(new Date()));
    const from = new Date(today + 'T00:00:00Z');
    from.setUTCDate(from.getUTCDate() - 2);
    await page.selectOption('#range', 'custom');
    await page.fill('#since', from.toISOString().slice(0, 10));
    await page.fill('#until', today);
    await page.click('#range-form button[type=submit]');
    await settle(page);
    out.projectCustom = await observe(page);
    out.projectCustom.calls = out.apiCalls.splice(0);
    out.projectCustom.from = from.toISOString().slice(0, 10);
    out.projectCustom.to = today;

    // the admin key: every project, then one
    await page.click('#signout');
    await signIn(page, env.MG_KEY_ADMIN);
    await ready(page);
    await page.click('#recon-load');
    await reconReady(page);
    out.adminAll = await observe(page);
    out.adminAll.calls = out.apiCalls.splice(0);
    await page.screenshot({ path: path.join(outdir, 'dashboard-admin.png'), fullPage: true });
    await page.selectOption('#project', 'beta');
    await settle(page);
    await page.waitForFunction(() => document.body.getAttribute('data-ready') === '1');
    out.adminBeta = await observe(page);
    out.adminBeta.calls = out.apiCalls.splice(0);

    // a key revoked while signed in
    await page.click('#signout');
    await signIn(page, env.MG_KEY_TO_REVOKE);
    await ready(page);
    execSync(env.MG_REVOKE_CMD, { stdio: 'ignore' });
    await page.click('#range-form button[type=submit]');
    await page.waitForFunction(() => !document.getElementById('signin').hidden, null, { timeout: 20000 });
    out.revokedWhileIn = {
        signin: await page.textContent('#signin-error'),
        session: await page.evaluate(() => Object.keys(sessionStorage)),
    };
    await browser.close();
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
    process.stderr.write(`dashboard-browser: ${e.stack || e}\n`);
    process.exit(1);
});
