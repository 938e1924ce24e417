// modelgate dashboard: one page, no framework, no library.  Every figure
// comes from the gateway's usage API (/v1/usage, /v1/usage/requests,
// /v1/quota, /v1/usage/models, /v1/usage/projects,
// /v1/usage/reconciliation) with the key the user gives, which is kept in
// sessionStorage only.  Text from the API (model names, key names, error
// messages) is only ever set as text, never parsed as HTML.  Charts are
// SVG drawn here.
'use strict';

(function () {
    const KEY = 'modelgate.key';
    const $ = (id) => document.getElementById(id);
    const state = {
        key: null, admin: false, project: '', ownProject: null, quota: null,
        models: [], cursors: [], cursor: null, next: null, period: null,
    };

    // el(tag, attrs, ...children): an element; children are nodes or text.
    function el(tag, attrs, ...children) {
        const e = tag === 'svg' || attrs && attrs.svg ?
            document.createElementNS('http://www.w3.org/2000/svg', tag) :
            document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (k === 'svg' || v === undefined || v === null) continue;
            if (k === 'text') e.textContent = v;
            else e.setAttribute(k, String(v));
        }
        for (const c of children) {
            if (c === null || c === undefined) continue;
            e.append(typeof c === 'string' || typeof c === 'number' ? String(c) : c);
        }
        return e;
    }
    const svgEl = (tag, attrs, ...c) => el(tag, Object.assign({ svg: true }, attrs), ...c);

    function clear(node) {
        while (node.firstChild) node.removeChild(node.firstChild);
        return node;
    }

    function showError(msg) {
        const e = $('error');
        e.textContent = msg || '';
        e.hidden = !msg;
    }

    class ApiError extends Error {
        constructor(status, body) {
            const m = body && body.error && body.error.message;
            super(m || `The gateway answered ${status}.`);
            this.status = status;
            this.code = body && body.error && body.error.code;
        }
    }

    async function api(path, params, as) {
        const url = new URL(path, location.origin);
        for (const [k, v] of Object.entries(params || {})) {
            if (v !== null && v !== undefined && v !== '') url.searchParams.set(k, v);
        }
        const r = await fetch(url, {
            headers: { Authorization: 'Bearer ' + state.key },
            cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
        });
        if (!r.ok) {
            let body = null;
            try { body = await r.json(); } catch (e) { body = null; }
            throw new ApiError(r.status, body);
        }
        return as === 'text' ? r.text() : r.json();
    }

    // --- numbers --------------------------------------------------------

    // Amounts stay the exact decimal strings the API gives; numbers only
    // for drawing and ordering.
    const num = (s) => (s === null || s === undefined ? 0 : Number(s));
    const usd = (s) => (s === null || s === undefined ? '-' : '$' + s);
    const count = (n) => (n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US'));
    const ms = (n) => (n === null || n === undefined ? '-' : `${count(n)} ms`);

    function perMillion(s) {
        return s === null || s === undefined ? null : '$' + s;
    }

    // --- sign-in --------------------------------------------------------

    async function signIn(key) {
        state.key = key;
        // both at once: the quota says whose key it is, the list of
        // projects whether it is an admin's
        const [quota, projects] = await Promise.all([api('/v1/quota').catch((e) => e),
            api('/v1/usage/projects').catch((e) => e)]);
        if (quota instanceof Error) {
            state.key = null;
            sessionStorage.removeItem(KEY);
            if (quota.status === 401) {
                throw new Error('This key is unknown or has been revoked. Check it with the ' +
                    'gateway\'s operator.');
            }
            throw quota;
        }
        sessionStorage.setItem(KEY, key);
        try {
            if (projects instanceof Error) throw projects;
            const p = projects;
            state.admin = true;
            const sel = clear($('project'));
            sel.append(el('option', { value: '', text: 'All projects' }));
            for (const row of p.data) sel.append(el('option', { value: row.project, text: row.project }));
            $('project-box').hidden = false;
            state.project = '';
            $('who').textContent = 'admin key';
        } catch (e) {
            if (e.status !== 403) throw e;
            state.admin = false;
            state.ownProject = quota.data.length ? quota.data[0].project : '';
            state.project = state.ownProject;
            state.quota = quota;
            $('project-box').hidden = true;
            $('who').textContent = `project ${state.ownProject}`;
        }
        $('signin').hidden = true;
        $('app').hidden = false;
        $('signout').hidden = false;
        $('recon-box').hidden = !state.admin;
        await refreshAll();
    }

    function signOut() {
        document.body.removeAttribute('data-ready');
        sessionStorage.removeItem(KEY);
        state.key = null;
        $('app').hidden = true;
        $('signout').hidden = true;
        $('project-box').hidden = true;
        $('who').textContent = '';
        $('signin').hidden = false;
        $('key').value = '';
        showError('');
    }

    // --- overview -------------------------------------------------------

    const snippetKinds = [
        ['curl', 'chat'], ['curl', 'stream'], ['curl', 'embeddings'],
        ['node', 'chat'], ['node', 'stream'], ['node', 'embeddings'],
        ['python', 'chat'], ['python', 'stream'], ['python', 'embeddings'],
    ];
    let snippetLang = 'curl';

    function snippet(lang, kind, base, chat, embed) {
        const q = (s) => JSON.stringify(s);
        if (lang === 'curl') {
            if (kind === 'embeddings') {
                return `curl ${base}/embeddings \\\n  -H "Authorization: Bearer $MODELGATE_KEY" \\\n` +
                    `  -H "Content-Type: application/json" \\\n` +
                    `  -d '{"model": ${q(embed)}, "input": "hello"}'`;
            }
            return `curl ${kind === 'stream' ? '-N ' : ''}${base}/chat/completions \\\n` +
                `  -H "Authorization: Bearer $MODELGATE_KEY" \\\n  -H "Content-Type: application/json" \\\n` +
                `  -d '{"model": ${q(chat)}, ${kind === 'stream' ? '"stream": true, ' : ''}` +
                `"messages": [{"role": "user", "content": "Say hello"}]}'`;
        }
        if (lang === 'node') {
            const head = `// npm install openai; run as an ES module (file.mjs)\nimport OpenAI from "openai";\n\n` +
                `const client = new OpenAI({ baseURL: ${q(base)}, apiKey: process.env.MODELGATE_KEY });\n`;
            if (kind === 'embeddings') {
                return head + `const r = await client.embeddings.create({ model: ${q(embed)}, input: "hello" });\n` +
                    `console.log(r.data[0].embedding.length);`;
            }
            if (kind === 'stream') {
                return head + `const stream = await client.chat.completions.create({\n` +
                    `  model: ${q(chat)}, stream: true,\n  messages: [{ role: "user", content: "Say hello" }],\n});\n` +
                    `for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");`;
            }
            return head + `const r = await client.chat.completions.create({\n  model: ${q(chat)},\n` +
                `  messages: [{ role: "user", content: "Say hello" }],\n});\nconsole.log(r.choices[0].message.content);`;
        }
        const head = `# pip install openai\nimport os\nfrom openai import OpenAI\n\n` +
            `client = OpenAI(base_url=${q(base)}, api_key=os.environ["MODELGATE_KEY"])\n`;
        if (kind === 'embeddings') {
            return head + `r = client.embeddings.create(model=${q(embed)}, input="hello")\nprint(len(r.data[0].embedding))`;
        }
        if (kind === 'stream') {
            return head + `stream = client.chat.completions.create(\n    model=${q(chat)}, stream=True,\n` +
                `    messages=[{"role": "user", "content": "Say hello"}],\n)\nfor chunk in stream:\n` +
                `    print(chunk.choices[0].delta.content or "", end="")`;
        }
        return head + `r = client.chat.completions.create(\n    model=${q(chat)},\n` +
            `    messages=[{"role": "user", "content": "Say hello"}],\n)\nprint(r.choices[0].message.content)`;
    }

    async function copyText(text, button) {
        try {
            await navigator.clipboard.writeText(text);
        } catch (e) {
            const t = el('textarea', { readonly: '' });
            t.value = text;
            document.body.append(t);
            t.select();
            document.execCommand('copy');
            t.remove();
        }
        const was = button.textContent;
        button.textContent = 'Copied';
        setTimeout(() => { button.textContent = was; }, 1200);
    }

    function renderSnippets() {
        const base = location.origin + '/v1';
        const chat = (state.models.find((m) => m.kind === 'chat') || {}).id || 'openai/gpt-4o-mini';
        const embed = (state.models.find((m) => m.kind === 'embedding') || {}).id ||
            'openai/text-embedding-3-small';
        const tabs = clear($('snippet-tabs'));
        for (const lang of ['curl', 'node', 'python']) {
            const b = el('button', { type: 'button', role: 'tab', 'aria-selected': lang === snippetLang,
                text: lang === 'node' ? 'Node' : lang === 'python' ? 'Python' : 'curl' });
            b.addEventListener('click', () => { snippetLang = lang; renderSnippets(); });
            tabs.append(b);
        }
        const box = clear($('snippets'));
        for (const [lang, kind] of snippetKinds) {
            if (lang !== snippetLang) continue;
            const text = snippet(lang, kind, base, chat, embed);
            const copy = el('button', { type: 'button', class: 'copy', text: 'Copy' });
            copy.addEventListener('click', () => copyText(text, copy));
            box.append(el('div', { class: 'snippet', 'data-kind': `${lang}-${kind}` },
                el('h4', { text: kind === 'chat' ? 'Chat' : kind === 'stream' ? 'Streaming' : 'Embeddings' }),
                copy, el('pre', {}, el('code', { text }))));
        }
    }

    async function renderOverview() {
        $('endpoint').textContent = location.origin + '/v1';
        const models = await api('/v1/usage/models', { project: state.project });
        state.models = models.data;
        const box = clear($('models'));
        const byProvider = new Map();
        for (const m of models.data) {
            if (!byProvider.has(m.provider)) byProvider.set(m.provider, []);
            byProvider.get(m.provider).push(m);
        }
        if (models.data.length === 0) {
            box.append(el('p', { class: 'hint', text: 'No model in the catalog yet: the operator ' +
                'runs `modelgate models sync`.' }));
        }
        for (const [provider, list] of byProvider) {
            const chips = el('div', {});
            for (const m of list) {
                const price = m.in_catalog ?
                    `in ${perMillion(m.prompt_per_million) || '-'} · out ${perMillion(m.completion_per_million) || '-'} per 1M` :
                    'not in the catalog';
                chips.append(el('span', { class: 'chip', 'data-model': m.id },
                    el('span', { class: 'id', text: m.id }), el('span', { class: 'price', text: price })));
            }
            box.append(el('div', { class: 'provider' }, el('h4', { text: provider }), chips));
        }
        const sel = $('f-model');
        const was = sel.value;
        clear(sel).append(el('option', { value: '', text: 'all' }));
        for (const m of models.data) sel.append(el('option', { value: m.id, text: m.id }));
        sel.value = was;
        renderSnippets();
    }

    // --- the period -----------------------------------------------------

    function browserZone() {
        try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; } catch (e) { return 'UTC'; }
    }

    // Today's date in zone tz, as YYYY-MM-DD.
    function today(tz) {
        return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit',
            day: '2-digit' }).format(new Date());
    }

    function addDays(ymd, n) {
        const d = new Date(ymd + 'T00:00:00Z');
        d.setUTCDate(d.getUTCDate() + n);
        return d.toISOString().slice(0, 10);
    }

    // The query's since and until for the chosen range (until absent: now).
    function period() {
        const tz = $('tz').value.trim() || browserZone();
        const range = $('range').value;
        let since, until = null;
        try {
            if (range === 'today') since = today(tz);
            else if (range === '7d') since = addDays(today(tz), -6);
            else if (range === '30d') since = addDays(today(tz), -29);
            else if (range === 'this-month') since = 'this-month';
            else {
                since = $('since').value || today(tz);
                until = $('until').value ? addDays($('until').value, 1) : null;
            }
        } catch (e) {
            throw new Error(`"${tz}" is not a time zone this browser knows.`);
        }
        return { since, until, tz };
    }

    // --- charts ---------------------------------------------------------

    // A bar chart of labels against series [{name, values, cls}], stacked.
    // Its data stay on the element (data-series) as drawn.
    function barChart(svg, labels, series, unit) {
        clear(svg);
        const W = 560, H = 200, L = 54, B = 22, T = 8, R = 8;
        svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
        svg.setAttribute('data-series', JSON.stringify({ labels, series: series.map((s) => ({
            name: s.name, values: s.values })) }));
        const totals = labels.map((_, i) => series.reduce((a, s) => a + num(s.values[i]), 0));
        const max = Math.max(0, ...totals) || 1;
        const bw = (W - L - R) / Math.max(labels.length, 1);
        svg.append(svgEl('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
        for (const f of [0, 0.5, 1]) {
            const y = H - B - f * (H - B - T);
            svg.append(svgEl('line', { class: 'axis', x1: L, y1: y, x2: W - R, y2: y }));
            svg.append(svgEl('text', { x: L - 4, y: y + 3, 'text-anchor': 'end',
                text: (max * f).toLocaleString('en-US', { maximumSignificantDigits: 3 }) }));
        }
        labels.forEach((label, i) => {
            let y = H - B;
            for (const s of series) {
                const v = num(s.values[i]);
                const h = v / max * (H - B - T);
                y -= h;
                const r = svgEl('rect', { class: s.cls, x: L + i * bw + bw * 0.15, y,
                    width: Math.max(bw * 0.7, 1), height: Math.max(h, 0) });
                r.append(svgEl('title', { text: `${label} · ${s.name}: ${s.values[i]}${unit || ''}` }));
                svg.append(r);
            }
            const every = Math.ceil(labels.length / 10);
            if (i % every === 0) {
                svg.append(svgEl('text', { x: L + i * bw + bw / 2, y: H - 6, 'text-anchor': 'middle',
                    text: label.slice(5) }));
            }
        });
    }

    // --- usage ----------------------------------------------------------

    function card(label, value) {
        return el('div', { class: 'card' }, el('div', { class: 'label', text: label }),
            el('div', { class: 'value', text: value }));
    }

    function table(node, heads, rows) {
        clear(node);
        const tr = el('tr', {});
        for (const [h, n] of heads) tr.append(el('th', { class: n ? 'num' : null, text: h }));
        node.append(el('thead', {}, tr));
        const body = el('tbody', {});
        for (const r of rows) {
            const row = el('tr', {});
            r.forEach((c, i) => row.append(el('td', { class: heads[i][1] ? 'num' : null,
                text: c === null || c === undefined ? '-' : String(c) })));
            body.append(row);
        }
        node.append(body);
    }

    // The days of the period in its zone, from the report's own period
    // (a period that ends inside a day shows that day).
    function days(rep) {
        const out = [];
        const u = rep.period.until;
        const end = u.slice(10, 19) === 'T00:00:00' ? u.slice(0, 10) : addDays(u.slice(0, 10), 1);
        for (let d = rep.period.since.slice(0, 10); d < end && out.length < 400; d = addDays(d, 1)) {
            out.push(d);
        }
        return out;
    }

    async function renderUsage() {
        const p = period();
        const base = { since: p.since, until: p.until, tz: p.tz, project: state.project };
        state.period = p;
        // the project key's quota came with the sign-in
        const known = state.quota;
        state.quota = null;
        state.cursors = [];
        state.cursor = null;
        const [byDay, byModel, quota] = await Promise.all([
            api('/v1/usage', Object.assign({ by: 'day' }, base)),
            api('/v1/usage', Object.assign({ by: 'model' }, base)),
            known || api('/v1/quota', { project: state.project }),
            renderRequests(),
        ]);
        $('period').textContent = `From ${byDay.period.since} to ${byDay.period.until} (${byDay.timezone})`;
        const t = byDay.totals;
        clear($('cards')).append(
            card('Spend', usd(t.cost)), card('Requests', count(t.requests)),
            card('Errors', count(t.errors)), card('Tokens', count(t.total_tokens)),
            card('Latency p50 / p95', `${ms(t.latency_ms.p50)} / ${ms(t.latency_ms.p95)}`),
            card('Time to first token p50 / p95', `${ms(t.ttft_ms.p50)} / ${ms(t.ttft_ms.p95)}`));
        const labels = days(byDay);
        const row = (d) => byDay.data.find((r) => r.day === d) || {};
        barChart($('chart-spend'), labels, [{ name: 'spend', cls: 's0',
            values: labels.map((d) => row(d).cost || '0') }], ' USD');
        barChart($('chart-requests'), labels, [
            { name: 'ok', cls: 'ok', values: labels.map((d) => (row(d).requests || 0) - (row(d).errors || 0)) },
            { name: 'errors', cls: 's1', values: labels.map((d) => row(d).errors || 0) }]);
        barChart($('chart-tokens'), labels, [
            { name: 'prompt', cls: 's0', values: labels.map((d) => row(d).prompt_tokens || 0) },
            { name: 'completion', cls: 's2', values: labels.map((d) => row(d).completion_tokens || 0) }]);
        table($('days'), [['day'], ['requests', 1], ['errors', 1], ['prompt', 1], ['completion', 1],
            ['cost (USD)', 1], ['p50 ms', 1], ['p95 ms', 1]],
            byDay.data.map((r) => [r.day, r.requests, r.errors, r.prompt_tokens, r.completion_tokens,
                r.cost, r.latency_ms.p50, r.latency_ms.p95]));
        const models = byModel.data.slice().sort((a, b) => num(b.cost) - num(a.cost) ||
            (a.model < b.model ? -1 : 1));
        table($('top-models'), [['model'], ['requests', 1], ['tokens', 1], ['cost (USD)', 1],
            ['p50 ms', 1], ['p95 ms', 1], ['ttft p50', 1]],
            models.map((r) => [r.model, r.requests, r.total_tokens, r.cost, r.latency_ms.p50,
                r.latency_ms.p95, r.ttft_ms.p50]));
        renderCap(quota);
        // the reconciliation reads the range's usage rows: on demand only
        clear($('recon'));
        document.body.removeAttribute('data-recon-ready');
    }

    function renderCap(quota) {
        const box = clear($('cap'));
        for (const q of quota.data) {
            const line = el('div', { class: 'capline' });
            const head = `${state.admin ? q.project + ': ' : ''}spent ${usd(q.spent)}` +
                (q.reserved && q.reserved !== '0' ? ` (+${usd(q.reserved)} in flight)` : '') +
                (q.spend_cap ? ` of ${usd(q.spend_cap)}, ${usd(q.remaining)} left` : ', no spend cap') +
                (q.period.end ? `; the period ends ${q.period.end}` : ' in total');
            line.append(el('p', { text: head }));
            if (q.spend_cap) {
                const pct = Math.min(100, num(q.spent) / Math.max(num(q.spend_cap), 1e-12) * 100);
                line.append(el('div', { class: 'bar' }, el('span', { style: null, 'data-pct': pct.toFixed(1) })));
                line.lastChild.firstChild.style.width = `${pct}%`;
            }
            const lim = [];
            if (q.rpm) lim.push(`${count(q.rpm.limit)} requests/min (${count(q.rpm.remaining)} left)`);
            if (q.tpm) lim.push(`${count(q.tpm.limit)} tokens/min (${count(q.tpm.remaining)} left)`);
            line.append(el('p', { class: 'hint', text: lim.length ? `Rate limits: ${lim.join(', ')}` :
                'No rate limit.' }));
            box.append(line);
        }
    }

    async function renderRecon(p) {
        const box = clear($('recon'));
        const r = await api('/v1/usage/reconciliation', { since: p.since.length === 10 ? p.since :
            undefined, until: p.until });
        const t = r.totals;
        const states = Object.entries(t.states).map(([k, v]) => `${k} ${v}`).join(', ');
        box.append(el('p', { text: `Reconciled through ${r.reconciled_through}. Charged ${usd(t.charged)}` +
            ` (recorded ${usd(t.recorded)}, adjustments ${usd(t.adjustments)}); the upstream billed ` +
            `${t.upstream === null ? 'not known yet (no daily close)' : usd(t.upstream)}; ` +
            `difference ${t.difference === null ? '-' : usd(t.difference)}.` }));
        box.append(el('p', { class: 'hint', text: `Rows by state: ${states}.` }));
    }

    async function renderRequests() {
        const p = state.period;
        const r = await api('/v1/usage/requests', { project: state.project, model: $('f-model').value,
            status: $('f-status').value, since: p.since, until: p.until, tz: p.tz, limit: 20,
            cursor: state.cursor });
        table($('requests'), [['time'], ['project'], ['key'], ['model'], ['endpoint'], ['status', 1],
            ['tokens', 1], ['cost (USD)', 1], ['ms', 1], ['error']],
            r.data.map((q) => [q.created_at, q.project, q.key, q.model, q.endpoint,
                q.pending ? 'pending' : q.status, q.total_tokens, q.cost, q.latency_ms, q.error_type]));
        state.next = r.next_cursor || null;
        $('req-next').disabled = !state.next;
        $('req-first').disabled = state.cursor === null;
    }

    async function downloadCsv() {
        const p = state.period;
        const text = await api('/v1/usage', { by: 'day', since: p.since, until: p.until, tz: p.tz,
            project: state.project, format: 'csv' }, 'text');
        const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
        const a = el('a', { href: url, download: 'modelgate-usage.csv' });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 5000);
    }

    async function guarded(fn) {
        try {
            showError('');
            document.body.setAttribute('data-busy', '1');
            await fn();
        } catch (e) {
            if (e.status === 401) {
                signOut();
                $('signin-error').textContent = 'This key is no longer accepted (revoked?). Sign in again.';
                return;
            }
            showError(e.message);
        } finally {
            document.body.removeAttribute('data-busy');
        }
    }

    async function refreshAll() {
        document.body.removeAttribute('data-ready');
        await Promise.all([renderOverview(), renderUsage()]);
        document.body.setAttribute('data-ready', '1');
        // when the figures were drawn, for the benchmark (tests/bench/dashboard.cjs)
        if (window.performance && performance.mark) performance.mark('modelgate-ready');
    }

    // --- wiring ---------------------------------------------------------

    document.addEventListener('DOMContentLoaded', () => {
        $('tz').value = browserZone();
        $('signin-form').addEventListener('submit', (ev) => {
            ev.preventDefault();
            const key = $('key').value.trim();
            $('signin-error').textContent = '';
            if (!key) {
                $('signin-error').textContent = 'Enter a key (mg-…).';
                return;
            }
            signIn(key).catch((e) => { $('signin-error').textContent = e.message; });
        });
        $('signout').addEventListener('click', signOut);
        $('project').addEventListener('change', () => {
            state.project = $('project').value;
            guarded(refreshAll);
        });
        $('range').addEventListener('change', () => {
            for (const c of document.querySelectorAll('.custom')) c.hidden = $('range').value !== 'custom';
        });
        $('range-form').addEventListener('submit', (ev) => { ev.preventDefault(); guarded(renderUsage); });
        for (const id of ['f-model', 'f-status']) {
            $(id).addEventListener('change', () => {
                state.cursors = [];
                state.cursor = null;
                guarded(renderRequests);
            });
        }
        $('req-next').addEventListener('click', () => {
            state.cursors.push(state.cursor);
            state.cursor = state.next;
            guarded(renderRequests);
        });
        $('req-first').addEventListener('click', () => {
            state.cursors = [];
            state.cursor = null;
            guarded(renderRequests);
        });
        $('csv').addEventListener('click', () => guarded(downloadCsv));
        $('recon-load').addEventListener('click', () => guarded(async () => {
            await renderRecon(state.period);
            document.body.setAttribute('data-recon-ready', '1');
        }));
        for (const b of document.querySelectorAll('button[data-copy]')) {
            b.addEventListener('click', () => copyText($(b.getAttribute('data-copy')).textContent, b));
        }
        const saved = sessionStorage.getItem(KEY);
        if (saved) signIn(saved).catch((e) => { $('signin-error').textContent = e.message; });
    });
}());
