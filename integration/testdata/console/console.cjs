// The web console in a real browser (Debian's chromium driven by playwright-core), against the
// components integration/console_browser_test.go started: collector -> Kafka (kfake) ->
// gateway, archiver -> fileblob. It writes container log lines into the collector's files
// itself and checks what the console shows. Timeouts are functional (how long to wait for
// something that must happen), except the 2 s for a line to reach the live tail.
// Usage: node console.cjs config.json; prints `RESULT {...}` last; exits non-zero on failure.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const result = { steps: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = () => Math.random().toString(36).slice(2, 8);
let step = '';
function begin(name) { step = name; result.steps.push(name); console.log(`step: ${name}`); }
function check(cond, msg) { if (!cond) throw new Error(`${step}: ${msg}`); }

// control asks the Go test to do something (stop or start the gateway) and waits for its answer
// on stdin.
const replies = [];
let wake = null;
require('readline').createInterface({ input: process.stdin }).on('line', (l) => { replies.push(l); if (wake) wake(); });
async function control(what, want) {
  console.log('CONTROL ' + what);
  const deadline = Date.now() + 30000;
  while (!replies.length) {
    if (Date.now() > deadline) throw new Error(`${step}: no answer to ${what}`);
    await new Promise((r) => { wake = r; setTimeout(r, 100); });
  }
  const got = replies.shift();
  if (got !== want) throw new Error(`${step}: ${what}: ${got}`);
}

// cri appends one CRI-format line, as containerd writes it.
function cri(file, stream, msg) { fs.appendFileSync(file, `${new Date().toISOString()} ${stream} F ${msg}\n`); }

// inKafka waits until a line matching grep is in the namespace's topic (the gateway's page API),
// so a check that it is *not* shown means the console filtered it.
async function inKafka(ns, grep) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    const r = await fetch(`${cfg.base}/v1/namespaces/${ns}/logs?from=earliest&limit=10000&grep=${encodeURIComponent(grep)}`,
      { headers: { Authorization: 'Bearer ' + cfg.token } });
    if (r.ok && (await r.json()).records.length > 0) return;
    await sleep(50);
  }
  throw new Error(`${step}: ${grep} never reached Kafka`);
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'logrouter-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: cfg.chromium,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(15000);
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));
  const shot = (name) => page.screenshot({ path: path.join(cfg.artifacts, name + '.png'), fullPage: true });
  const ui = cfg.base + '/ui/';
  const tailView = '#tail-view';
  const received = async () => Number(await page.getAttribute(tailView, 'data-received'));
  const msgs = () => page.$$eval('#tail-view .row .msg', (els) => els.map((e) => e.textContent));
  const waitMsg = (m, timeout) => page.waitForFunction((m) => [...document.querySelectorAll('#tail-view .row .msg')].some((e) => e.textContent === m), m, { timeout });
  const connects = async () => Number((await page.getAttribute(tailView, 'data-connects')) || 0);
  // a11y checks every form field has a label and every visible text a contrast of at least
  // 4.5:1 against its (opaque) background (WCAG 2 AA).
  async function a11y(where) {
    const bad = await page.evaluate(() => {
      const out = [];
      for (const f of document.querySelectorAll('input, select, textarea')) {
        if (f.offsetParent && f.labels.length === 0 && !f.getAttribute('aria-label')) out.push(`field #${f.id} has no label`);
      }
      const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
      const lum = ([r, g, b]) => [r, g, b].map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; })
        .reduce((a, c, i) => a + c * [0.2126, 0.7152, 0.0722][i], 0);
      const bg = (el) => {
        for (; el; el = el.parentElement) {
          const c = rgb(getComputedStyle(el).backgroundColor);
          if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c;
        }
        return [255, 255, 255];
      };
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const el = n.parentElement;
        if (!n.textContent.trim() || !el.offsetParent || el.closest('[hidden]') || el.classList.contains('skip')) continue;
        const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) out.push(`"${n.textContent.trim().slice(0, 30)}" contrast ${ratio.toFixed(2)}`);
      }
      return [...new Set(out)];
    });
    check(bad.length === 0, `${where}: ${bad.join('; ')}`);
  }
  async function applyFilters(f) {
    const before = await connects();
    await page.fill('#f-pod', f.pod || '');
    await page.fill('#f-container', f.container || '');
    await page.selectOption('#f-stream', f.stream || '');
    await page.fill('#f-grep', f.grep || '');
    await page.press('#f-grep', 'Enter'); // submits the filter form from the keyboard
    await page.waitForFunction((b) => Number(document.querySelector('#tail-view').dataset.connects || 0) > b && document.querySelector('#tail-view').dataset.status === 'following', before);
  }

  try {
    begin('sign-in page');
    const resp = await page.goto(ui);
    check(resp.headers()['content-security-policy'] === cfg.csp, `CSP header ${resp.headers()['content-security-policy']}`);
    check(resp.headers()['x-frame-options'] === 'DENY', 'X-Frame-Options');
    await page.waitForSelector('body[data-ready="true"]');
    check(await page.isVisible('#page-signin'), 'sign-in page not shown');
    await shot('01-signin');
    await a11y('sign-in');

    begin('a bad token is refused');
    await page.fill('#token', 'lrt_0000000000000000_wrong');
    await page.press('#token', 'Enter');
    await page.waitForSelector('#alert:not([hidden])');
    check((await page.textContent('#alert')).includes('refused'), 'no refusal shown: ' + await page.textContent('#alert'));
    check(await page.isVisible('#page-signin'), 'left the sign-in page with a bad token');

    begin('sign in by keyboard');
    await page.fill('#token', '');
    await page.focus('#token');
    await page.keyboard.type(cfg.token);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#page-namespaces:not([hidden])');
    check(await page.evaluate(() => sessionStorage.getItem('logrouter.token')) === cfg.token, 'token not in sessionStorage');
    check(await page.evaluate(() => document.cookie === '' && localStorage.length === 0), 'a cookie or localStorage was written');
    check((await ctx.cookies()).length === 0, 'the browser holds cookies');

    begin('namespaces: exactly the token\'s');
    const listed = await page.$$eval('#ns-list .ns-name', (els) => els.map((e) => e.textContent));
    check(JSON.stringify(listed) === JSON.stringify(cfg.granted), `listed ${listed}, want ${cfg.granted}`);
    check(!listed.includes(cfg.forbidden), 'the forbidden namespace is listed');
    await shot('02-namespaces');
    await a11y('namespaces');

    begin('a namespace outside the token, typed into the URL');
    for (const p of ['tail', 'pipelines']) {
      await page.goto(`${ui}#/ns/${cfg.forbidden}/${p}`);
      await page.waitForSelector('#alert:not([hidden])');
      const a = await page.textContent('#alert');
      check(a.includes('forbidden') && a.includes('do not grant'), `${p}: alert ${a}`);
    }
    check(await received() === 0, 'lines of the forbidden namespace shown');
    await shot('03-forbidden');
    await page.goto(`${ui}#/ns/${cfg.forbidden}/archive`);
    await page.click('#archive-form button[type=submit]');
    await page.waitForSelector('#alert:not([hidden])');
    check((await page.textContent('#alert')).includes('forbidden'), 'archive of the forbidden namespace not refused');
    check(Number((await page.getAttribute('#archive-view', 'data-received')) || 0) === 0, 'archived lines of the forbidden namespace shown');

    begin('reload keeps the sign-in (sessionStorage)');
    await page.goto(ui + '#/');
    await page.reload();
    await page.waitForSelector('#page-namespaces:not([hidden])');

    begin('live tail: a line appears within 2 s');
    await page.goto(`${ui}#/ns/shop/tail`);
    await page.waitForSelector('#tail-view[data-status="following"]');
    // The stream starts at the topic's end: give the collector's first lines time to be behind us.
    const hello = `hello-${rand()}`;
    const t0 = Date.now();
    cri(cfg.files.web1app, 'stdout', hello);
    await waitMsg(hello, 2000);
    result.tailLatencyMs = Date.now() - t0;
    await shot('04-tail');

    begin('XSS corpus renders as text');
    const corpus = cfg.xss.map((s, i) => `${s} #${i}`);
    for (const line of corpus) cri(cfg.files.web1app, 'stdout', line);
    await waitMsg(corpus[corpus.length - 1], 10000);
    const shown = await msgs();
    for (const line of corpus) check(shown.includes(line), `not shown as text: ${line}`);
    check(await page.$$eval('#tail-view img, #tail-view script, #tail-view svg, #tail-view iframe, #tail-view style, #tail-view b', (e) => e.length) === 0, 'markup from a log line is in the DOM');
    check(await page.evaluate(() => window.__xss === undefined), 'a log line ran script');
    await shot('05-xss');
    await a11y('tail');

    begin('filters');
    const cases = [
      { name: 'pod', f: { pod: 'web-1' }, excl: [cfg.files.web2app, 'stdout'], incl: [cfg.files.web1app, 'stdout'] },
      { name: 'container', f: { container: 'sidecar' }, excl: [cfg.files.web1app, 'stdout'], incl: [cfg.files.web1sidecar, 'stdout'] },
      { name: 'stream', f: { stream: 'stderr' }, excl: [cfg.files.web1app, 'stdout'], incl: [cfg.files.web1app, 'stderr'] },
      { name: 'regex', f: { grep: '^filter-regex-[a-z0-9]+ failed$' }, excl: [cfg.files.web1app, 'stdout', ' ok'], incl: [cfg.files.web1app, 'stdout', ' failed'] },
    ];
    for (const c of cases) {
      await applyFilters(c.f);
      const r = rand();
      const ex = `filter-${c.name}-${r}${c.excl[2] || '-excluded'}`;
      const inc = `filter-${c.name}-${r}${c.incl[2] || '-included'}`;
      cri(c.excl[0], c.excl[1], ex);
      await inKafka('shop', '^' + ex + '$');
      cri(c.incl[0], c.incl[1], inc);
      await waitMsg(inc, 10000);
      const got = await msgs();
      check(!got.includes(ex), `${c.name}: the excluded line is shown`);
      check(await received() === 1, `${c.name}: ${await received()} lines shown, want only the included one: ${got}`);
      if (c.name === 'regex') await shot('06-filters');
    }
    await applyFilters({});

    begin('pause keeps the cursor, resume continues after it');
    const before = `before-pause-${rand()}`;
    cri(cfg.files.web1app, 'stdout', before);
    await waitMsg(before, 10000);
    await page.focus('#tail-pause');
    await page.keyboard.press('Space');
    await page.waitForSelector('#tail-pause[aria-pressed="true"]');
    const n0 = await received();
    const during = `during-pause-${rand()}`;
    cri(cfg.files.web1app, 'stdout', during);
    await inKafka('shop', '^' + during + '$');
    await sleep(300);
    check(!(await msgs()).includes(during) && await received() === n0, 'a line arrived while paused');
    await shot('07-paused');
    await page.keyboard.press('Space');
    await page.waitForSelector('#tail-pause[aria-pressed="false"]');
    await waitMsg(during, 10000);
    await sleep(300);
    const after = await msgs();
    check(after.filter((m) => m === during).length === 1 && after.filter((m) => m === before).length === 1, 'a gap or a duplicate at resume');
    check(await received() === n0 + 1, `resume delivered ${await received() - n0} lines, want 1`);

    begin('a gateway restart: the tail resumes after its cursor');
    const beforeRestart = `before-restart-${rand()}`;
    cri(cfg.files.web1app, 'stdout', beforeRestart);
    await waitMsg(beforeRestart, 10000);
    const c0 = await connects();
    const n2 = await received();
    await control('stop', 'stopped');
    const whileDown = `while-down-${rand()}`;
    cri(cfg.files.web1app, 'stdout', whileDown);
    await control('start', 'started');
    const afterRestart = `after-restart-${rand()}`;
    cri(cfg.files.web1app, 'stdout', afterRestart);
    await waitMsg(afterRestart, 30000);
    await sleep(300);
    const r = await msgs();
    for (const m of [beforeRestart, whileDown, afterRestart]) check(r.filter((x) => x === m).length === 1, `${m} shown ${r.filter((x) => x === m).length} times`);
    check(await connects() > c0, 'no reconnect');
    check(await received() === n2 + 2, `the reconnect delivered ${await received() - n2} lines, want 2`);

    begin('scroll-back stays put while lines arrive');
    for (let i = 0; i < 80; i++) cri(cfg.files.web1app, 'stdout', `scroll-${i}`);
    await waitMsg('scroll-79', 10000);
    await page.$eval('#tail-view .viewport', (v) => { v.scrollTop = 0; });
    // The view redraws on the next frame: wait until it shows the top rows.
    await page.waitForFunction(() => document.querySelector('#tail-view .rows').style.transform === 'translateY(0px)');
    const firstRow = await page.textContent('#tail-view .row .msg');
    const n1 = await received();
    cri(cfg.files.web1app, 'stdout', 'scroll-new');
    await page.waitForFunction((n) => Number(document.querySelector('#tail-view').dataset.received) > n, n1);
    await sleep(100);
    check(await page.$eval('#tail-view .viewport', (v) => v.scrollTop) === 0, 'the view jumped while scrolled back');
    check(await page.textContent('#tail-view .row .msg') === firstRow, 'the first row changed while scrolled back');
    await page.click('#tail-latest');
    await waitMsg('scroll-new', 5000);

    begin('archive search');
    await page.goto(`${ui}#/ns/shop/archive`);
    await page.fill('#a-grep', '^filter-');
    let count = 0;
    const deadline = Date.now() + 45000; // the archiver uploads an object a second after its first record
    while (Date.now() < deadline) {
      await page.click('#archive-form button[type=submit]');
      await page.waitForFunction(() => !['searching', undefined].includes(document.querySelector('#archive-view').dataset.state));
      count = Number(await page.getAttribute('#archive-view', 'data-count'));
      if (count >= 8) break;
      await sleep(500);
    }
    check(count === 8, `archive found ${count} filter lines, want 8`);
    check((await page.textContent('#archive-status')).includes('complete'), 'archive answer not complete');
    await shot('08-archive');
    await a11y('archive');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#archive-download')]);
    const file = path.join(cfg.artifacts, 'archive.ndjson');
    await download.saveAs(file);
    const recs = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    check(recs.length === 8 && recs.every((r) => r.namespace === 'shop' && /^filter-/.test(r.message)), `download: ${recs.length} records`);
    await page.fill('#a-pod', 'web-2');
    await page.click('#archive-form button[type=submit]');
    await page.waitForSelector('#archive-view[data-state="complete"]');
    check(Number(await page.getAttribute('#archive-view', 'data-count')) === 1, 'archive pod filter');

    begin('pipelines');
    await page.goto(`${ui}#/ns/shop/pipelines`);
    await page.waitForSelector('#pipelines-table:not([hidden])');
    const row = await page.textContent('tr[data-pipeline="web"]');
    for (const want of ['Accepted: True (Valid)', 'Ready: False (TopicFailed)', '<b>denied</b>', 'emitted: 90', 'dropped: 10', '→ .audit']) {
      check(row.includes(want), `pipeline row lacks ${want}: ${row}`);
    }
    check(await page.$$eval('#pipelines-table b', (e) => e.length) === 0, 'markup from a condition message is in the DOM');
    await shot('09-pipelines');
    await a11y('pipelines');

    begin(`load: ${cfg.rate} lines/s for ${cfg.seconds} s`);
    await page.goto(`${ui}#/ns/load/tail`);
    await page.waitForSelector('#tail-view[data-status="following"]');
    await page.evaluate(() => {
      window.__long = [];
      new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push([Math.round(e.startTime), Math.round(e.duration)]); }).observe({ type: 'longtask' });
    });
    const total = cfg.rate * cfg.seconds;
    let written = 0;
    const start = Date.now();
    const pad = 'x'.repeat(60);
    let probes = 0, probeMax = 0;
    let nextProbe = start + 1000;
    while (written < total) {
      const due = Math.min(total, Math.floor((Date.now() - start) / 1000 * cfg.rate));
      if (due > written) {
        let chunk = '';
        const ts = new Date().toISOString();
        for (; written < due; written++) chunk += `${ts} stdout F load-${written} ${pad}\n`;
        fs.appendFileSync(cfg.files.load, chunk);
      }
      if (Date.now() >= nextProbe) {
        // Responsiveness: the page must still take keyboard input and answer within a
        // (generous, functional) timeout while the lines pour in.
        const p0 = Date.now();
        result.probeTimes = result.probeTimes || [];
        result.probeTimes.push(Math.round(await page.evaluate(() => performance.now())));
        const v = `probe-${probes}`;
        await page.fill('#f-grep', v, { timeout: 10000 });
        check(await page.inputValue('#f-grep', { timeout: 10000 }) === v, 'the page did not take input');
        probeMax = Math.max(probeMax, Date.now() - p0);
        probes++;
        nextProbe = Date.now() + 1000;
      }
      await sleep(10);
    }
    result.writeSeconds = (Date.now() - start) / 1000;
    await page.waitForFunction((n) => Number(document.querySelector('#tail-view').dataset.received) >= n, total, { timeout: 60000 });
    result.deliveredSeconds = (Date.now() - start) / 1000;
    await sleep(200);
    const d = await page.$eval(tailView, (e) => ({ ...e.dataset }));
    const marker = await page.textContent('#tail-view .dropped');
    check(Number(d.received) === total, `received ${d.received}, want ${total}`);
    check(Number(d.buffered) === cfg.viewMax && Number(d.dropped) === total - cfg.viewMax, `buffered ${d.buffered}, dropped ${d.dropped}`);
    check(await page.isVisible('#tail-view .dropped') && marker.startsWith(`${(total - cfg.viewMax).toLocaleString('en')} lines dropped from view`), `marker: ${marker}`);
    const last = await msgs();
    check(last[last.length - 1] === `load-${total - 1} ${pad}`, `last row ${last[last.length - 1]}`);
    check(await page.$$eval('#tail-view .row', (e) => e.length) < 100, 'the list is not virtualised');
    const long = await page.evaluate(() => window.__long);
    result.longTasks = long.length;
    result.longestTaskMs = long.length ? Math.max(...long.map((l) => l[1])) : 0;
    result.longTaskList = long;
    result.probes = probes;
    result.probeMaxMs = probeMax;
    await shot('10-load');
    await a11y('tail under load');

    begin('sign out');
    await page.click('#signout');
    await page.waitForSelector('#page-signin:not([hidden])');
    check(await page.evaluate(() => sessionStorage.length) === 0, 'sessionStorage not cleared');

    const csp = consoleErrors.filter((e) => /Content Security Policy|Refused to/.test(e));
    check(csp.length === 0, `CSP violations: ${csp}`);
    const other = consoleErrors.filter((e) => !/Failed to load resource/.test(e));
    check(other.length === 0, `console errors: ${other}`);
    result.ok = true;
  } catch (err) {
    result.ok = false;
    result.error = String(err && err.stack || err);
    result.consoleErrors = consoleErrors;
    await shot('failure').catch(() => {});
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log('RESULT ' + JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
})();
