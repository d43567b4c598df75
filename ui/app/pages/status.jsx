// Status: build and runtime information, scrape targets, TSDB statistics (series, top
// cardinality), the loaded rule files, flags and the configuration (secrets redacted by the
// server).
import { prom, fmtTime, humanDuration } from '../api.js';
import { useData, Loaded, Labels } from '../util.jsx';

function KV({ obj }) {
  return (
    <dl class="kv">
      {Object.entries(obj || {}).map(([k, v]) => (
        <div>
          <dt>{k}</dt>
          <dd class="mono">{typeof v === 'object' ? JSON.stringify(v) : String(v)}</dd>
        </div>
      ))}
    </dl>
  );
}

function Top({ title, rows }) {
  return (
    <div>
      <h3>{title}</h3>
      <table class="compact">
        <tbody>
          {(rows || []).map((r) => (
            <tr>
              <td class="mono">{r.name}</td>
              <td class="num">{r.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Status() {
  const state = useData(async () => {
    const get = (p) => prom(p).catch((e) => ({ error: e.message }));
    const [build, runtime, flags, config, tsdb, targets, rules] = await Promise.all(
      ['/api/v1/status/buildinfo', '/api/v1/status/runtimeinfo', '/api/v1/status/flags', '/api/v1/status/config', '/api/v1/status/tsdb', '/api/v1/targets', '/api/v1/rules'].map(get),
    );
    return { build, runtime, flags, config, tsdb, targets, rules };
  }, []);
  return (
    <section>
      <h1>Status</h1>
      <Loaded state={state} what="status">
        {(s) => (
          <div class="status">
            <h2>Build</h2>
            <KV obj={s.build} />
            <h2>Runtime</h2>
            <KV obj={s.runtime} />
            <h2>Scrape targets</h2>
            {s.targets.error ? (
              <p class="error">{s.targets.error}</p>
            ) : (s.targets.activeTargets || []).length === 0 ? (
              <p class="muted">No scrape targets (data arrives by remote write, OTLP or Loki push).</p>
            ) : (
              <div class="scroll">
                <table data-testid="targets">
                  <thead>
                    <tr>
                      <th>Endpoint</th>
                      <th>Health</th>
                      <th>Labels</th>
                      <th>Last scrape</th>
                      <th>Error</th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.targets.activeTargets.map((t) => (
                      <tr>
                        <td class="mono small">{t.scrapeUrl}</td>
                        <td>
                          <span class={`badge ${t.health === 'up' ? 'ok' : 'firing'}`}>{t.health}</span>
                        </td>
                        <td>
                          <Labels labels={t.labels} />
                        </td>
                        <td class="small">
                          {fmtTime(t.lastScrape)} ({humanDuration(t.lastScrapeDuration)})
                        </td>
                        <td class="error small">{t.lastError}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <h2>TSDB</h2>
            {s.tsdb.error ? (
              <p class="error">{s.tsdb.error}</p>
            ) : (
              <div>
                <KV obj={{ ...s.tsdb.headStats, minTime: fmtTime(s.tsdb.headStats.minTime / 1000), maxTime: fmtTime(s.tsdb.headStats.maxTime / 1000) }} />
                <div class="grid" data-testid="tsdb-top">
                  <Top title="Series by metric name" rows={s.tsdb.seriesCountByMetricName} />
                  <Top title="Values by label name" rows={s.tsdb.labelValueCountByLabelName} />
                  <Top title="Series by label pair" rows={s.tsdb.seriesCountByLabelValuePair} />
                  <Top title="Memory by label name (bytes)" rows={s.tsdb.memoryInBytesByLabelName} />
                </div>
              </div>
            )}
            <h2>Rule files</h2>
            {s.rules.error ? (
              <p class="error">{s.rules.error}</p>
            ) : (
              <ul class="plain mono small">
                {[...new Set((s.rules.groups || []).map((g) => g.file))].sort().map((f) => (
                  <li>{f}</li>
                ))}
              </ul>
            )}
            <h2>Flags</h2>
            <KV obj={s.flags} />
            <details>
              <summary>
                <h2 class="inline">Configuration</h2>
              </summary>
              <pre class="config">{s.config.yaml || s.config.error}</pre>
            </details>
          </div>
        )}
      </Loaded>
    </section>
  );
}
