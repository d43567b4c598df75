// Browser test of the Sextant console: Debian's chromium driven by playwright-core against a
// running, seeded Sextant. Run by tests/ui_e2e.rs (which starts and seeds the server), or by
// hand:
//   SEXTANT_URL=http://127.0.0.1:9090 SLO_ID=checkout-requests-availability \
//   ALERT_NAME=QueueTooLong LOG_QUERY='{service_name="checkout"}' node ui/tests/console.mjs
// Every step checks what the page shows against the API's own answer and that the page logged
// no console error; screenshots go to $UI_ARTIFACTS (default target/ui-artifacts). Writes
// results.json there and ends with "N passed, N failed"; exits 1 when a step failed.
import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BASE = (process.env.SEXTANT_URL || 'http://127.0.0.1:9090').replace(/\/$/, '');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ART = resolve(process.env.UI_ARTIFACTS || 'target/ui-artifacts');
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

/** Runs one named step; `allow` lists console-error patterns this step provokes on purpose. */
async function step(page, name, fn, { allow = [], skipIf } = {}) {
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
    await page.waitForTimeout(200);
    const errs = consoleErrors.slice(before).filter((e) => !allow.some((re) => re.test(e)));
    assert(errs.length === 0, `console errors: ${errs.join(' | ')}`);
    results.push({ name, status: 'passed', ms: Date.now() - t0 });
    console.log(`ui-console: PASS ${name}`);
  } catch (e) {
    results.push({ name, status: 'failed', error: String(e && e.stack ? e.stack : e) });
    console.log(`ui-console: FAIL ${name}: ${e && e.message}`);
  }
  try {
    await page.screenshot({ path: join(ART, `${String(results.length).padStart(2, '0')}-${name}.png`), fullPage: true });
  } catch (e) {
    console.log(`ui-console: screenshot of ${name} failed: ${e.message}`);
  }
}

/** An extra screenshot in the middle of a step. */
async function shot(page, name) {
  await page.screenshot({ path: join(ART, `${name}.png`), fullPage: true });
}

/** The uPlot data drawn in the chart `testId`, with series labels. */
async function chartData(page, testId) {
  const sel = `[data-testid="${testId}"]`;
  await page.waitForFunction((s) => document.querySelector(s) && document.querySelector(s).uplot, sel, { timeout: 15000 });
  return page.evaluate((s) => {
    const u = document.querySelector(s).uplot;
    const canvas = document.querySelector(`${s} canvas`);
    return { labels: u.series.slice(1).map((x) => x.label), data: u.data.map((a) => Array.from(a)), canvas: canvas ? [canvas.width, canvas.height] : null };
  }, sel);
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

const userDataDir = mkdtempSync(join(tmpdir(), 'sextant-ui-chromium-'));
// A persistent context is how playwright takes a fresh --user-data-dir.
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 800 },
  colorScheme: 'light',
});
const page = context.pages()[0] || (await context.newPage());
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(`${m.text()} @ ${page.url()}`));
page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message} @ ${page.url()}`));
page.on('request', (r) => {
  const u = r.url();
  if (!u.startsWith(BASE + '/') && !u.startsWith('data:')) foreignRequests.push(u);
});
page.setDefaultTimeout(15000);

// 1. SLO overview: the row's budget bar, burn rates and alert state agree with /api/v1/slos.
await step(page, 'slo-overview', async () => {
  await page.goto(BASE + '/');
  await page.waitForSelector(`tr[data-slo="${SLO_ID}"]`);
  const { body } = await api('/api/v1/slos');
  const slo = body.data.find((s) => s.id === SLO_ID);
  assert(slo, `SLO ${SLO_ID} not in the API`);
  const row = page.locator(`tr[data-slo="${SLO_ID}"]`);
  const now = await row.locator('[role="meter"]').getAttribute('aria-valuenow');
  assert(slo.budget.remaining !== null, 'the API has no budget figure');
  assert(Math.abs(Number(now) - Math.round(slo.budget.remaining * 100)) <= 1, `budget bar ${now}, API ${slo.budget.remaining}`);
  const text = await row.innerText();
  assert(slo.burnRates['5m'] > 1, `the seeded SLO should burn (API 5m burn ${slo.burnRates['5m']})`);
  assert(text.includes(`${String(Number(slo.burnRates['1h'].toPrecision(4)))}×`), `1h burn ${slo.burnRates['1h']} not shown in: ${text}`);
  const firing = slo.alerts.filter((a) => a.state === 'firing');
  assert(firing.length > 0, 'the seeded SLO has no firing alert in the API');
  assert(text.includes(`${firing[0].severity} firing`), `firing alert not shown in: ${text}`);
});

// 2. The SLO page: burn-rate chart with thresholds, burndown; its link carries the query to Explore.
await step(page, 'slo-page-to-explore', async () => {
  await page.click(`tr[data-slo="${SLO_ID}"] a`);
  await page.waitForURL(`**/slos/${SLO_ID}`);
  const burn = await chartData(page, 'burn-chart');
  assert(burn.labels.includes('burn 5m') && burn.labels.some((l) => l.startsWith('14.4×')), `burn chart series: ${burn.labels}`);
  const th = burn.data[burn.labels.findIndex((l) => l.startsWith('14.4×')) + 1];
  assert(th.every((v) => v === 14.4), 'the page threshold line is not at 14.4');
  // The burndown's points are the SLO API's figures at their instants; the last is now's.
  const down = await chartData(page, 'burndown-chart');
  assert(down.data[0].length === 31, `burndown has ${down.data[0].length} points`);
  for (const i of [15, 30]) {
    const t = down.data[0][i];
    const at = (await api(`/api/v1/slos/${SLO_ID}?time=${t}`)).body.data.budget.remaining;
    assert(at === null ? down.data[1][i] === null : near(down.data[1][i], at), `burndown at ${t}: drawn ${down.data[1][i]}, API ${at}`);
  }
  await shot(page, 'slo-page');
  const href = await page.getAttribute('[data-testid="explore-sli"]', 'href');
  const expected = `slo:sli_error:ratio_rate5m{sloth_id="${SLO_ID}"}`;
  await page.click('[data-testid="explore-sli"]');
  await page.waitForURL('**/explore?**');
  const value = await page.inputValue('#expr');
  assert(value === expected, `Explore got ${JSON.stringify(value)} from ${href}, expected ${expected}`);
  const drawn = await chartData(page, 'explore-chart');
  const meta = page.locator('[data-testid="result-meta"]');
  const [start, end, stepS] = await Promise.all(['data-start', 'data-end', 'data-step'].map((a) => meta.getAttribute(a)));
  const { body } = await api(`/api/v1/query_range?${new URLSearchParams({ query: expected, start, end, step: stepS })}`);
  compareMatrix(drawn, body.data.result, seriesName);
});

// 3. A PromQL query draws a chart whose points are the API's; the table matches an instant query.
await step(page, 'explore-chart-matches-api', async () => {
  await page.goto(`${BASE}/explore?${new URLSearchParams({ expr: METRIC_QUERY, range: '1h' })}`);
  const drawn = await chartData(page, 'explore-chart');
  assert(drawn.canvas && drawn.canvas[0] > 0 && drawn.canvas[1] > 0, 'no canvas');
  const meta = page.locator('[data-testid="result-meta"]');
  const [start, end, stepS] = await Promise.all(['data-start', 'data-end', 'data-step'].map((a) => meta.getAttribute(a)));
  const { body } = await api(`/api/v1/query_range?${new URLSearchParams({ query: METRIC_QUERY, start, end, step: stepS })}`);
  const points = compareMatrix(drawn, body.data.result, seriesName);
  assert(points > 10, `only ${points} points compared`);
  // Stacked view (the query runs again, ending now): the top series is the API's sum.
  await page.check('text=Stacked');
  await page.waitForURL('**stacked=1**');
  await page.waitForSelector('button.primary:has-text("Run query")');
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
  await page.getByRole('tab', { name: 'Table' }).click();
  await page.waitForSelector('[data-testid="result-table"]');
  const rows = await page.locator('[data-testid="result-table"] tbody tr').allInnerTexts();
  const inst = await api(`/api/v1/query?${new URLSearchParams({ query: METRIC_QUERY, time: end })}`);
  assert(rows.length === inst.body.data.result.length, `table has ${rows.length} rows, API ${inst.body.data.result.length}`);
  for (const r of inst.body.data.result) assert(rows.some((row) => row.includes(seriesName(r.metric)) && row.includes(r.value[1])), `row ${seriesName(r.metric)} = ${r.value[1]} missing`);
});

// 4. Autocomplete from the keyboard: metric name, label name, label value.
await step(page, 'explore-autocomplete', async () => {
  await page.goto(`${BASE}/explore`);
  const ed = page.locator('#expr');
  await ed.click();
  await ed.pressSequentially('http_req');
  await page.waitForSelector('#completions li:has-text("http_requests_total")');
  await page.keyboard.press('Tab');
  assert((await ed.inputValue()) === 'http_requests_total', `after Tab: ${await ed.inputValue()}`);
  await ed.pressSequentially('{co');
  await page.waitForSelector('#completions li:has-text("code")');
  await page.keyboard.press('Enter');
  assert((await ed.inputValue()) === 'http_requests_total{code="', `after label: ${await ed.inputValue()}`);
  await ed.pressSequentially('5');
  await page.waitForSelector('#completions li:has-text("500")');
  await shot(page, 'explore-completions');
  await page.keyboard.press('Enter');
  assert((await ed.inputValue()) === 'http_requests_total{code="500"', `after value: ${await ed.inputValue()}`);
  await ed.pressSequentially('}');
  await page.keyboard.press('Escape');
  await page.keyboard.press('Enter');
  await page.waitForURL('**expr=http_requests_total**');
  await chartData(page, 'explore-chart');
});

// 5. A syntax error is shown as the API gives it, with its position.
await step(
  page,
  'explore-error',
  async () => {
    const bad = 'sum(rate(http_requests_total[5m])';
    await page.goto(`${BASE}/explore?${new URLSearchParams({ expr: bad, range: '1h' })}`);
    await page.waitForSelector('[data-testid="query-error"]');
    const shown = await page.innerText('[data-testid="query-error"] [role="alert"]');
    const { status, body } = await api(`/api/v1/query?${new URLSearchParams({ query: bad })}`);
    assert(status === 400 && body.errorType === 'bad_data', `API answered ${status} ${JSON.stringify(body)}`);
    assert(shown.includes(body.error), `shown ${JSON.stringify(shown)}, API error ${JSON.stringify(body.error)}`);
    assert(shown.startsWith('bad_data: '), `error type not shown: ${shown}`);
    // The position the API names is marked under the expression.
    const [, line, col] = /(\d+):(\d+): /.exec(body.error);
    const caret = page.locator('[data-testid="query-error"] pre.caret');
    assert((await caret.getAttribute('aria-label')) === `Error at line ${line}, column ${col}`, 'no caret at the error position');
    const lines = (await caret.innerText()).split('\n');
    assert(lines[0] === bad && lines[1] === ' '.repeat(Number(col) - 1) + '^', `caret: ${JSON.stringify(lines)}`);
  },
  { allow: [/status of 400/] },
);

// 6. Alerts: the firing alert, a silence created from it mutes it (API agrees), expiring it unmutes.
await step(page, 'alerts-silence', async () => {
  await page.goto(BASE + '/alerts');
  const item = page.locator(`li.alert[data-alertname="${ALERT}"]`).first();
  await item.waitFor();
  assert((await item.getAttribute('data-silenced')) === 'false', 'alert already silenced');
  await item.getByRole('button', { name: 'Silence…' }).click();
  const matchers = await page.inputValue('input[name="matchers"]');
  assert(matchers.includes(`alertname="${ALERT}"`), `prefilled matchers: ${matchers}`);
  await page.fill('input[name="duration"]', '1h');
  await page.fill('input[name="comment"]', 'browser test');
  await page.click('text=Create silence');
  const row = page.locator('[data-testid="silence-table"] tr[data-state="active"]', { hasText: 'browser test' });
  await row.waitFor();
  const id = await row.getAttribute('data-silence');
  const sil = await api(`/api/v2/silence/${id}`);
  assert(sil.body.status.state === 'active' && sil.body.comment === 'browser test', `API silence: ${JSON.stringify(sil.body)}`);
  const ends = Date.parse(sil.body.endsAt) - Date.parse(sil.body.startsAt);
  assert(Math.abs(ends - 3600e3) < 5000, `silence lasts ${ends} ms, not 1h`);
  const am = await api('/api/v2/alerts');
  const muted = am.body.filter((a) => a.labels.alertname === ALERT);
  assert(muted.length > 0 && muted.every((a) => a.status.state === 'suppressed' && a.status.silencedBy.includes(id)), `notifier alerts: ${JSON.stringify(muted.map((a) => a.status))}`);
  await page.getByRole('tab', { name: 'Firing & pending' }).click();
  await page.locator(`li.alert[data-alertname="${ALERT}"][data-silenced="true"]`).first().waitFor();
  await shot(page, 'alerts-silenced');
  // The alert's generator URL opens Explore with the rule's expression.
  const rule = (await api('/api/v1/rules')).body.data.groups.flatMap((g) => g.rules).find((r) => r.name === ALERT);
  const graph = page.locator(`li.alert[data-alertname="${ALERT}"] [data-testid="alert-graph"]`).first();
  assert((await graph.getAttribute('href')).startsWith('/graph?g0.expr='), 'no graph link');
  await graph.click();
  await page.waitForURL('**/graph?**');
  assert((await page.inputValue('#expr')) === rule.query, `Explore got ${await page.inputValue('#expr')}, rule is ${rule.query}`);
  // Prometheus' alert links ask for the table view (g0.tab=1): the alert's series is there.
  await page.waitForSelector('[data-testid="result-table"]');
  assert((await page.innerText('[data-testid="result-table"]')).includes('queue_length{job="checkout"}'), 'alert series not in the table');
  await page.goBack();
  await page.locator(`li.alert[data-alertname="${ALERT}"]`).first().waitFor();
  // Rule groups as the API lists them.
  await page.getByRole('tab', { name: 'Rule groups' }).click();
  await page.waitForSelector('details.group');
  const groups = (await api('/api/v1/rules')).body.data.groups;
  assert((await page.locator('details.group').count()) === groups.length, 'rule group count differs');
  // Expire it.
  await page.getByRole('tab', { name: 'Silences' }).click();
  await page.locator(`tr[data-silence="${id}"] button:has-text("Expire")`).click();
  await page.locator(`tr[data-silence="${id}"][data-state="expired"]`).waitFor();
  const after = await api('/api/v2/alerts');
  assert(after.body.filter((a) => a.labels.alertname === ALERT).every((a) => a.status.state === 'active'), 'alert still suppressed after expiry');
});

// 7. Logs: lines and volume as the Loki API answers; structured metadata; trace link.
await step(
  page,
  'logs',
  async () => {
    await page.goto(`${BASE}/logs?${new URLSearchParams({ query: LOG_QUERY, range: '1h' })}`);
    await page.waitForSelector('[data-testid="log-lines"] li');
    const ns = (ms) => String(BigInt(ms) * 1000000n);
    const end = Date.now();
    const { body } = await api(`/loki/api/v1/query_range?${new URLSearchParams({ query: LOG_QUERY, start: ns(end - 3600e3), end: ns(end), limit: '500' })}`);
    const expected = body.data.result.reduce((n, s) => n + s.values.length, 0);
    const shown = await page.locator('[data-testid="log-lines"] > li').count();
    assert(shown === expected && expected > 0, `${shown} lines shown, API has ${expected}`);
    const vol = await chartData(page, 'volume-chart');
    const total = vol.data[1].reduce((a, v) => a + (v || 0), 0);
    assert(total === expected, `volume histogram sums to ${total}, expected ${expected}`);
    const first = page.locator('[data-testid="log-lines"] > li', { has: page.locator('[data-testid="trace-link"]') }).first();
    await first.locator('button.row').click();
    const details = await first.locator('.details').innerText();
    assert(details.includes('Structured metadata') && details.includes('trace_id='), `details: ${details}`);
    const href = await first.locator('[data-testid="trace-link"]').getAttribute('href');
    assert(/^\/traces\/[0-9a-f]{32}$/.test(href), `trace link ${href}`);
  },
  {},
);

// 8. Status: build info, TSDB top cardinality and rule files as the API gives them.
await step(page, 'status', async () => {
  await page.goto(BASE + '/status');
  await page.waitForSelector('[data-testid="tsdb-top"]');
  const text = await page.innerText('main');
  const build = (await api('/api/v1/status/buildinfo')).body.data;
  assert(text.includes(build.version) && text.includes(build.revision), 'build info missing');
  const tsdb = (await api('/api/v1/status/tsdb')).body.data;
  assert(text.includes(String(tsdb.headStats.numSeries)), 'series count missing');
  for (const r of tsdb.seriesCountByMetricName.slice(0, 3)) assert(text.includes(r.name), `top metric ${r.name} missing`);
  const files = new Set((await api('/api/v1/rules')).body.data.groups.map((g) => g.file));
  for (const f of files) assert(text.includes(f), `rule file ${f} missing`);
  await page.click('summary:has-text("Configuration")');
  const yaml = (await api('/api/v1/status/config')).body.data.yaml;
  await page.waitForSelector('pre.config', { state: 'visible' });
  assert((await page.textContent('pre.config')) === yaml, 'configuration differs from the API');
});

// 9. Traces (when the Tempo API is served): search results and a trace's waterfall.
await step(
  page,
  'traces',
  async () => {
    await page.goto(`${BASE}/traces?${new URLSearchParams({ q: '{}', range: '1h' })}`);
    await page.waitForSelector('[data-testid="trace-results"] tbody tr');
    const found = (await api(`/api/search?${new URLSearchParams({ q: '{}', limit: '50', start: String(Math.floor(Date.now() / 1000) - 3600), end: String(Math.floor(Date.now() / 1000)) })}`)).body;
    assert((await page.locator('[data-testid="trace-results"] tbody tr').count()) === found.traces.length, 'trace count differs');
    await page.locator('[data-testid="trace-results"] tbody tr a').first().click();
    await page.waitForSelector('[data-testid="waterfall"] li');
    const id = page.url().split('/traces/')[1];
    const trace = (await api(`/api/v2/traces/${id}`)).body;
    const batches = (trace.trace || trace).resourceSpans || (trace.trace || trace).batches || [];
    const spans = batches.flatMap((b) => (b.scopeSpans || b.instrumentationLibrarySpans || []).flatMap((s) => s.spans || []));
    assert((await page.locator('[data-testid="waterfall"] > li').count()) === spans.length, 'span count differs');
    await page.locator('[data-testid="waterfall"] button').first().click();
    const logs = await page.getAttribute('[data-testid="span-logs"]', 'href');
    assert(logs.startsWith('/logs?') && logs.includes(id.padStart(32, '0')), `span logs link ${logs}`);
    if (TRACE_ID) {
      // From the error log line to its trace, and from the trace's root span to its logs.
      await page.goto(`${BASE}/logs?${new URLSearchParams({ query: LOG_QUERY, range: '1h' })}`);
      await page.locator(`[data-testid="trace-link"][href="/traces/${TRACE_ID}"]`).click();
      await page.waitForURL(`**/traces/${TRACE_ID}`);
      await page.waitForSelector('[data-testid="waterfall"] li');
      const rows = await page.locator('[data-testid="waterfall"] > li').allInnerTexts();
      assert(rows.length === 3 && rows[0].includes('POST /checkout') && rows[1].includes('charge') && rows[2].includes('SELECT cards'), `waterfall: ${rows.join(' | ')}`);
      await page.locator('[data-testid="waterfall"] button').first().click();
      await page.click('[data-testid="span-logs"]');
      await page.waitForSelector('[data-testid="log-lines"] li');
      const lines = await page.locator('[data-testid="log-lines"] > li').allInnerTexts();
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
await step(page, 'dark-phone', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(BASE + '/slos');
  await page.waitForSelector(`tr[data-slo="${SLO_ID}"]`);
  const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.click('button.theme'); // system → light
  await page.waitForSelector('button.theme[aria-label="Theme: light"]');
  await page.click('button.theme'); // light → dark
  await page.waitForSelector('button.theme[aria-label="Theme: dark"]');
  await page.waitForSelector('html[data-theme="dark"]', { state: 'attached' });
  const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert(light !== dark, `background unchanged (${dark})`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `page is ${overflow}px wider than the phone screen`);
  await page.reload();
  await page.waitForSelector(`tr[data-slo="${SLO_ID}"]`);
  assert((await page.getAttribute('html', 'data-theme')) === 'dark', 'theme choice not kept across reloads');
  await page.screenshot({ path: join(ART, 'dark-phone-slos.png'), fullPage: true });
  await page.goto(`${BASE}/slos/${SLO_ID}`);
  await chartData(page, 'burn-chart');
  const overflow2 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow2 <= 1, `SLO page is ${overflow2}px wider than the phone screen`);
});

// 11. Keyboard: Tab reaches the navigation, Enter follows it.
await step(page, 'keyboard-navigation', async () => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(BASE + '/slos');
  await page.waitForSelector('tr[data-slo]');
  let reached = false;
  for (let i = 0; i < 12 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement && document.activeElement.textContent === 'Explore');
  }
  assert(reached, 'Tab never reached the Explore link');
  await page.keyboard.press('Enter');
  await page.waitForURL('**/explore');
  await page.waitForSelector('#expr');
});

await step(page, 'same-origin-only', async () => {
  assert(foreignRequests.length === 0, `requests to other hosts: ${foreignRequests.join(', ')}`);
});

await context.close();
rmSync(userDataDir, { recursive: true, force: true });
writeFileSync(join(ART, 'results.json'), JSON.stringify({ base: BASE, results, consoleErrors }, null, 2));
const passed = results.filter((r) => r.status === 'passed').length;
const failed = results.filter((r) => r.status === 'failed').length;
const skipped = results.filter((r) => r.status === 'skipped').length;
console.log(`ui-console: screenshots and results.json in ${ART}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
