// Tail follows a namespace's live logs over SSE (fetch, because EventSource cannot send an
// Authorization header). It keeps the last event id (the cursor) and reconnects with
// Last-Event-ID after a dropped connection or a gateway restart, so there is no gap and no
// duplicate; pause closes the stream and keeps the cursor, resume continues after it.

import { ApiError, headers, lines, nsPath, problemOf } from './api.js';

export class Tail {
  constructor(ns, filters, { onRecord, onStatus, onFatal }) {
    this.ns = ns;
    this.filters = filters; // {pod, container, grep}; stream is filtered by the caller
    this.cursor = null;
    this.onRecord = onRecord;
    this.onStatus = onStatus;
    this.onFatal = onFatal;
    this.ctl = null;
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.loop();
  }

  stop() {
    this.running = false;
    this.ctl?.abort();
  }

  async loop() {
    let backoff = 500;
    while (this.running) {
      this.ctl = new AbortController();
      let reason = '';
      try {
        reason = await this.connect(this.ctl.signal, () => { backoff = 500; });
      } catch (err) {
        if (!this.running) return;
        if (err instanceof ApiError && ![429, 503].includes(err.status)) {
          this.running = false;
          this.onFatal(err);
          return;
        }
        const wait = err instanceof ApiError && err.retryAfter ? err.retryAfter * 1000 : backoff;
        this.onStatus(`connection lost (${err.message}); retrying in ${Math.round(wait / 100) / 10} s`);
        await sleep(wait);
        backoff = Math.min(backoff * 2, 15000);
        continue;
      }
      if (!this.running) return;
      if (reason === 'limit') { this.running = false; this.onStatus('the stream ended (limit)'); return; }
      if (reason === 'unauthorized') return; // onFatal was called
      this.onStatus('reconnecting…');
      await sleep(reason === 'shutdown' ? 0 : backoff);
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  // connect reads one SSE response until it ends; it returns the end event's reason ('' when
  // the connection just closed).
  async connect(signal, connected) {
    const q = new URLSearchParams();
    for (const k of ['pod', 'container', 'grep']) if (this.filters[k]) q.set(k, this.filters[k]);
    const extra = { Accept: 'text/event-stream' };
    if (this.cursor) extra['Last-Event-ID'] = this.cursor;
    const qs = q.toString();
    const resp = await fetch(nsPath(this.ns, 'logs') + (qs ? '?' + qs : ''), {
      headers: headers(extra), signal, cache: 'no-store', credentials: 'omit', redirect: 'error',
    });
    if (!resp.ok) throw await problemOf(resp);
    connected();
    this.onStatus('following');
    let data = [], event = '', id = null;
    for await (const line of lines(resp.body, signal)) {
      if (line === '') {
        if (event === '' && data.length) this.onRecord(JSON.parse(data.join('\n')));
        else if (event === 'skipped') {
          const s = JSON.parse(data.join('\n'));
          this.onStatus(`retention deleted ${s.count} lines of partition ${s.partition} before they were read`);
        } else if (event === 'end') {
          const e = JSON.parse(data.join('\n'));
          if (e.reason === 'unauthorized') {
            this.running = false;
            this.onFatal(new ApiError(401, e.problem || { detail: 'credentials no longer valid' }));
          }
          return e.reason;
        }
        // The cursor advances only once the event it belongs to was handled.
        if (id !== null) this.cursor = id;
        data = []; event = ''; id = null;
        continue;
      }
      if (line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
      else if (field === 'id') id = value;
    }
    return '';
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
