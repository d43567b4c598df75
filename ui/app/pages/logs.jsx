// Logs: a LogQL search over a time range, the volume of matching lines as a histogram, and the
// lines (newest first), each expandable to its stream labels, structured metadata and parsed
// fields; a trace id in the metadata or the line links to the trace.
import { useContext, useEffect, useMemo, useState } from 'preact/hooks';
import { prom, nowSec, parseDuration, fmtTime } from '../api.js';
import { navigate } from '../router.js';
import { ErrorBox, Labels, RANGES } from '../util.jsx';
import { Chart } from '../chart.jsx';
import { ThemeContext } from '../theme.js';
import { traceIdOf } from '../trace.js';

function Entry({ e }) {
  const [open, setOpen] = useState(false);
  const trace = traceIdOf(e.line, { ...e.parsed, ...e.meta });
  return (
    <li class={`logline ${open ? 'open' : ''}`}>
      <button type="button" class="row" aria-expanded={open} onClick={() => setOpen(!open)}>
        <span class="ts mono">{fmtTime(Number(BigInt(e.ts) / 1000000n) / 1000)}</span>
        <span class="line mono">{e.line}</span>
      </button>
      {open && (
        <div class="details">
          <div>
            <b>Stream</b> <Labels labels={e.stream} />
          </div>
          {Object.keys(e.meta).length > 0 && (
            <div>
              <b>Structured metadata</b> <Labels labels={e.meta} />
            </div>
          )}
          {Object.keys(e.parsed).length > 0 && (
            <div>
              <b>Parsed</b> <Labels labels={e.parsed} />
            </div>
          )}
          <div class="small muted">timestamp {e.ts} ns</div>
        </div>
      )}
      {trace && (
        <a class="trace-link small" href={`/traces/${trace}`} data-testid="trace-link">
          trace {trace.slice(0, 8)}…
        </a>
      )}
    </li>
  );
}

export function Logs({ params }) {
  const theme = useContext(ThemeContext);
  const q = params.get('query') || '';
  const range = params.get('range') || '1h';
  const [draft, setDraft] = useState(q);
  const [state, setState] = useState({ entries: null, volume: null, error: null, running: false });
  useEffect(() => setDraft(q), [q]);
  const key = params.toString();
  const go = (patch) => {
    const p = new URLSearchParams({ query: draft, range, ...patch });
    navigate(`/logs?${p}`);
  };
  useEffect(() => {
    if (!q.trim()) return undefined;
    const ctl = new AbortController();
    const secs = parseDuration(range) || 3600;
    const end = nowSec();
    const start = end - secs;
    const step = Math.max(1, Math.ceil(secs / 120));
    const ns = (s) => BigInt(Math.floor(s * 1000)) * 1000000n;
    setState((s) => ({ ...s, running: true }));
    const lines = prom(
      '/loki/api/v1/query_range',
      { query: q, start: String(ns(start)), end: String(ns(end)), limit: 500, direction: 'backward' },
      { signal: ctl.signal, headers: { 'X-Loki-Response-Encoding-Flags': 'categorize-labels' } },
    );
    const volume = prom(
      '/loki/api/v1/query_range',
      { query: `sum(count_over_time(${q} [${step}s]))`, start: String(ns(start)), end: String(ns(end)), step },
      { signal: ctl.signal },
    ).catch((e) => ({ error: e }));
    Promise.all([lines, volume]).then(
      ([l, v]) => {
        if (ctl.signal.aborted) return;
        if (l.resultType !== 'streams') {
          setState({ entries: null, volume: null, error: new Error(`This page shows log lines; the query returned a ${l.resultType} (use Explore-style metric queries in Grafana).`), running: false });
          return;
        }
        const entries = [];
        for (const s of l.result) {
          for (const [ts, line, extra] of s.values) {
            entries.push({ ts, line, stream: s.stream, meta: (extra && extra.structuredMetadata) || {}, parsed: (extra && extra.parsed) || {} });
          }
        }
        entries.sort((a, b) => (BigInt(b.ts) > BigInt(a.ts) ? 1 : BigInt(b.ts) < BigInt(a.ts) ? -1 : 0));
        setState({ entries, volume: v.error ? null : { v, start, end, step }, error: null, running: false });
      },
      (error) => !ctl.signal.aborted && setState({ entries: null, volume: null, error, running: false }),
    );
    return () => ctl.abort();
  }, [key]);
  const chart = useMemo(() => {
    const vol = state.volume;
    if (!vol) return null;
    // Buckets at the evaluation times (start + k·step, as sent), zero where nothing matched;
    // keyed by millisecond so float seconds compare exactly.
    const key = (t) => Math.round(t * 1000);
    const counts = new Map();
    for (let t = Math.floor(vol.start * 1000) / 1000; t <= vol.end; t += vol.step) counts.set(key(t), 0);
    for (const r of vol.v.result || []) for (const [t, c] of r.values || []) counts.set(key(t), (counts.get(key(t)) || 0) + parseFloat(c));
    const keys = [...counts.keys()].sort((a, b) => a - b);
    return { x: keys.map((k) => k / 1000), series: [{ label: 'lines', values: keys.map((k) => counts.get(k)) }] };
  }, [state.volume]);
  return (
    <section>
      <h1>Logs</h1>
      <form
        class="explore-form"
        onSubmit={(e) => {
          e.preventDefault();
          go({});
        }}
      >
        <label for="logql" class="sr-only">
          LogQL query
        </label>
        <input id="logql" class="mono wide" value={draft} onInput={(e) => setDraft(e.target.value)} placeholder='{service_name="checkout"} |= "error"' spellcheck={false} />
        <div class="controls">
          <label>
            Range{' '}
            <select value={range} onChange={(e) => go({ range: e.target.value })} aria-label="Time range">
              {RANGES.map((r) => (
                <option value={r}>{r}</option>
              ))}
            </select>
          </label>
          <button type="submit" class="primary">
            {state.running ? 'Searching…' : 'Search'}
          </button>
        </div>
      </form>
      {!q && <p class="muted">Enter a LogQL query, for instance a stream selector such as <code>{'{service_name="api"}'}</code>.</p>}
      {state.error && <ErrorBox error={state.error} />}
      {chart && <Chart {...chart} xRange={[state.volume.start, state.volume.end]} bars theme={theme} height={120} testId="volume-chart" />}
      {state.entries && (
        <div>
          <p class="small muted" data-testid="log-count">
            {state.entries.length} lines{state.entries.length === 500 ? ' (limit reached)' : ''}
          </p>
          <ul class="logs plain" data-testid="log-lines">
            {state.entries.map((e) => (
              <Entry e={e} />
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}
