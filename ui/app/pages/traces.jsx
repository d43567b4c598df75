// Traces: TraceQL search through Tempo's API (`/api/search?q=…`) and one trace's span
// waterfall (`/api/v2/traces/<id>`, OTLP JSON) with each span's attributes and a link to the
// span's logs.
import { useEffect, useState } from 'preact/hooks';
import { fetchJSON, nowSec, parseDuration, fmtTime, quote } from '../api.js';
import { navigate } from '../router.js';
import { useData, Loaded, Labels, RANGES } from '../util.jsx';
import { flattenTrace } from '../trace.js';

export function Traces({ params }) {
  const q = params.get('q') || '{}';
  const range = params.get('range') || '1h';
  const [draft, setDraft] = useState(q);
  useEffect(() => setDraft(q), [q]);
  const key = params.toString();
  const state = useData(async () => {
    const end = Math.floor(nowSec());
    const start = end - (parseDuration(range) || 3600);
    return fetchJSON('/api/search', { params: { q, limit: 50, start, end } });
  }, [key]);
  const go = (patch) => navigate(`/traces?${new URLSearchParams({ q: draft, range, ...patch })}`);
  return (
    <section>
      <h1>Traces</h1>
      <form
        class="explore-form"
        onSubmit={(e) => {
          e.preventDefault();
          go({});
        }}
      >
        <label for="traceql" class="sr-only">
          TraceQL query
        </label>
        <input id="traceql" class="mono wide" value={draft} onInput={(e) => setDraft(e.target.value)} placeholder='{ resource.service.name = "checkout" && status = error }' spellcheck={false} />
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
            Search
          </button>
        </div>
      </form>
      <Loaded state={state} what="traces">
        {(r) =>
          !(r.traces || []).length ? (
            <p class="muted">No traces match.</p>
          ) : (
            <div class="scroll">
              <table data-testid="trace-results">
                <thead>
                  <tr>
                    <th>Trace</th>
                    <th>Root service</th>
                    <th>Root span</th>
                    <th>Start</th>
                    <th class="num">Duration</th>
                  </tr>
                </thead>
                <tbody>
                  {r.traces.map((t) => (
                    <tr>
                      <td class="mono">
                        <a href={`/traces/${t.traceID}`}>{t.traceID}</a>
                      </td>
                      <td>{t.rootServiceName}</td>
                      <td>{t.rootTraceName}</td>
                      <td class="small">{fmtTime(Number(BigInt(t.startTimeUnixNano || 0) / 1000000n) / 1000)}</td>
                      <td class="num">{t.durationMs === undefined ? '—' : `${t.durationMs} ms`}</td>
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

function SpanDetails({ s, traceId }) {
  // Log records carry the full 32-digit id (search results drop leading zeros).
  const logs = `{service_name=${quote(s.service || 'unknown')}} | trace_id=${quote(traceId.toLowerCase().padStart(32, '0'))}`;
  return (
    <div class="details">
      <div>
        <b>{s.name}</b> · {s.service} · {(s.end - s.start).toFixed(3)} ms · span {s.id}{' '}
        {s.status.code === 2 || s.status.code === 'STATUS_CODE_ERROR' ? <span class="badge firing">error {s.status.message || ''}</span> : null}
      </div>
      <div>
        <b>Attributes</b> <Labels labels={s.attributes} />
      </div>
      <div>
        <b>Resource</b> <Labels labels={s.resource} />
      </div>
      <a href={`/logs?${new URLSearchParams({ query: logs, range: '1d' })}`} data-testid="span-logs">
        Logs of this trace from {s.service || 'this service'}
      </a>
    </div>
  );
}

export function TracePage({ id }) {
  const state = useData(() => fetchJSON(`/api/v2/traces/${encodeURIComponent(id)}`), [id]);
  const [open, setOpen] = useState(null);
  return (
    <section>
      <p>
        <a href="/traces">← Trace search</a>
      </p>
      <h1 class="mono">Trace {id}</h1>
      <Loaded state={state} what="the trace">
        {(body) => {
          const spans = flattenTrace(body);
          if (!spans.length) return <p class="muted">The trace has no spans.</p>;
          const t0 = Math.min(...spans.map((s) => s.start));
          const t1 = Math.max(...spans.map((s) => s.end));
          const total = Math.max(t1 - t0, 0.001);
          return (
            <div>
              <p class="small muted">
                {spans.length} spans, {new Set(spans.map((s) => s.service)).size} services, {total.toFixed(3)} ms
              </p>
              <ol class="waterfall plain" data-testid="waterfall">
                {spans.map((s) => (
                  <li>
                    <button type="button" class="span-row" aria-expanded={open === s.id} onClick={() => setOpen(open === s.id ? null : s.id)}>
                      <span class="span-name" style={{ paddingLeft: `${s.depth * 12}px` }}>
                        <b>{s.service}</b> {s.name}
                      </span>
                      <span class="span-track">
                        <span class={`span-bar ${s.status.code === 2 || s.status.code === 'STATUS_CODE_ERROR' ? 'err' : ''}`} style={{ left: `${((s.start - t0) / total) * 100}%`, width: `${Math.max(0.3, ((s.end - s.start) / total) * 100)}%` }} />
                      </span>
                      <span class="span-dur num">{(s.end - s.start).toFixed(2)} ms</span>
                    </button>
                    {open === s.id && <SpanDetails s={s} traceId={id} />}
                  </li>
                ))}
              </ol>
            </div>
          );
        }}
      </Loaded>
    </section>
  );
}
