// Alerts: what is firing or pending (rules' alerts from /api/v1/alerts, with the notifier's
// silenced state from /api/v2/alerts), rule groups with their last evaluation and errors, and
// silences (create with matchers and a duration, expire) through the Alertmanager v2 API.
import { useState } from 'preact/hooks';
import { prom, fetchJSON, fmtTime, humanDuration, parseDuration, num, nowSec } from '../api.js';
import { useData, Loaded, Labels, ErrorBox, Tabs } from '../util.jsx';
import { parseMatchers, matcherText } from '../matchers.js';

/** Notifier state per alert fingerprint-less key (sorted labels). */
const labelKey = (labels) =>
  JSON.stringify(
    Object.keys(labels)
      .sort()
      .map((k) => [k, labels[k]]),
  );

/** The alert's generator URL (`…/graph?g0.expr=…`) as a console path, opening Explore. */
function graphLink(a) {
  const gen = a.notifier && a.notifier.generatorURL;
  if (!gen) return null;
  try {
    const u = new URL(gen, window.location.href);
    return u.pathname.endsWith('/graph') ? `/graph${u.search}` : null;
  } catch {
    return null;
  }
}

function AlertList({ onSilence }) {
  const state = useData(async () => {
    const [rules, am] = await Promise.all([prom('/api/v1/alerts'), fetchJSON('/api/v2/alerts').catch(() => [])]);
    const notified = new Map((am || []).map((a) => [labelKey(a.labels), a]));
    return rules.alerts.map((a) => ({ ...a, notifier: notified.get(labelKey(a.labels)) }));
  }, [], 30000);
  return (
    <Loaded state={state} what="alerts">
      {(alerts) =>
        alerts.length === 0 ? (
          <p class="muted">Nothing is firing or pending.</p>
        ) : (
          <ul class="alerts plain" data-testid="alert-list">
            {alerts
              .sort((a, b) => (a.state === b.state ? (a.labels.alertname || '').localeCompare(b.labels.alertname || '') : a.state === 'firing' ? -1 : 1))
              .map((a) => {
                const silenced = a.notifier && a.notifier.status && a.notifier.status.state === 'suppressed';
                return (
                  <li class="alert" data-alertname={a.labels.alertname} data-silenced={silenced ? 'true' : 'false'}>
                    <div>
                      <span class={`badge ${a.state}`}>{a.state}</span>
                      {silenced && (
                        <span class="badge silenced" title={`silenced by ${(a.notifier.status.silencedBy || []).join(', ')}`}>
                          silenced
                        </span>
                      )}{' '}
                      <b>{a.labels.alertname}</b> <span class="muted small">since {fmtTime(a.activeAt)} · value {num(a.value)}</span>{' '}
                      <button type="button" class="link" onClick={() => onSilence(a.labels)}>
                        Silence…
                      </button>
                      {graphLink(a) && (
                        <a class="small" href={graphLink(a)} data-testid="alert-graph">
                          Graph
                        </a>
                      )}
                    </div>
                    <Labels labels={a.labels} skip={['alertname']} />
                    {Object.keys(a.annotations || {}).length > 0 && (
                      <dl class="annotations">
                        {Object.entries(a.annotations).map(([k, v]) => (
                          <div>
                            <dt>{k}</dt>
                            <dd>{/^https?:\/\//.test(v) ? <a href={v}>{v}</a> : v}</dd>
                          </div>
                        ))}
                      </dl>
                    )}
                  </li>
                );
              })}
          </ul>
        )
      }
    </Loaded>
  );
}

function RuleGroups() {
  const state = useData(() => prom('/api/v1/rules'), []);
  return (
    <Loaded state={state} what="rule groups">
      {(data) =>
        data.groups.length === 0 ? (
          <p class="muted">No rule groups are loaded.</p>
        ) : (
          data.groups.map((g) => (
            <details class="group" open={g.rules.some((r) => r.health === 'err' || r.state === 'firing')}>
              <summary>
                <b>{g.name}</b> <span class="muted small">{g.file}</span> · every {humanDuration(g.interval)} · last {fmtTime(g.lastEvaluation)} in {humanDuration(g.evaluationTime)}
                {g.rules.some((r) => r.health === 'err') && <span class="badge firing">errors</span>}
              </summary>
              <div class="scroll">
                <table>
                  <thead>
                    <tr>
                      <th>Rule</th>
                      <th>State</th>
                      <th>Health</th>
                      <th>Last evaluation</th>
                    </tr>
                  </thead>
                  <tbody>
                    {g.rules.map((r) => (
                      <tr>
                        <td>
                          <div>
                            <b>{r.type === 'alerting' ? 'alert' : 'record'}: {r.name}</b>
                          </div>
                          <a class="mono small" href={`/explore?${new URLSearchParams({ expr: r.query, range: '1h' })}`}>
                            {r.query}
                          </a>
                        </td>
                        <td>{r.type === 'alerting' ? <span class={`badge ${r.state}`}>{r.state}</span> : ''}</td>
                        <td>
                          {r.health}
                          {r.lastError && <div class="error small">{r.lastError}</div>}
                        </td>
                        <td class="small">
                          {fmtTime(r.lastEvaluation)} ({humanDuration(r.evaluationTime)})
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </details>
          ))
        )
      }
    </Loaded>
  );
}

function SilenceForm({ initial, onCreated }) {
  const [matchers, setMatchers] = useState(initial || '');
  const [duration, setDuration] = useState('2h');
  const [createdBy, setCreatedBy] = useState('console');
  const [comment, setComment] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const ms = parseMatchers(matchers);
      const secs = parseDuration(duration);
      if (!(secs > 0)) throw new Error(`invalid duration ${JSON.stringify(duration)} (e.g. 30m, 2h, 1d)`);
      const start = nowSec();
      setBusy(true);
      const r = await fetchJSON('/api/v2/silences', {
        method: 'POST',
        body: { matchers: ms, startsAt: new Date(start * 1000).toISOString(), endsAt: new Date((start + secs) * 1000).toISOString(), createdBy, comment: comment || `silenced from the console for ${duration}` },
      });
      setBusy(false);
      onCreated(r.silenceID);
    } catch (err) {
      setBusy(false);
      setError(err);
    }
  };
  return (
    <form class="silence-form" onSubmit={submit} data-testid="silence-form">
      <label>
        Matchers
        <input name="matchers" value={matchers} onInput={(e) => setMatchers(e.target.value)} placeholder='alertname="HighLatency", severity=~"page|ticket"' required />
      </label>
      <label>
        Duration
        <input name="duration" value={duration} size={6} onInput={(e) => setDuration(e.target.value)} />
      </label>
      <label>
        Created by
        <input name="createdBy" value={createdBy} onInput={(e) => setCreatedBy(e.target.value)} />
      </label>
      <label>
        Comment
        <input name="comment" value={comment} onInput={(e) => setComment(e.target.value)} />
      </label>
      <button type="submit" class="primary" disabled={busy}>
        Create silence
      </button>
      {error && <ErrorBox error={error} />}
    </form>
  );
}

function Silences({ prefill, version, bump }) {
  const state = useData(() => fetchJSON('/api/v2/silences'), [version]);
  const [error, setError] = useState(null);
  const expire = async (id) => {
    try {
      await fetchJSON(`/api/v2/silence/${encodeURIComponent(id)}`, { method: 'DELETE' });
      bump();
    } catch (e) {
      setError(e);
    }
  };
  const order = { active: 0, pending: 1, expired: 2 };
  return (
    <div>
      <SilenceForm key={prefill} initial={prefill} onCreated={bump} />
      {error && <ErrorBox error={error} />}
      <Loaded state={state} what="silences">
        {(silences) =>
          silences.length === 0 ? (
            <p class="muted">No silences.</p>
          ) : (
            <div class="scroll">
              <table data-testid="silence-table">
                <thead>
                  <tr>
                    <th>State</th>
                    <th>Matchers</th>
                    <th>Ends</th>
                    <th>Created by</th>
                    <th>Comment</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {[...silences]
                    .sort((a, b) => (order[a.status.state] ?? 3) - (order[b.status.state] ?? 3) || b.endsAt.localeCompare(a.endsAt))
                    .map((s) => (
                      <tr data-silence={s.id} data-state={s.status.state}>
                        <td>
                          <span class={`badge ${s.status.state}`}>{s.status.state}</span>
                        </td>
                        <td class="mono small">{s.matchers.map(matcherText).join(', ')}</td>
                        <td class="small">{fmtTime(s.endsAt)}</td>
                        <td>{s.createdBy}</td>
                        <td>{s.comment}</td>
                        <td>
                          {s.status.state !== 'expired' && (
                            <button type="button" onClick={() => expire(s.id)}>
                              Expire
                            </button>
                          )}
                        </td>
                      </tr>
                    ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </div>
  );
}

export function Alerts() {
  const [tab, setTab] = useState('alerts');
  const [prefill, setPrefill] = useState('');
  const [version, setVersion] = useState(0);
  const bump = () => setVersion((v) => v + 1);
  const silence = (labels) => {
    const keep = ['alertname', 'severity', 'sloth_id', 'sloth_severity', 'job', 'service'];
    const ks = Object.keys(labels).filter((k) => keep.includes(k));
    setPrefill((ks.length ? ks : Object.keys(labels)).map((k) => `${k}=${JSON.stringify(labels[k])}`).join(', '));
    setTab('silences');
  };
  return (
    <section>
      <h1>Alerts</h1>
      <Tabs
        label="Alerts sections"
        tabs={[
          ['alerts', 'Firing & pending'],
          ['rules', 'Rule groups'],
          ['silences', 'Silences'],
        ]}
        value={tab}
        onChange={setTab}
      />
      {tab === 'alerts' && <AlertList key={version} onSilence={silence} />}
      {tab === 'rules' && <RuleGroups />}
      {tab === 'silences' && <Silences prefill={prefill} version={version} bump={bump} />}
    </section>
  );
}
