// LogView: a virtualised list of log records with a bounded buffer. Records are queued and
// rendered once per animation frame; only the rows in sight exist in the DOM; when the buffer
// is full the oldest records leave it and a "N lines dropped from view" marker says so. Every
// value is set with textContent: log content is never parsed as HTML.

const ROW = 20; // px, as --row in style.css

export class LogView {
  constructor(root, { max = 10000, label = 'Log lines' } = {}) {
    this.max = max;
    this.buf = new Array(max);
    this.frame = 0;
    this.root = root;
    root.replaceChildren();
    this.marker = el('div', 'dropped');
    this.marker.hidden = true;
    this.viewport = el('div', 'viewport');
    this.viewport.tabIndex = 0; // keyboard scrolling: arrows, PageUp/PageDown, Home/End
    this.viewport.setAttribute('role', 'log');
    this.viewport.setAttribute('aria-label', label);
    this.spacer = el('div', 'spacer');
    this.rows = el('div', 'rows');
    this.emptyNote = el('div', 'empty');
    this.emptyNote.textContent = 'No lines yet.';
    this.viewport.append(this.spacer, this.rows, this.emptyNote);
    root.append(this.marker, this.viewport);
    this.pool = [];
    this.clear();
    this.viewport.addEventListener('scroll', () => {
      const v = this.viewport;
      this.follow = v.scrollTop + v.clientHeight >= v.scrollHeight - ROW;
      this.schedule();
    }, { passive: true });
  }

  // push queues one record ({ts, pod, container, stream, message}); it is drawn on the next
  // frame. The queue itself is bounded: what could never be in view is dropped at once.
  push(rec) {
    this.received++;
    this.pending.push(rec);
    if (this.pending.length > this.max) {
      const extra = this.pending.length - this.max;
      this.pending.splice(0, extra);
      this.dropped += extra;
    }
    this.schedule();
  }

  clear() {
    this.start = 0;
    this.count = 0;
    this.pending = [];
    this.received = 0;
    this.dropped = 0;
    this.follow = true;
    this.publish();
    this.schedule();
  }

  jumpToLatest() {
    this.follow = true;
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    let shifted = 0;
    for (const rec of this.pending) {
      if (this.count < this.max) {
        this.buf[(this.start + this.count) % this.max] = rec;
        this.count++;
      } else {
        this.buf[this.start] = rec;
        this.start = (this.start + 1) % this.max;
        this.dropped++;
        shifted++;
      }
    }
    this.pending = [];
    const v = this.viewport;
    this.spacer.style.height = this.count * ROW + 'px';
    if (this.follow) {
      v.scrollTop = v.scrollHeight;
    } else if (shifted) {
      // Keep the lines the reader looks at in place while older ones leave the buffer.
      v.scrollTop = Math.max(0, v.scrollTop - shifted * ROW);
    }
    this.render();
    this.publish();
  }

  render() {
    const v = this.viewport;
    const first = Math.min(Math.floor(v.scrollTop / ROW), Math.max(0, this.count - 1));
    const n = Math.min(Math.ceil(v.clientHeight / ROW) + 2, this.count - first);
    while (this.pool.length < n) {
      const row = el('div', 'row');
      row.append(el('span', 'ts'), el('span', 'src'), el('span', 'stream'), el('span', 'msg'));
      this.pool.push(row);
    }
    const rows = this.pool.slice(0, Math.max(0, n));
    for (let i = 0; i < rows.length; i++) {
      const rec = this.buf[(this.start + first + i) % this.max];
      const [ts, src, stream, msg] = rows[i].children;
      ts.textContent = rec.ts || '';
      src.textContent = (rec.pod || '') + '/' + (rec.container || '');
      stream.textContent = rec.stream || '';
      // One row per record: a multi-line message shows its line breaks as ↵.
      msg.textContent = String(rec.message ?? '').replaceAll('\n', '↵');
      rows[i].className = rec.stream === 'stderr' ? 'row stderr' : 'row';
    }
    if (this.rows.childElementCount !== rows.length) this.rows.replaceChildren(...rows);
    this.rows.style.transform = `translateY(${first * ROW}px)`;
    this.emptyNote.hidden = this.count > 0;
  }

  publish() {
    this.marker.hidden = this.dropped === 0;
    this.marker.textContent = `${this.dropped.toLocaleString('en')} lines dropped from view (this view keeps the newest ${this.max.toLocaleString('en')})`;
    const d = this.root.dataset;
    d.received = String(this.received);
    d.dropped = String(this.dropped);
    d.buffered = String(this.count);
  }
}

function el(tag, cls) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  return e;
}
