// HTTP helpers for Sextant's APIs: Prometheus' envelope ({status, data} or
// {status:"error", errorType, error}), Alertmanager v2 (bare JSON, errors as a JSON string or
// text), Loki and Tempo. Every request goes to this origin only.

/** An API answer that was not a success; `message` is the server's text, as given. */
export class ApiError extends Error {
  constructor(message, { type = '', status = 0 } = {}) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/** `path?k=v&…`; array values repeat the key (`match[]`); null/undefined values are left out. */
export function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function decode(resp) {
  const text = await resp.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!resp.ok || (body && body.status === 'error')) {
    let msg = text.trim() || `${resp.status} ${resp.statusText}`;
    let type = '';
    if (body && typeof body === 'object') {
      msg = body.error || body.message || msg;
      type = body.errorType || '';
    } else if (typeof body === 'string') {
      msg = body;
    }
    throw new ApiError(msg, { type, status: resp.status });
  }
  return body;
}

/** GET (or another method) returning the parsed JSON; throws ApiError. */
export async function fetchJSON(path, { method = 'GET', params, body, headers, signal } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...(headers || {}) }, signal };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const resp = await fetch(url(path, params), init);
  return decode(resp);
}

/** A Prometheus-style endpoint: returns `data`. */
export async function prom(path, params, opts = {}) {
  const body = await fetchJSON(path, { ...opts, params });
  return body && 'data' in body ? body.data : body;
}

/** Seconds since the epoch, now. */
export const nowSec = () => Date.now() / 1000;

/** `5m`, `1h30m`, `2d` → seconds; NaN when not a duration. */
export function parseDuration(s) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g;
  const units = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  let total = 0;
  let used = 0;
  let m;
  const t = String(s).trim();
  while ((m = re.exec(t))) {
    total += parseFloat(m[1]) * units[m[2]];
    used += m[0].length;
  }
  return used === t.length && used > 0 ? total : NaN;
}

/** Seconds as `2h 5m` (two largest units). */
export function humanDuration(secs) {
  if (secs === null || secs === undefined || !isFinite(secs)) return '—';
  if (secs < 1) return `${Math.round(secs * 1000)}ms`;
  let s = Math.round(secs);
  const parts = [];
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)}${u}`);
      s %= n;
    }
  }
  return parts.slice(0, 2).join(' ');
}

/** A short, locale-independent timestamp (UTC offset of the browser). */
export function fmtTime(t) {
  if (t === null || t === undefined || t === '') return '—';
  const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
  if (isNaN(d.getTime()) || d.getTime() <= 0) return '—';
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** `12.3%` of a ratio, with enough digits for 99.9x objectives. */
export function pct(r, digits = 2) {
  if (r === null || r === undefined || !isFinite(r)) return '—';
  return `${(r * 100).toFixed(digits)}%`;
}

/** A float as Prometheus prints it, shortened for display. */
export function num(v, digits = 4) {
  if (v === null || v === undefined) return '—';
  const x = Number(v);
  if (!isFinite(x)) return String(v);
  if (x !== 0 && (Math.abs(x) >= 1e6 || Math.abs(x) < 1e-3)) return x.toExponential(3);
  return String(Number(x.toPrecision(digits + 2)));
}

/** `{a="b", c="d"}` of a label object, `__name__` first as the metric name. */
export function seriesName(metric) {
  const m = { ...(metric || {}) };
  const name = m.__name__ || '';
  delete m.__name__;
  const inner = Object.keys(m)
    .sort()
    .map((k) => `${k}="${m[k]}"`)
    .join(', ');
  return inner ? `${name}{${inner}}` : name || '{}';
}

/** A PromQL string literal. */
export const quote = (s) => JSON.stringify(String(s));
