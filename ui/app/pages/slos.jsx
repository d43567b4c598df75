// SLO overview (every SLO's budget state) and one SLO's page (budget burndown and burn-rate
// charts with the alert thresholds), from /api/v1/slos and the SLO's recorded series.
import { useContext } from 'preact/hooks';
import { prom, pct, num, humanDuration, fmtTime, quote, parseDuration } from '../api.js';
import { useData, Loaded, Labels } from '../util.jsx';
import { Chart, matrixToChart } from '../chart.jsx';
import { ThemeContext } from '../theme.js';

/** Burn-rate windows shown, in order (the multi-window alerts' windows). */
const WINDOWS = ['5m', '30m', '1h', '2h', '6h', '1d', '3d'];

/** Thresholds of the SRE workbook's multi-window alerts (Sloth's defaults). */
const THRESHOLDS = [
  { factor: 14.4, name: 'page 1h/5m', color: '#dc2626' },
  { factor: 6, name: 'page 6h/30m', color: '#f97316' },
  { factor: 3, name: 'ticket 1d/2h', color: '#ca8a04' },
  { factor: 1, name: 'ticket 3d/6h', color: '#65a30d' },
];

/** The selector of an SLO's recorded series. */
const sel = (id) => `{sloth_id=${quote(id)}}`;

/** The PromQL of the SLO's error ratio over `w` (its recording rule). */
export const errorRatioQuery = (id, w) => `slo:sli_error:ratio_rate${w}${sel(id)}`;

function BudgetBar({ remaining }) {
  const r = remaining === null || remaining === undefined ? null : remaining;
  const w = r === null ? 0 : Math.max(0, Math.min(1, r)) * 100;
  const cls = r === null ? 'none' : r <= 0 ? 'spent' : r < 0.25 ? 'low' : r < 0.5 ? 'mid' : 'ok';
  return (
    <div class="budget" role="meter" aria-valuemin={0} aria-valuemax={100} aria-valuenow={r === null ? undefined : Math.round(r * 100)} aria-label="Error budget remaining">
      <div class={`fill ${cls}`} style={{ width: `${w}%` }} />
      <span>{r === null ? 'no data' : pct(r, 1)}</span>
    </div>
  );
}

/** Time to exhaustion: `exhausted` once the budget is spent, `—` when nothing fails. */
function exhaustion(s) {
  if (s.budget && s.budget.remaining !== null && s.budget.remaining <= 0) return 'exhausted';
  if (s.timeToExhaustion === null || s.timeToExhaustion === undefined) return '—';
  return humanDuration(s.timeToExhaustion);
}

/** Burn-rate windows of the API ordered by length (5m first, the period last). */
const byLength = (rates) => Object.entries(rates || {}).sort((a, b) => (parseDuration(a[0]) || Infinity) - (parseDuration(b[0]) || Infinity));

function burnClass(v) {
  if (v === null || v === undefined) return '';
  if (v >= 14.4) return 'burn-page';
  if (v >= 3) return 'burn-warn';
  if (v > 1) return 'burn-high';
  return '';
}

function AlertBadges({ alerts }) {
  if (!alerts || !alerts.length) return <span class="muted">none</span>;
  return alerts.map((a) => (
    <span class={`badge ${a.state}`} title={a.alertname}>
      {a.severity || a.alertname} {a.state}
    </span>
  ));
}

export function SloList() {
  const state = useData(() => prom('/api/v1/slos'), [], 30000);
  return (
    <section>
      <h1>Service level objectives</h1>
      <Loaded state={state} what="SLOs">
        {(slos) =>
          slos.length === 0 ? (
            <p class="muted">No SLOs are loaded. Add Sloth or OpenSLO files under <code>slo_files</code> in the configuration.</p>
          ) : (
            <div class="scroll">
              <table class="slos" data-testid="slo-table">
                <thead>
                  <tr>
                    <th>SLO</th>
                    <th>Objective</th>
                    <th>SLI (5m)</th>
                    <th>Error budget remaining</th>
                    {WINDOWS.map((w) => (
                      <th class="num" title={`Burn rate over ${w}`}>
                        {w}
                      </th>
                    ))}
                    <th>Exhausted in</th>
                    <th>Alerts</th>
                  </tr>
                </thead>
                <tbody>
                  {slos.map((s) => (
                    <tr data-slo={s.id}>
                      <td>
                        <a href={`/slos/${encodeURIComponent(s.id)}`}>{s.name}</a>
                        <div class="muted small">{s.service}</div>
                      </td>
                      <td>{pct(s.objective, 3)}</td>
                      <td>{s.unsupported ? <span title={s.unsupported}>n/a</span> : pct(s.sli, 3)}</td>
                      <td>
                        <BudgetBar remaining={s.budget && s.budget.remaining} />
                      </td>
                      {WINDOWS.map((w) => {
                        const v = s.burnRates ? s.burnRates[w] : null;
                        return <td class={`num ${burnClass(v)}`}>{v === null || v === undefined ? '—' : num(v, 2) + '×'}</td>;
                      })}
                      <td>{exhaustion(s)}</td>
                      <td>
                        <AlertBadges alerts={s.alerts} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </section>
  );
}

function exploreHref(expr, range) {
  const q = new URLSearchParams({ expr, range });
  return `/explore?${q}`;
}

/** Points of the burndown chart across the SLO window. */
const BURNDOWN_POINTS = 30;

/**
 * The budget remaining across the window, each point the SLO API's own figure at that instant
 * (`/api/v1/slos/<id>?time=…`), so the chart ends exactly at the figure shown above it.
 */
function Burndown({ slo }) {
  const theme = useContext(ThemeContext);
  const end = slo.window.end;
  const start = slo.window.start;
  const st = useData(async (signal) => {
    const times = Array.from({ length: BURNDOWN_POINTS + 1 }, (_, i) => start + ((end - start) * i) / BURNDOWN_POINTS);
    const states = await Promise.all(times.map((time) => prom(`/api/v1/slos/${encodeURIComponent(slo.id)}`, { time }, { signal })));
    return { x: times, values: states.map((s) => (s.budget && s.budget.remaining !== null && s.budget.remaining !== undefined ? s.budget.remaining : null)) };
  }, [slo.id, end]);
  return (
    <figure>
      <figcaption>Error budget remaining over the {slo.window.period} window</figcaption>
      <Loaded state={st} what="burndown">
        {({ x, values }) =>
          values.every((v) => v === null) ? (
            <p class="muted">No traffic in this window.</p>
          ) : (
            <Chart x={x} series={[{ label: 'budget remaining', values }]} xRange={[start, end]} theme={theme} yFormat={(v) => (v === null ? '—' : pct(v, 1))} testId="burndown-chart" />
          )
        }
      </Loaded>
    </figure>
  );
}

function BurnRates({ slo }) {
  const theme = useContext(ThemeContext);
  const end = slo.window.end;
  const start = end - 86400;
  const total = slo.budget.total;
  const windows = ['5m', '1h', '6h'];
  const queries = windows.map((w) => `${errorRatioQuery(slo.id, w)} / ${total}`);
  const st = useData(async () => {
    const step = Math.ceil((end - start) / 300);
    const answers = await Promise.all(queries.map((query) => prom('/api/v1/query_range', { query, start, end, step })));
    return answers;
  }, [slo.id, Math.floor(end / 60)]);
  return (
    <figure>
      <figcaption>
        Burn rate (last 24h), alert thresholds dashed{' '}
        <a href={exploreHref(queries[0], '1d')} data-testid="explore-burn">
          Open in Explore
        </a>
      </figcaption>
      <Loaded state={st} what="burn rates">
        {(answers) => {
          const result = answers.flatMap((a, i) => a.result.map((r) => ({ ...r, metric: { w: windows[i] } })));
          if (!result.length) return <p class="muted">No burn rate recorded in the last 24h.</p>;
          const c = matrixToChart(result, (m) => `burn ${m.w}`);
          // Thresholds span the whole range: add its ends to the x values (data series have
          // no point there).
          const x = [...new Set([start, ...c.x, end])].sort((a, b) => a - b);
          const at = new Map(c.x.map((t, i) => [t, i]));
          const data = c.series.map((s) => ({ ...s, values: x.map((t) => (at.has(t) ? s.values[at.get(t)] : null)) }));
          const lines = THRESHOLDS.map((t) => ({ label: `${t.factor}× ${t.name}`, values: x.map(() => t.factor), color: t.color, dash: [6, 4], width: 1 }));
          return <Chart x={x} series={[...data, ...lines]} xRange={[start, end]} theme={theme} yLabel="× budget" testId="burn-chart" />;
        }}
      </Loaded>
    </figure>
  );
}

export function SloPage({ id }) {
  const state = useData(() => prom(`/api/v1/slos/${encodeURIComponent(id)}`), [id]);
  return (
    <section>
      <p>
        <a href="/slos">← All SLOs</a>
      </p>
      <Loaded state={state} what="the SLO">
        {(s) => (
          <div>
            <h1>
              {s.name} <span class="muted small">{s.service}</span>
            </h1>
            {s.description && <p>{s.description}</p>}
            {s.unsupported && <p class="error">Cannot evaluate: {s.unsupported}</p>}
            {s.warnings && s.warnings.map((w) => <p class="warning">{w}</p>)}
            <dl class="figures">
              <div>
                <dt>Objective</dt>
                <dd>{pct(s.objective, 3)}</dd>
              </div>
              <div>
                <dt>SLI (5m)</dt>
                <dd>{pct(s.sli, 3)}</dd>
              </div>
              <div>
                <dt>Budget remaining</dt>
                <dd>
                  <BudgetBar remaining={s.budget.remaining} />
                  <div class="small muted">{s.budget.remainingTimeHuman || ''}</div>
                </dd>
              </div>
              <div>
                <dt>Exhausted in</dt>
                <dd>{exhaustion(s)}</dd>
              </div>
              <div>
                <dt>Window</dt>
                <dd>
                  {s.window.type} {s.window.period}
                  <div class="small muted">
                    {fmtTime(s.window.start)} → {fmtTime(s.window.end)}
                  </div>
                </dd>
              </div>
              <div>
                <dt>Budgeting</dt>
                <dd>{s.budgetingMethod}</dd>
              </div>
            </dl>
            <h2>Burn rate by window</h2>
            <div class="scroll">
              <table>
                <thead>
                  <tr>
                    {byLength(s.burnRates).map(([w]) => (
                      <th class="num">{w}</th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  <tr>
                    {byLength(s.burnRates).map(([w, v]) => (
                      <td class={`num ${burnClass(v)}`}>
                        <a href={exploreHref(errorRatioQuery(s.id, w), '6h')} title={`Error ratio over ${w} in Explore`}>
                          {v === null ? '—' : num(v, 2) + '×'}
                        </a>
                      </td>
                    ))}
                  </tr>
                </tbody>
              </table>
            </div>
            <h2>Alerts</h2>
            {s.alerts.length === 0 ? (
              <p class="muted">No alert of this SLO is pending or firing.</p>
            ) : (
              <ul class="plain">
                {s.alerts.map((a) => (
                  <li>
                    <span class={`badge ${a.state}`}>{a.state}</span> <b>{a.alertname}</b> <Labels labels={a.labels} skip={['alertname']} />
                  </li>
                ))}
              </ul>
            )}
            <div class="charts">
              <BurnRates slo={s} />
              <Burndown slo={s} />
            </div>
            <p class="small muted">
              Defined in <code>{s.file}</code>. Error ratio in Explore: <a href={exploreHref(errorRatioQuery(s.id, '5m'), '1h')} data-testid="explore-sli">{errorRatioQuery(s.id, '5m')}</a>
            </p>
          </div>
        )}
      </Loaded>
    </section>
  );
}
