// The gateway's public API, as the console uses it: the bearer token from sessionStorage (or
// none, when an identity proxy adds it), problem+json errors turned into ApiError.

const KEY = 'logrouter.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || '';
    this.problem = problem;
    this.retryAfter = 0;
  }
}

export const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function headers(extra = {}, tok = token.get()) {
  const h = { ...extra };
  if (tok) h.Authorization = 'Bearer ' + tok;
  return h;
}

// request fetches path; a non-2xx answer throws ApiError with the problem's detail.
export async function request(path, { accept = 'application/json', signal, extra, tok } = {}) {
  const resp = await fetch(path, {
    headers: headers({ Accept: accept, ...extra }, tok),
    signal, cache: 'no-store', credentials: 'omit', redirect: 'error',
  });
  if (!resp.ok) throw await problemOf(resp);
  return resp;
}

export async function problemOf(resp) {
  let p = {};
  try { p = await resp.json(); } catch { p = { title: resp.statusText }; }
  const e = new ApiError(resp.status, p);
  e.retryAfter = Number(resp.headers.get('Retry-After')) || 0;
  return e;
}

export function describe(err) {
  if (err instanceof ApiError) return `${err.problem.title || 'Error'} (${err.code || err.status}): ${err.message}`;
  return `Cannot reach the gateway: ${err.message}`;
}

export function nsPath(ns, what) {
  return `/v1/namespaces/${encodeURIComponent(ns)}/${what}`;
}

// Yielder bounds how long one task may run: work loops call maybe() between chunks and give
// the main thread back (rendering, input) once a slice is used up.
export class Yielder {
  constructor(sliceMs = 8) { this.slice = sliceMs; this.t = performance.now(); }
  async maybe() {
    if (performance.now() - this.t < this.slice) return;
    await new Promise((r) => setTimeout(r, 0));
    this.t = performance.now();
  }
}

// lines splits a text stream into lines, yielding between chunks.
export async function* lines(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const y = new Yielder();
  let rest = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const parts = (rest + value).split('\n');
      rest = parts.pop();
      for (const l of parts) yield l.endsWith('\r') ? l.slice(0, -1) : l;
      await y.maybe();
      if (signal?.aborted) return;
    }
    if (rest) yield rest;
  } finally {
    reader.cancel().catch(() => {});
  }
}
