// Browser test of the Sextant console, one step list run in each browser of tests/drivers.mjs:
// Debian's chromium through playwright-core ($BROWSER=chromium, the default) and Debian's
// firefox-esr through puppeteer-core over WebDriver BiDi ($BROWSER=firefox), against a running,
// seeded Sextant. Run by tests/ui_e2e.rs (which starts and seeds the server), or by hand:
//   BROWSER=firefox SEXTANT_URL=http://127.0.0.1:9090 SLO_ID=checkout-requests-availability \
//   ALERT_NAME=QueueTooLong LOG_QUERY='{service_name="checkout"}' node ui/tests/console.mjs
// Every step checks what the page shows against the API's own answer and that the page logged
// no console error; screenshots go to $UI_ARTIFACTS (default target/ui-artifacts/<browser>).
// Writes results.json there and ends with "N passed, N failed"; exits 1 when a step failed.
// Selectors are plain CSS; elements are found by text with `pick` (no driver's text engine).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openBrowser } from './drivers.mjs';

const BROWSER = process.env.BROWSER || 'chromium';
const BASE = (process.env.SEXTANT_URL || 'http://127.0.0.1:9090').replace(/\/$/, '');
const ART = resolve(process.env.UI_ARTIFACTS || join('target/ui-artifacts', BROWSER));
const SLO_ID = process.env.SLO_ID || '';
const ALERT = process.env.ALERT_NAME || '';
const METRIC_QUERY = process.env.METRIC_QUERY || 'sum by (code) (rate(http_requests_total[5m]))';
const LOG_QUERY = process.env.LOG_QUERY || '';
const REQUIRE_TRACES = process.env.REQUIRE_TRACES === '1';
const TRACE_ID = process.env.TRACE_ID || '';
mkdirSync(ART, { recursive: true });

const results = [];
const consoleErrors = [];
const foreignRequests = [];

async function api(path, init) {
  const r = await fetch(BASE + path, init);
  const text = await r.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: r.status, body };
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function near(a, b) {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const page = await openBrowser(BROWSER);
console.log(`ui-console: ${BROWSER} ${page.version}`);
page.on('consoleError', (text) => consoleErrors.push(`${text} @ ${page.url()}`));
page.on('pageError', (text) => consoleErrors.push(`uncaught: ${text} @ ${page.url()}`));
page.on('request', (u) => {
  if (!u.startsWith(BASE + '/') && !u.startsWith('data:')) foreignRequests.push(u);
});

// ---- DOM helpers over the driver-neutral page (each waits for its element first) ----------

/** The attribute `name` of the first element matching `sel`. */
async function attr(sel, name) {
  await page.waitFor(sel);
  return page.evaluate(([s, n]) => document.querySelector(s).getAttribute(n), [sel, name]);
}
/** The rendered text of the first element matching `sel`. */
async function text(sel) {
  await page.waitFor(sel);
  return page.evaluate((s) => document.querySelector(s).innerText, sel);
}
/** The raw text content of the first element matching `sel`. */
async function textContent(sel) {
  await page.waitFor(sel);
  return page.evaluate((s) => document.querySelector(s).textContent, sel);
}
/** The value of the input matching `sel`. */
async function value(sel) {
  await page.waitFor(sel);
  return page.evaluate((s) => document.querySelector(s).value, sel);
}
/** How many elements match `sel` (now). */
function count(sel) {
  return page.evaluate((s) => document.querySelectorAll(s).length, sel);
}
/** The rendered texts of all elements matching `sel` (now). */
function texts(sel) {
  return page.evaluate((s) => Array.from(document.querySelectorAll(s), (e) => e.innerText), sel);
}

let picks = 0;
/**
 * Waits for the first element matching `css` whose text contains `text` (equals it, with
 * `exact`), and which has a descendant matching `has` when given; marks it and returns a
 * selector for exactly that element.
 */
async function pick(css, text = '', { exact = false, has = null } = {}) {
  const id = `p${++picks}`;
  await page.waitForFunction(
    ([c, t, ex, h, mark]) => {
      const e = Array.from(document.querySelectorAll(c)).find((x) => {
        const s = (x.innerText || x.textContent || '').trim();
        return (ex ? s === t : s.includes(t)) && (!h || x.querySelector(h));
      });
      if (!e) return false;
      e.setAttribute('data-e2e-pick', mark);
      return true;
    },
    [css, text, exact, has, id],
  );
  return `[data-e2e-pick="${id}"]`;
}

/** Clicks the element `pick` finds. */
async function clickText(css, text, opts) {
  await page.click(await pick(css, text, opts));
}

/** Waits until the page's URL satisfies `pred` (a function of a URL object). */
async function waitForURL(pred, what, timeout = 15000) {
  const t0 = Date.now();
  let href = '';
  while (Date.now() - t0 < timeout) {
    try {
      href = await page.evaluate(() => location.href);
      if (pred(new URL(href))) return href;
    } catch {
      // The page is navigating: ask again.
    }
    await sleep(100);
  }
  throw new Error(`URL never became ${what} (last ${href})`);
}

/** Runs one named step; `allow` lists console-error patterns this step provokes on purpose. */
async function step(name, fn, { allow = [], skipIf } = {}) {
  const before = consoleErrors.length;
  const t0 = Date.now();
  if (skipIf) {
    const why = await skipIf();
    if (why) {
      results.push({ name, status: 'skipped', reason: why });
      console.log(`ui-console: SKIP ${name}: ${why}`);
      return;
    }
  }
  try {
    await fn();
    await sleep(200);
    const errs = consoleErrors.slice(before).filter((e) => !allow.some((re) => re.test(e)));
    assert(errs.length === 0, `console errors: ${errs.join(' | ')}`);
    results.push({ name, status: 'passed', ms: Date.now() - t0 });
    console.log(`ui-console: PASS ${name}`);
  } catch (e) {
    results.push({ name, status: 'failed', error: String(e && e.stack ? e.stack : e) });
    console.log(`ui-console: FAIL ${name}: ${e && e.message}`);
  }
  try {
    await page.screenshot(join(ART, `${String(results.length).padStart(2, '0')}-${name}.png`));
  } catch (e) {
    console.log(`ui-console: screenshot of ${name} failed: ${e.message}`);
  }
}

/** An extra screenshot in the middle of a step. */
async function shot(name) {
  await page.screenshot(join(ART, `${name}.png`));
}

/** The uPlot data drawn in the chart `testId`, with series labels. */
async function chartData(testId) {
  const sel = `[data-testid="${testId}"]`;
  await page.waitForFunction((s) => !!(document.querySelector(s) && document.querySelector(s).uplot), sel);
  return page.evaluate((s) => {
    const u = document.querySelector(s).uplot;
    const canvas = document.querySelector(`${s} canvas`);
    return { labels: u.series.slice(1).map((x) => x.label), data: u.data.map((a) => Array.from(a)), canvas: canvas ? [canvas.width, canvas.height] : null };
  }, sel);
}

/** The range query behind the Explore result shown now. */
async function resultRange() {
  const m = '[data-testid="result-meta"]';
  return { start: await attr(m, 'data-start'), end: await attr(m, 'data-end'), step: await attr(m, 'data-step') };
}

/** Compares a drawn chart with a Prometheus matrix (labels as the console names series). */
function compareMatrix(drawn, matrix, nameOf) {
  assert(matrix.length > 0, 'the API returned no series');
  assert(drawn.labels.length === matrix.length, `chart has ${drawn.labels.length} series, API ${matrix.length}`);
  const x = drawn.data[0];
  let points = 0;
  for (const s of matrix) {
    const i = drawn.labels.indexOf(nameOf(s.metric));
    assert(i >= 0, `series ${nameOf(s.metric)} not drawn (drawn: ${drawn.labels.join(', ')})`);
    const ys = drawn.data[i + 1];
    const drawnPoints = ys.filter((v) => v !== null).length;
    assert(drawnPoints === s.values.length, `${nameOf(s.metric)}: ${drawnPoints} points drawn, API has ${s.values.length}`);
    for (const [t, v] of s.values) {
      const j = x.indexOf(t);
      assert(j >= 0, `timestamp ${t} missing from the chart`);
      assert(near(ys[j], parseFloat(v)), `${nameOf(s.metric)} at ${t}: drawn ${ys[j]}, API ${v}`);
      points++;
    }
  }
  return points;
}

function seriesName(metric) {
  const m = { ...metric };
  const name = m.__name__ || '';
  delete m.__name__;
  const inner = Object.keys(m)
    .sort()
    .map((k) => `${k}="${m[k]}"`)
    .join(', ');
  return inner ? `${name}{${inner}}` : name || '{}';
}

// 1. SLO overview: the row's budget bar, burn rates and alert state agree with /api/v1/slos.
await step('slo-overview', async () => {
  const row = `tr[data-slo="${SLO_ID}"]`;
  const fromApi = async () => {
    const { body } = await api('/api/v1/slos');
    const slo = body.data.find((s) => s.id === SLO_ID);
    assert(slo, `SLO ${SLO_ID} not in the API`);
    return slo;
  };
  const burn1h = (slo) => `${String(Number(slo.burnRates['1h'].toPrecision(4)))}×`;
  // Samples keep arriving while the page loads, so the page's figures are those of the API
  // just before or just after it loaded (tried again if a sample landed in between twice).
  let slos = [];
  let shown = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = await fromApi();
    await page.goto(BASE + '/');
    await page.waitFor(row);
    shown = await text(row);
    slos = [before, await fromApi()];
    if (slos.some((s) => shown.includes(burn1h(s)))) break;
  }
  const slo = slos.find((s) => shown.includes(burn1h(s)));
  assert(slo, `1h burn ${slos.map((s) => s.burnRates['1h']).join(' or ')} not shown in: ${shown}`);
  const now = await attr(`${row} [role="meter"]`, 'aria-valuenow');
  assert(slo.budget.remaining !== null, 'the API has no budget figure');
  assert(Math.abs(Number(now) - Math.round(slo.budget.remaining * 100)) <= 1, `budget bar ${now}, API ${slo.budget.remaining}`);
  assert(slo.burnRates['5m'] > 1, `the seeded SLO should burn (API 5m burn ${slo.burnRates['5m']})`);
  const firing = slo.alerts.filter((a) => a.state === 'firing');
  assert(firing.length > 0, 'the seeded SLO has no firing alert in the API');
  assert(shown.includes(`${firing[0].severity} firing`), `firing alert not shown in: ${shown}`);
});

// 2. The SLO page: burn-rate chart with thresholds, burndown; its link carries the query to Explore.
await step('slo-page-to-explore', async () => {
  await page.click(`tr[data-slo="${SLO_ID}"] a`);
  await waitForURL((u) => u.pathname === `/slos/${SLO_ID}`, `/slos/${SLO_ID}`);
  const burn = await chartData('burn-chart');
  assert(burn.labels.includes('burn 5m') && burn.labels.some((l) => l.startsWith('14.4×')), `burn chart series: ${burn.labels}`);
  const th = burn.data[burn.labels.findIndex((l) => l.startsWith('14.4×')) + 1];
  assert(th.every((v) => v === 14.4), 'the page threshold line is not at 14.4');
  // The burndown's points are the SLO API's figures at their instants; the last is now's.
  const down = await chartData('burndown-chart');
  assert(down.data[0].length === 31, `burndown has ${down.data[0].length} points`);
  for (const i of [15, 30]) {
    const t = down.data[0][i];
    const at = (await api(`/api/v1/slos/${SLO_ID}?time=${t}`)).body.data.budget.remaining;
    assert(at === null ? down.data[1][i] === null : near(down.data[1][i], at), `burndown at ${t}: drawn ${down.data[1][i]}, API ${at}`);
  }
  await shot('slo-page');
  const href = await attr('[data-testid="explore-sli"]', 'href');
  const expected = `slo:sli_error:ratio_rate5m{sloth_id="${SLO_ID}"}`;
  await page.click('[data-testid="explore-sli"]');
  await waitForURL((u) => u.pathname === '/explore' && u.search !== '', '/explore?…');
  const got = await value('#expr');
  assert(got === expected, `Explore got ${JSON.stringify(got)} from ${href}, expected ${expected}`);
  const drawn = await chartData('explore-chart');
  const { body } = await api(`/api/v1/query_range?${new URLSearchParams({ query: expected, ...(await resultRange()) })}`);
  compareMatrix(drawn, body.data.result, seriesName);
});

// 3. A PromQL query draws a chart whose points are the API's; the table matches an instant query.
await step('explore-chart-matches-api', async () => {
  await page.goto(`${BASE}/explore?${new URLSearchParams({ expr: METRIC_QUERY, range: '1h' })}`);
  const drawn = await chartData('explore-chart');
  assert(drawn.canvas && drawn.canvas[0] > 0 && drawn.canvas[1] > 0, 'no canvas');
  const range = await resultRange();
  const { body } = await api(`/api/v1/query_range?${new URLSearchParams({ query: METRIC_QUERY, ...range })}`);
  const points = compareMatrix(drawn, body.data.result, seriesName);
  assert(points > 10, `only ${points} points compared`);
  // Stacked view (the query runs again, ending now): the top series is the API's sum.
  await page.click('label.check input[type="checkbox"]');
  await waitForURL((u) => u.searchParams.get('stacked') === '1', 'stacked=1');
  await pick('button.primary', 'Run query');
  const { stacked, params } = await page.evaluate(() => {
    const m = document.querySelector('[data-testid="result-meta"]');
    const u = document.querySelector('[data-testid="explore-chart"]').uplot;
    return { stacked: u.data.map((a) => Array.from(a)), params: { start: m.dataset.start, end: m.dataset.end, step: m.dataset.step } };
  });
  const again = (await api(`/api/v1/query_range?${new URLSearchParams({ query: METRIC_QUERY, ...params })}`)).body.data.result;
  const sum = new Map();
  for (const s of again) for (const [t, v] of s.values) sum.set(t, (sum.get(t) || 0) + parseFloat(v));
  const top = stacked[stacked.length - 1];
  assert(stacked[0].length === sum.size, `stacked chart has ${stacked[0].length} steps, API ${sum.size}`);
  assert(stacked[0].every((t, j) => near(top[j], sum.get(t))), 'stacked top series is not the sum of the series');
  // Table view: one row per series of the instant query at the range's end.
  await clickText('[role="tab"]', 'Table', { exact: true });
  await page.waitFor('[data-testid="result-table"]');
  const rows = await texts('[data-testid="result-table"] tbody tr');
  const inst = await api(`/api/v1/query?${new URLSearchParams({ query: METRIC_QUERY, time: params.end })}`);
  assert(rows.length === inst.body.data.result.length, `table has ${rows.length} rows, API ${inst.body.data.result.length}`);
  for (const r of inst.body.data.result) assert(rows.some((row) => row.includes(seriesName(r.metric)) && row.includes(r.value[1])), `row ${seriesName(r.metric)} = ${r.value[1]} missing`);
});

// 4. Autocomplete from the keyboard: metric name, label name, label value.
await step('explore-autocomplete', async () => {
  await page.goto(`${BASE}/explore`);
  await page.click('#expr');
  await page.type('http_req');
  await pick('#completions li', 'http_requests_total');
  await page.press('Tab');
  assert((await value('#expr')) === 'http_requests_total', `after Tab: ${await value('#expr')}`);
  await page.type('{co');
  await pick('#completions li', 'code');
  await page.press('Enter');
  assert((await value('#expr')) === 'http_requests_total{code="', `after label: ${await value('#expr')}`);
  await page.type('5');
  await pick('#completions li', '500');
  await shot('explore-completions');
  await page.press('Enter');
  assert((await value('#expr')) === 'http_requests_total{code="500"', `after value: ${await value('#expr')}`);
  await page.type('}');
  await page.press('Escape');
  await page.press('Enter');
  await waitForURL((u) => (u.searchParams.get('expr') || '').startsWith('http_requests_total'), 'expr=http_requests_total…');
  await chartData('explore-chart');
});

// 5. A syntax error is shown as the API gives it, with its position.
await step(
  'explore-error',
  async () => {
    const bad = 'sum(rate(http_requests_total[5m])';
    await page.goto(`${BASE}/explore?${new URLSearchParams({ expr: bad, range: '1h' })}`);
    await page.waitFor('[data-testid="query-error"]');
    const shown = await text('[data-testid="query-error"] [role="alert"]');
    const { status, body } = await api(`/api/v1/query?${new URLSearchParams({ query: bad })}`);
    assert(status === 400 && body.errorType === 'bad_data', `API answered ${status} ${JSON.stringify(body)}`);
    assert(shown.includes(body.error), `shown ${JSON.stringify(shown)}, API error ${JSON.stringify(body.error)}`);
    assert(shown.startsWith('bad_data: '), `error type not shown: ${shown}`);
    // The position the API names is marked under the expression.
    const [, line, col] = /(\d+):(\d+): /.exec(body.error);
    const caret = '[data-testid="query-error"] pre.caret';
    assert((await attr(caret, 'aria-label')) === `Error at line ${line}, column ${col}`, 'no caret at the error position');
    const lines = (await text(caret)).split('\n');
    assert(lines[0] === bad && lines[1] === ' '.repeat(Number(col) - 1) + '^', `caret: ${JSON.stringify(lines)}`);
  },
  // Chromium logs the API's 400 answer as a console error; the page itself must not.
  { allow: [/status of 400/] },
);

// 6. Alerts: the firing alert, a silence created from it mutes it (API agrees), expiring it unmutes.
await step('alerts-silence', async () => {
  await page.goto(BASE + '/alerts');
  const item = `li.alert[data-alertname="${ALERT}"]`;
  await page.waitFor(item);
  assert((await attr(item, 'data-silenced')) === 'false', 'alert already silenced');
  await clickText(`${item} button`, 'Silence…');
  const matchers = await value('input[name="matchers"]');
  assert(matchers.includes(`alertname="${ALERT}"`), `prefilled matchers: ${matchers}`);
  await page.fill('input[name="duration"]', '1h');
  await page.fill('input[name="comment"]', 'browser test');
  await clickText('button', 'Create silence');
  const row = await pick('[data-testid="silence-table"] tr[data-state="active"]', 'browser test');
  const id = await attr(row, 'data-silence');
  const sil = await api(`/api/v2/silence/${id}`);
  assert(sil.body.status.state === 'active' && sil.body.comment === 'browser test', `API silence: ${JSON.stringify(sil.body)}`);
  const ends = Date.parse(sil.body.endsAt) - Date.parse(sil.body.startsAt);
  assert(Math.abs(ends - 3600e3) < 5000, `silence lasts ${ends} ms, not 1h`);
  const am = await api('/api/v2/alerts');
  const muted = am.body.filter((a) => a.labels.alertname === ALERT);
  assert(muted.length > 0 && muted.every((a) => a.status.state === 'suppressed' && a.status.silencedBy.includes(id)), `notifier alerts: ${JSON.stringify(muted.map((a) => a.status))}`);
  await clickText('[role="tab"]', 'Firing & pending', { exact: true });
  await page.waitFor(`${item}[data-silenced="true"]`);
  await shot('alerts-silenced');
  // The alert's generator URL opens Explore with the rule's expression.
  const rule = (await api('/api/v1/rules')).body.data.groups.flatMap((g) => g.rules).find((r) => r.name === ALERT);
  const graph = await pick(`${item} [data-testid="alert-graph"]`);
  assert((await attr(graph, 'href')).startsWith('/graph?g0.expr='), 'no graph link');
  await page.click(graph);
  await waitForURL((u) => u.pathname === '/graph', '/graph?…');
  assert((await value('#expr')) === rule.query, `Explore got ${await value('#expr')}, rule is ${rule.query}`);
  // Prometheus' alert links ask for the table view (g0.tab=1): the alert's series is there.
  await page.waitFor('[data-testid="result-table"]');
  assert((await text('[data-testid="result-table"]')).includes('queue_length{job="checkout"}'), 'alert series not in the table');
  await page.evaluate(() => history.back());
  await waitForURL((u) => u.pathname === '/alerts', '/alerts');
  await page.waitFor(item);
  // Rule groups as the API lists them.
  await clickText('[role="tab"]', 'Rule groups', { exact: true });
  await page.waitFor('details.group');
  const groups = (await api('/api/v1/rules')).body.data.groups;
  assert((await count('details.group')) === groups.length, 'rule group count differs');
  // Expire it.
  await clickText('[role="tab"]', 'Silences', { exact: true });
  await clickText(`tr[data-silence="${id}"] button`, 'Expire');
  await page.waitFor(`tr[data-silence="${id}"][data-state="expired"]`);
  const after = await api('/api/v2/alerts');
  assert(after.body.filter((a) => a.labels.alertname === ALERT).every((a) => a.status.state === 'active'), 'alert still suppressed after expiry');
});

// 7. Logs: lines and volume as the Loki API answers; structured metadata; trace link.
await step('logs', async () => {
  await page.goto(`${BASE}/logs?${new URLSearchParams({ query: LOG_QUERY, range: '1h' })}`);
  await page.waitFor('[data-testid="log-lines"] li');
  const ns = (ms) => String(BigInt(ms) * 1000000n);
  const end = Date.now();
  const { body } = await api(`/loki/api/v1/query_range?${new URLSearchParams({ query: LOG_QUERY, start: ns(end - 3600e3), end: ns(end), limit: '500' })}`);
  const expected = body.data.result.reduce((n, s) => n + s.values.length, 0);
  const shown = await count('[data-testid="log-lines"] > li');
  assert(shown === expected && expected > 0, `${shown} lines shown, API has ${expected}`);
  const vol = await chartData('volume-chart');
  const total = vol.data[1].reduce((a, v) => a + (v || 0), 0);
  assert(total === expected, `volume histogram sums to ${total}, expected ${expected}`);
  const first = await pick('[data-testid="log-lines"] > li', '', { has: '[data-testid="trace-link"]' });
  await page.click(`${first} button.row`);
  const details = await text(`${first} .details`);
  assert(details.includes('Structured metadata') && details.includes('trace_id='), `details: ${details}`);
  const href = await attr(`${first} [data-testid="trace-link"]`, 'href');
  assert(/^\/traces\/[0-9a-f]{32}$/.test(href), `trace link ${href}`);
});

// 8. Status: build info, TSDB top cardinality and rule files as the API gives them.
await step('status', async () => {
  await page.goto(BASE + '/status');
  await page.waitFor('[data-testid="tsdb-top"]');
  const shown = await text('main');
  const build = (await api('/api/v1/status/buildinfo')).body.data;
  assert(shown.includes(build.version) && shown.includes(build.revision), 'build info missing');
  const tsdb = (await api('/api/v1/status/tsdb')).body.data;
  assert(shown.includes(String(tsdb.headStats.numSeries)), 'series count missing');
  for (const r of tsdb.seriesCountByMetricName.slice(0, 3)) assert(shown.includes(r.name), `top metric ${r.name} missing`);
  const files = new Set((await api('/api/v1/rules')).body.data.groups.map((g) => g.file));
  for (const f of files) assert(shown.includes(f), `rule file ${f} missing`);
  await clickText('summary', 'Configuration');
  const yaml = (await api('/api/v1/status/config')).body.data.yaml;
  await page.waitFor('pre.config', { visible: true });
  assert((await textContent('pre.config')) === yaml, 'configuration differs from the API');
});

// 9. Traces (when the Tempo API is served): search results and a trace's waterfall.
await step(
  'traces',
  async () => {
    await page.goto(`${BASE}/traces?${new URLSearchParams({ q: '{}', range: '1h' })}`);
    await page.waitFor('[data-testid="trace-results"] tbody tr');
    const found = (await api(`/api/search?${new URLSearchParams({ q: '{}', limit: '50', start: String(Math.floor(Date.now() / 1000) - 3600), end: String(Math.floor(Date.now() / 1000)) })}`)).body;
    assert((await count('[data-testid="trace-results"] tbody tr')) === found.traces.length, 'trace count differs');
    await page.click(await pick('[data-testid="trace-results"] tbody tr a'));
    await page.waitFor('[data-testid="waterfall"] li');
    const id = (await page.evaluate(() => location.pathname)).split('/traces/')[1];
    const trace = (await api(`/api/v2/traces/${id}`)).body;
    const batches = (trace.trace || trace).resourceSpans || (trace.trace || trace).batches || [];
    const spans = batches.flatMap((b) => (b.scopeSpans || b.instrumentationLibrarySpans || []).flatMap((s) => s.spans || []));
    assert((await count('[data-testid="waterfall"] > li')) === spans.length, 'span count differs');
    await page.click(await pick('[data-testid="waterfall"] button'));
    const logs = await attr('[data-testid="span-logs"]', 'href');
    assert(logs.startsWith('/logs?') && logs.includes(id.padStart(32, '0')), `span logs link ${logs}`);
    if (TRACE_ID) {
      // From the error log line to its trace, and from the trace's root span to its logs.
      await page.goto(`${BASE}/logs?${new URLSearchParams({ query: LOG_QUERY, range: '1h' })}`);
      await page.click(await pick(`[data-testid="trace-link"][href="/traces/${TRACE_ID}"]`));
      await waitForURL((u) => u.pathname === `/traces/${TRACE_ID}`, `/traces/${TRACE_ID}`);
      await page.waitFor('[data-testid="waterfall"] li');
      const rows = await texts('[data-testid="waterfall"] > li');
      assert(rows.length === 3 && rows[0].includes('POST /checkout') && rows[1].includes('charge') && rows[2].includes('SELECT cards'), `waterfall: ${rows.join(' | ')}`);
      await page.click(await pick('[data-testid="waterfall"] button'));
      await page.click('[data-testid="span-logs"]');
      await waitForURL((u) => u.pathname === '/logs', '/logs?…');
      await page.waitFor('[data-testid="log-lines"] li');
      const lines = await texts('[data-testid="log-lines"] > li');
      assert(lines.length === 1 && lines[0].includes('payment failed'), `logs of the trace: ${lines.join(' | ')}`);
    }
  },
  {
    skipIf: async () => {
      if (REQUIRE_TRACES) return null;
      const r = await api('/api/search?q=%7B%7D');
      return r.status === 404 ? 'the Tempo API (/api/search) is not served by this build' : null;
    },
  },
);

// 10. Dark theme and phone width: the toggle switches colours; the SLO page fits 390 px.
await step('dark-phone', async () => {
  await page.setViewport(390, 844);
  await page.goto(BASE + '/slos');
  await page.waitFor(`tr[data-slo="${SLO_ID}"]`);
  const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.click('button.theme'); // system → light
  await page.waitFor('button.theme[aria-label="Theme: light"]');
  await page.click('button.theme'); // light → dark
  await page.waitFor('button.theme[aria-label="Theme: dark"]');
  await page.waitFor('html[data-theme="dark"]');
  const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert(light !== dark, `background unchanged (${dark})`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `page is ${overflow}px wider than the phone screen`);
  // The table scrolls sideways here; its scrollbar takes the theme's colours (Firefox draws a
  // light one on the dark page otherwise).
  const bars = await page.evaluate(() =>
    Array.from(document.querySelectorAll('.scroll'), (e) => [e.scrollWidth > e.clientWidth, getComputedStyle(e).scrollbarColor]),
  );
  const darkBar = await page.evaluate(() => {
    const css = getComputedStyle(document.documentElement);
    const probe = document.createElement('div');
    document.body.append(probe);
    const rgb = (v) => ((probe.style.color = v), getComputedStyle(probe).color);
    const out = `${rgb(css.getPropertyValue('--fg-muted'))} ${rgb(css.getPropertyValue('--bg-alt'))}`;
    probe.remove();
    return out;
  });
  assert(bars.some(([wide]) => wide), 'no sideways-scrolling table at phone width');
  assert(bars.every(([, c]) => c === darkBar), `scrollbar colours ${JSON.stringify(bars)}, dark theme's ${darkBar}`);
  await page.reload();
  await page.waitFor(`tr[data-slo="${SLO_ID}"]`);
  assert((await attr('html', 'data-theme')) === 'dark', 'theme choice not kept across reloads');
  await shot('dark-phone-slos');
  await page.goto(`${BASE}/slos/${SLO_ID}`);
  await chartData('burn-chart');
  const overflow2 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow2 <= 1, `SLO page is ${overflow2}px wider than the phone screen`);
});

// 11. Keyboard: Tab reaches the navigation, Enter follows it.
await step('keyboard-navigation', async () => {
  await page.setViewport(1280, 800);
  await page.goto(BASE + '/slos');
  await page.waitFor('tr[data-slo]');
  let reached = false;
  for (let i = 0; i < 12 && !reached; i++) {
    await page.press('Tab');
    reached = await page.evaluate(() => !!document.activeElement && document.activeElement.textContent === 'Explore');
  }
  assert(reached, 'Tab never reached the Explore link');
  await page.press('Enter');
  await waitForURL((u) => u.pathname === '/explore', '/explore');
  await page.waitFor('#expr');
});

await step('same-origin-only', async () => {
  assert(foreignRequests.length === 0, `requests to other hosts: ${foreignRequests.join(', ')}`);
});

await page.close();
writeFileSync(join(ART, 'results.json'), JSON.stringify({ base: BASE, browser: BROWSER, version: page.version, results, consoleErrors }, null, 2));
const passed = results.filter((r) => r.status === 'passed').length;
const failed = results.filter((r) => r.status === 'failed').length;
const skipped = results.filter((r) => r.status === 'skipped').length;
console.log(`ui-console: screenshots and results.json in ${ART}`);
console.log(`${BROWSER}: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
