// The logrouter web console: pages for the namespaces a token may read, a live tail, archive
// search with NDJSON download, and pipelines. Routing is by location hash
// (#/ns/<namespace>/tail|archive|pipelines), so any page can be bookmarked or typed; the
// gateway decides access on every request, the console only shows its answer.

import { ApiError, NAMESPACE, describe, lines, nsPath, request, token, Yielder } from './api.js';
import { LogView } from './logview.js';
import { Tail } from './tail.js';

const $ = (id) => document.getElementById(id);
const pages = ['signin', 'namespaces', 'tail', 'archive', 'pipelines'];
let me = null; // GET /v1/namespaces answer once signed in
let tail = null;
let tailView = null;
let archiveCtl = null;
let downloadURL = '';

function show(page) {
  for (const p of pages) $('page-' + p).hidden = p !== page;
  document.body.dataset.page = page;
}

function alertMsg(text) {
  const a = $('alert');
  a.textContent = text || '';
  a.hidden = !text;
}

async function signIn(tok) {
  const resp = await request('/v1/namespaces', { tok });
  me = await resp.json();
  if (tok) token.set(tok);
  $('who').textContent = tok ? `signed in as ${me.principal}` : `signed in through your identity proxy as ${me.principal}`;
  $('signout').hidden = !tok;
}

function signOut() {
  stopAll();
  token.clear();
  me = null;
  $('who').textContent = '';
  $('signout').hidden = true;
  location.hash = '#/';
  route();
}

function stopAll() {
  tail?.stop();
  tail = null;
  archiveCtl?.abort();
  archiveCtl = null;
}

async function route() {
  stopAll();
  alertMsg('');
  if (!me) {
    $('ns-nav').hidden = true;
    show('signin');
    return;
  }
  const m = /^#\/ns\/([^/]*)\/(tail|archive|pipelines)$/.exec(location.hash);
  if (!m) {
    $('ns-nav').hidden = true;
    renderNamespaces();
    show('namespaces');
    return;
  }
  const ns = decodeURIComponent(m[1]);
  if (!NAMESPACE.test(ns)) {
    show('namespaces');
    renderNamespaces();
    alertMsg(`“${ns}” is not a namespace name (lowercase letters, digits and '-', at most 63 characters).`);
    return;
  }
  $('ns-nav').hidden = false;
  $('ns-nav-name').textContent = ns;
  for (const p of ['tail', 'archive', 'pipelines']) {
    const a = $('nav-' + p);
    a.href = `#/ns/${ns}/${p}`;
    if (p === m[2]) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  show(m[2]);
  document.title = `${ns} · ${m[2]} · logrouter`;
  if (m[2] === 'tail') startTail(ns);
  else if (m[2] === 'archive') prepareArchive(ns);
  else loadPipelines(ns);
}

function renderNamespaces() {
  document.title = 'logrouter console';
  const list = $('ns-list');
  list.replaceChildren();
  for (const ns of me.namespaces) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'ns-name';
    name.textContent = ns;
    li.append(name);
    for (const [p, label] of [['tail', 'Live tail'], ['archive', 'Archive'], ['pipelines', 'Pipelines']]) {
      const a = document.createElement('a');
      a.href = `#/ns/${ns}/${p}`;
      a.textContent = label;
      a.setAttribute('aria-label', `${label} of ${ns}`);
      li.append(a);
    }
    list.append(li);
  }
  $('ns-incomplete').hidden = me.complete;
}

// ---- live tail

function tailFilters() {
  return { pod: $('f-pod').value.trim(), container: $('f-container').value.trim(), grep: $('f-grep').value, stream: $('f-stream').value };
}

function startTail(ns, keepCursor = null) {
  tail?.stop();
  if (!tailView || tailView.ns !== ns) {
    tailView = new LogView($('tail-view'), { max: 10000, label: `Live log lines of ${ns}` });
    tailView.ns = ns;
  }
  const f = tailFilters();
  setPaused(false);
  const t = new Tail(ns, f, {
    onRecord: (rec) => { if (!f.stream || rec.stream === f.stream) tailView.push(slim(rec)); },
    onStatus: (s) => { if (tail === t) setStatus(s); },
    onFatal: (err) => { if (tail === t) { alertMsg(describe(err)); setStatus('stopped'); } },
  });
  t.cursor = keepCursor;
  tail = t;
  t.start();
}

// slim keeps what a row shows: the parsed record (labels, fields, ids) dies young instead of
// living in the view's buffer, which keeps garbage collection short under load.
function slim(r) {
  return { ts: r.ts, pod: r.pod, container: r.container, stream: r.stream, message: r.message };
}

function setStatus(s) {
  $('tail-status').textContent = s;
  const d = $('tail-view').dataset;
  d.status = s;
  if (s === 'following') d.connects = String(Number(d.connects || 0) + 1);
}

function setPaused(p) {
  const b = $('tail-pause');
  b.setAttribute('aria-pressed', String(p));
  b.textContent = p ? 'Resume' : 'Pause';
}

function togglePause() {
  if (!tail) return;
  if (tail.running) {
    tail.stop();
    setPaused(true);
    setStatus('paused; the cursor is kept, Resume continues after the last line shown');
  } else {
    setPaused(false);
    tail.start();
  }
}

// ---- archive

function utcInput(d) { return d.toISOString().slice(0, 19); }

function prepareArchive(ns) {
  if ($('archive-form').dataset.ns !== ns) {
    const now = new Date();
    $('a-since').value = utcInput(new Date(now.getTime() - 3600e3));
    $('a-until').value = utcInput(new Date(now.getTime() + 60e3));
    $('archive-form').dataset.ns = ns;
    new LogView($('archive-view'), { max: 10000, label: `Archived log lines of ${ns}` });
    $('archive-download').hidden = true;
    $('archive-status').textContent = '';
  }
}

async function searchArchive(ns) {
  archiveCtl?.abort();
  const ctl = new AbortController();
  archiveCtl = ctl;
  alertMsg('');
  const view = new LogView($('archive-view'), { max: 10000, label: `Archived log lines of ${ns}` });
  const dl = $('archive-download');
  dl.hidden = true;
  if (downloadURL) URL.revokeObjectURL(downloadURL);
  downloadURL = '';
  const q = new URLSearchParams();
  const since = $('a-since').value, until = $('a-until').value;
  q.set('since', new Date(since + 'Z').toISOString());
  q.set('until', new Date(until + 'Z').toISOString());
  for (const [k, id] of [['pod', 'a-pod'], ['container', 'a-container'], ['grep', 'a-grep']]) {
    const v = $(id).value.trim();
    if (v) q.set(k, v);
  }
  q.set('limit', String(Math.min(10000, Math.max(1, Number($('a-limit').value) || 1000))));
  const status = $('archive-status');
  status.textContent = 'searching…';
  $('archive-view').dataset.state = 'searching';
  const out = [];
  let end = null;
  try {
    const resp = await request(nsPath(ns, 'archive') + '?' + q, { accept: 'application/x-ndjson', signal: ctl.signal });
    for await (const line of lines(resp.body, ctl.signal)) {
      if (!line) continue;
      const obj = JSON.parse(line);
      if (obj.type === 'record') {
        out.push(JSON.stringify(obj.record));
        view.push(slim(obj.record));
      } else if (obj.type === 'end') end = obj;
    }
  } catch (err) {
    if (ctl.signal.aborted) return;
    alertMsg(describe(err));
    status.textContent = 'failed';
    $('archive-view').dataset.state = 'failed';
    return;
  }
  const why = !end ? 'the answer was cut off (no end line); search again'
    : end.reason === 'complete' ? 'complete' : end.reason === 'limit' ? 'stopped at the limit' : `error: ${end.error || end.detail || 'see the gateway log'}`;
  status.textContent = `${out.length.toLocaleString('en')} records (${why})`;
  $('archive-view').dataset.state = end ? end.reason : 'cut';
  $('archive-view').dataset.count = String(out.length);
  // The download is exactly what was found: one record (docs/record.md) per line.
  downloadURL = URL.createObjectURL(new Blob(out.length ? [out.join('\n') + '\n'] : [], { type: 'application/x-ndjson' }));
  dl.href = downloadURL;
  dl.download = `${ns}_${since.replaceAll(':', '')}_${until.replaceAll(':', '')}.ndjson`;
  dl.hidden = false;
}

// ---- pipelines

async function loadPipelines(ns) {
  const status = $('pipelines-status');
  const table = $('pipelines-table');
  const body = $('pipelines-body');
  status.textContent = 'loading…';
  table.hidden = true;
  body.replaceChildren();
  let list;
  try {
    list = await (await request(nsPath(ns, 'pipelines'))).json();
  } catch (err) {
    status.textContent = '';
    if (err instanceof ApiError && err.code === 'pipelines_disabled') status.textContent = err.message;
    else alertMsg(describe(err));
    return;
  }
  status.textContent = `${list.pipelines.length} pipelines, as of ${new Date().toISOString().slice(11, 19)} UTC`;
  const y = new Yielder();
  for (const p of list.pipelines) {
    const tr = document.createElement('tr');
    tr.dataset.pipeline = p.name;
    const gen = `${p.generation} (status for ${p.observedGeneration || '–'}; running ${p.acceptedGeneration ?? 'none'})`;
    const conds = document.createElement('ul');
    for (const c of p.conditions) {
      const li = document.createElement('li');
      li.className = 'cond-' + c.status;
      li.textContent = `${c.type}: ${c.status}${c.reason ? ' (' + c.reason + ')' : ''}${c.message ? ' — ' + c.message : ''}`;
      conds.append(li);
    }
    const counters = document.createElement('ul');
    const c = p.counters;
    if (c) {
      for (const k of ['selected', 'emitted', 'dropped', 'sampledOut', 'throttled', 'limitDropped', 'parseFailures']) {
        const li = document.createElement('li');
        li.textContent = `${k}: ${Number(c[k] || 0).toLocaleString('en')}`;
        counters.append(li);
      }
      if (c.updatedAt) {
        const li = document.createElement('li');
        li.textContent = `updated ${c.updatedAt}`;
        counters.append(li);
      }
    }
    tr.append(cell(p.name + (p.suffix ? ` → .${p.suffix}` : '')), cell(gen), cell(conds), cell(c ? counters : 'no counters yet'));
    body.append(tr);
    await y.maybe();
  }
  table.hidden = false;
}

function cell(content) {
  const td = document.createElement('td');
  if (typeof content === 'string') td.textContent = content; else td.append(content);
  return td;
}

// ---- wiring

function currentNs() {
  const m = /^#\/ns\/([^/]*)\//.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : '';
}

async function boot() {
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tok = $('token').value.trim();
    try {
      await signIn(tok);
      $('token').value = '';
      route();
      $('main').focus();
    } catch (err) {
      alertMsg(err instanceof ApiError && err.status === 401 ? `That token was refused: ${err.message}` : describe(err));
      $('token').focus();
    }
  });
  $('signout').addEventListener('click', signOut);
  $('ns-open').addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/ns/${$('ns-name').value.trim()}/tail`;
  });
  $('tail-filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    alertMsg('');
    // New filters apply from where the stream is: the cursor is kept.
    const keep = tail?.cursor ?? null;
    tailView?.clear();
    startTail(currentNs(), keep);
  });
  $('tail-pause').addEventListener('click', togglePause);
  $('tail-latest').addEventListener('click', () => tailView?.jumpToLatest());
  $('tail-clear').addEventListener('click', () => tailView?.clear());
  $('archive-form').addEventListener('submit', (ev) => { ev.preventDefault(); searchArchive(currentNs()); });
  $('pipelines-refresh').addEventListener('click', () => loadPipelines(currentNs()));
  window.addEventListener('hashchange', route);

  // A token from this tab's earlier sign-in, or none: an identity proxy may add credentials.
  try {
    await signIn(token.get() || '');
  } catch (err) {
    if (token.get()) alertMsg(describe(err));
    token.clear();
  }
  route();
  document.body.dataset.ready = 'true';
}

boot();
