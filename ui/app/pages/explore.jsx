// Explore: a PromQL editor with autocomplete (metric names, functions, label names and
// values), a time range, and the answer as a graph (lines or stacked) or a table. The query
// lives in the URL (`expr`, `range`, `end`, `step`, `tab`, `stacked`; Prometheus' `g0.expr` of
// alert links is understood too), so links carry it.
import { useContext, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { prom, nowSec, parseDuration, seriesName, num, fmtTime } from '../api.js';
import { navigate } from '../router.js';
import { ErrorBox, Tabs, RANGES } from '../util.jsx';
import { Chart, matrixToChart } from '../chart.jsx';
import { ThemeContext } from '../theme.js';
import { completionContext } from '../promql-complete.js';

const FUNCTIONS = ('abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max clamp_min ' +
  'cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv exp floor histogram_avg histogram_count ' +
  'histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase irate ' +
  'label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month predict_linear ' +
  'present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt ' +
  'stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year').split(' ');
const AGGREGATIONS = 'sum avg min max count group stddev stdvar topk bottomk quantile count_values limitk limit_ratio'.split(' ');
const KEYWORDS = 'by without on ignoring group_left group_right offset bool and or unless'.split(' ');

/** Metric names, fetched once per page load. */
let metricNames = null;
async function loadMetricNames() {
  if (!metricNames) metricNames = prom('/api/v1/label/__name__/values').catch(() => []);
  return metricNames;
}

async function suggestions(ctx) {
  if (!ctx) return [];
  const p = ctx.prefix.toLowerCase();
  const match = (xs) => xs.filter((x) => x.toLowerCase().startsWith(p) && x !== ctx.prefix);
  if (ctx.kind === 'metric') {
    if (p.length < 1) return [];
    const names = await loadMetricNames();
    const fns = [...AGGREGATIONS, ...FUNCTIONS, ...KEYWORDS];
    const contains = names.filter((x) => !x.toLowerCase().startsWith(p) && x.toLowerCase().includes(p));
    return [
      ...match(names).map((x) => ({ text: x, kind: 'metric' })),
      ...match(fns).map((x) => ({ text: x, kind: FUNCTIONS.includes(x) ? 'function' : AGGREGATIONS.includes(x) ? 'aggregation' : 'keyword' })),
      ...contains.map((x) => ({ text: x, kind: 'metric' })),
    ].slice(0, 50);
  }
  const match_ = ctx.metric ? [`${ctx.metric}`] : undefined;
  if (ctx.kind === 'label') {
    const names = await prom('/api/v1/labels', { 'match[]': match_ }).catch(() => []);
    return match(names.filter((n) => n !== '__name__')).map((x) => ({ text: x, kind: 'label' })).slice(0, 50);
  }
  if (ctx.kind === 'value') {
    const values = await prom(`/api/v1/label/${encodeURIComponent(ctx.label)}/values`, { 'match[]': match_ }).catch(() => []);
    return values
      .filter((x) => x.toLowerCase().startsWith(p))
      .map((x) => ({ text: x, kind: 'value' }))
      .slice(0, 50);
  }
  return [];
}

/** The editor: a textarea with a completion list (↑/↓ choose, Tab/Enter take, Esc closes). */
function Editor({ value, onChange, onRun, errorPos }) {
  const ta = useRef(null);
  const [items, setItems] = useState([]);
  const [sel, setSel] = useState(0);
  const [ctx, setCtx] = useState(null);
  const seq = useRef(0);
  const update = async (text, pos) => {
    const c = completionContext(text, pos);
    const n = ++seq.current;
    const s = await suggestions(c);
    if (n !== seq.current) return;
    setCtx(c);
    setItems(s);
    setSel(0);
  };
  const accept = (item) => {
    const el = ta.current;
    const pos = el.selectionStart;
    let insert = item.text;
    if (item.kind === 'label' && ctx && ctx.kind === 'label' && !/\b(by|without|on|ignoring)\s*\([^)]*$/.test(value.slice(0, pos))) insert += '="';
    if (item.kind === 'value') insert += '"';
    if (item.kind === 'function' || item.kind === 'aggregation') insert += '(';
    const text = value.slice(0, ctx.from) + insert + value.slice(pos);
    onChange(text);
    setItems([]);
    const caret = ctx.from + insert.length;
    requestAnimationFrame(() => {
      el.focus();
      el.setSelectionRange(caret, caret);
      if (item.kind === 'label') update(text, caret);
    });
  };
  const onKey = (e) => {
    if (items.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        setSel((s) => (s + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length);
        e.preventDefault();
        return;
      }
      if (e.key === 'Tab' || (e.key === 'Enter' && !e.shiftKey)) {
        accept(items[sel]);
        e.preventDefault();
        return;
      }
      if (e.key === 'Escape') {
        setItems([]);
        e.preventDefault();
        return;
      }
    }
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      onRun();
    }
  };
  useEffect(() => {
    if (errorPos && ta.current) {
      const { line, col } = errorPos;
      const lines = value.split('\n');
      let off = 0;
      for (let i = 0; i < line - 1 && i < lines.length; i++) off += lines[i].length + 1;
      off = Math.min(value.length, off + Math.max(0, col - 1));
      ta.current.setSelectionRange(off, Math.min(value.length, off + 1));
    }
  }, [errorPos]);
  const rows = Math.min(8, Math.max(2, value.split('\n').length));
  return (
    <div class="editor">
      <label for="expr" class="sr-only">
        PromQL expression
      </label>
      <textarea
        id="expr"
        ref={ta}
        value={value}
        rows={rows}
        spellcheck={false}
        autocomplete="off"
        placeholder="PromQL expression (Enter runs, Shift+Enter adds a line)"
        role="combobox"
        aria-expanded={items.length > 0}
        aria-controls="completions"
        aria-autocomplete="list"
        aria-activedescendant={items.length ? `completion-${sel}` : undefined}
        onInput={(e) => {
          onChange(e.target.value);
          update(e.target.value, e.target.selectionStart);
        }}
        onKeyDown={onKey}
        onBlur={() => setTimeout(() => setItems([]), 150)}
      />
      {items.length > 0 && (
        <ul id="completions" class="completions" role="listbox">
          {items.map((it, i) => (
            <li id={`completion-${i}`} role="option" aria-selected={i === sel} class={i === sel ? 'sel' : ''} onMouseDown={(e) => (e.preventDefault(), accept(it))}>
              <span>{it.text}</span>
              <span class="kind">{it.kind}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** `line:col` of a Prometheus parse error (`invalid parameter "query": 1:5: parse error: …`). */
function errorPosition(err) {
  const m = err && /(?:^|\s)(\d+):(\d+): /.exec(err.message || '');
  if (m) return { line: +m[1], col: +m[2] };
  const m2 = err && /(?:at|position) (?:char |line \d+, col(?:umn)? )?(\d+)/i.exec(err.message || '');
  return m2 ? { line: 1, col: +m2[1] } : null;
}

function readParams(params) {
  return {
    expr: params.get('expr') ?? params.get('g0.expr') ?? '',
    range: params.get('range') || params.get('g0.range_input') || '1h',
    end: params.get('end') || '',
    step: params.get('step') || '',
    tab: params.get('tab') === 'table' || params.get('g0.tab') === '1' ? 'table' : 'graph',
    stacked: params.get('stacked') === '1',
  };
}

function writeParams(s) {
  const q = new URLSearchParams();
  q.set('expr', s.expr);
  q.set('range', s.range);
  if (s.end) q.set('end', s.end);
  if (s.step) q.set('step', s.step);
  if (s.tab !== 'graph') q.set('tab', s.tab);
  if (s.stacked) q.set('stacked', '1');
  return `/explore?${q}`;
}

/** Seconds since the epoch of the `end` field (a datetime-local value), now when empty. */
function endSec(end) {
  if (!end) return Math.floor(nowSec());
  const t = new Date(end).getTime();
  return isNaN(t) ? Math.floor(nowSec()) : Math.floor(t / 1000);
}

export function Explore({ params }) {
  const theme = useContext(ThemeContext);
  const fromUrl = readParams(params);
  const [draft, setDraft] = useState(fromUrl.expr);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [running, setRunning] = useState(false);
  const key = params.toString();
  useEffect(() => setDraft(fromUrl.expr), [fromUrl.expr]);
  const go = (patch) => navigate(writeParams({ ...fromUrl, expr: draft, ...patch }), { replace: false });
  useEffect(() => {
    if (!fromUrl.expr.trim()) {
      setResult(null);
      setError(null);
      return undefined;
    }
    const ctl = new AbortController();
    const range = parseDuration(fromUrl.range) || 3600;
    const end = endSec(fromUrl.end);
    const start = end - range;
    const step = parseDuration(fromUrl.step) || Math.max(1, Math.ceil(range / 250));
    setRunning(true);
    const run =
      fromUrl.tab === 'graph'
        ? prom('/api/v1/query_range', { query: fromUrl.expr, start, end, step }, { signal: ctl.signal })
        : prom('/api/v1/query', { query: fromUrl.expr, time: end }, { signal: ctl.signal });
    run.then(
      (data) => {
        if (ctl.signal.aborted) return;
        setResult({ data, start, end, step, tab: fromUrl.tab });
        setError(null);
        setRunning(false);
      },
      (e) => {
        if (ctl.signal.aborted) return;
        setError(e);
        setResult(null);
        setRunning(false);
      },
    );
    return () => ctl.abort();
  }, [key]);
  const chart = useMemo(() => {
    if (!result || result.tab !== 'graph' || result.data.resultType !== 'matrix') return null;
    return matrixToChart(result.data.result, seriesName);
  }, [result]);
  return (
    <section>
      <h1>Explore</h1>
      <form
        class="explore-form"
        onSubmit={(e) => {
          e.preventDefault();
          go({});
        }}
      >
        <Editor value={draft} onChange={setDraft} onRun={() => go({})} errorPos={errorPosition(error)} />
        <div class="controls">
          <label>
            Range{' '}
            <select value={fromUrl.range} onChange={(e) => go({ range: e.target.value })} aria-label="Time range">
              {(RANGES.includes(fromUrl.range) ? RANGES : [fromUrl.range, ...RANGES]).map((r) => (
                <option value={r}>{r}</option>
              ))}
            </select>
          </label>
          <label>
            End <input type="datetime-local" step="1" value={fromUrl.end} onChange={(e) => go({ end: e.target.value })} aria-label="End time (empty: now)" />
          </label>
          <label>
            Step <input type="text" size={5} placeholder="auto" value={fromUrl.step} onChange={(e) => go({ step: e.target.value })} aria-label="Resolution step" />
          </label>
          <label class="check">
            <input type="checkbox" checked={fromUrl.stacked} onChange={(e) => go({ stacked: e.target.checked })} /> Stacked
          </label>
          <button type="submit" class="primary">
            {running ? 'Running…' : 'Run query'}
          </button>
        </div>
      </form>
      <Tabs
        label="Result view"
        tabs={[
          ['graph', 'Graph'],
          ['table', 'Table'],
        ]}
        value={fromUrl.tab}
        onChange={(tab) => go({ tab })}
      />
      {error && (
        <div data-testid="query-error">
          <ErrorBox error={error} />
          {errorPosition(error) && <ErrorCaret expr={fromUrl.expr} pos={errorPosition(error)} />}
        </div>
      )}
      {result && result.tab === 'graph' && chart && (
        <div>
          <p class="small muted" data-testid="result-meta" data-start={result.start} data-end={result.end} data-step={result.step}>
            {chart.series.length} series, {chart.x.length} steps of {result.step}s from {fmtTime(result.start)} to {fmtTime(result.end)}
          </p>
          {chart.series.length ? <Chart {...chart} xRange={[result.start, result.end]} stacked={fromUrl.stacked} theme={theme} testId="explore-chart" /> : <p class="muted">Empty result.</p>}
        </div>
      )}
      {result && result.tab === 'table' && <ResultTable data={result.data} />}
      {!fromUrl.expr.trim() && (
        <p class="muted">
          Type a PromQL expression: suggestions of metric names, functions, label names and values appear as you type (↑/↓ to choose, Tab or Enter to take). Enter runs the query.
        </p>
      )}
    </section>
  );
}

function ErrorCaret({ expr, pos }) {
  const line = expr.split('\n')[pos.line - 1];
  if (line === undefined) return null;
  return (
    <pre class="caret" aria-label={`Error at line ${pos.line}, column ${pos.col}`}>
      {line}
      {'\n'}
      {' '.repeat(Math.max(0, pos.col - 1))}^
    </pre>
  );
}

function ResultTable({ data }) {
  if (data.resultType === 'scalar' || data.resultType === 'string') {
    return (
      <table data-testid="result-table">
        <tbody>
          <tr>
            <td>{data.resultType}</td>
            <td class="num">{num(data.result[1], 8)}</td>
          </tr>
        </tbody>
      </table>
    );
  }
  if (!data.result.length) return <p class="muted">Empty result.</p>;
  return (
    <div class="scroll">
      <table data-testid="result-table">
        <thead>
          <tr>
            <th>Series</th>
            <th class="num">Value</th>
          </tr>
        </thead>
        <tbody>
          {data.result.map((r) => (
            <tr>
              <td class="mono">{seriesName(r.metric)}</td>
              <td class="num mono">{r.value ? r.value[1] : r.histogram ? `histogram count=${r.histogram[1].count}` : (r.values || []).map((v) => `${v[1]} @${v[0]}`).join('\n')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
