// Traces in Tempo's JSON (OTLP shapes: ids as base64 or hex, attributes as typed values) made
// into rows of a span waterfall, and trace ids found in log entries.

/** A span or trace id as lower-case hex: Tempo's trace JSON carries base64 (jsonpb), OTLP/JSON and search results hex. */
export function hexId(id) {
  if (!id) return '';
  if (/^[0-9a-fA-F]+$/.test(id) && (id.length === 16 || id.length === 32)) return id.toLowerCase();
  try {
    const bin = atob(id);
    return [...bin].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
  } catch {
    return id;
  }
}

/** OTLP attribute values (`{stringValue}`, `{intValue}`, …) as plain strings. */
function attrValue(v) {
  if (!v) return '';
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return String(v.intValue);
  if ('doubleValue' in v) return String(v.doubleValue);
  if ('boolValue' in v) return String(v.boolValue);
  if ('arrayValue' in v) return JSON.stringify((v.arrayValue.values || []).map(attrValue));
  if ('kvlistValue' in v) return JSON.stringify(attrs(v.kvlistValue.values));
  if ('bytesValue' in v) return v.bytesValue;
  return JSON.stringify(v);
}

function attrs(list) {
  const o = {};
  for (const a of list || []) o[a.key] = attrValue(a.value);
  return o;
}

/** Flattens a Tempo trace answer into spans with service names, depth-first in time order. */
export function flattenTrace(body) {
  const t = body.trace || body;
  const batches = t.resourceSpans || t.batches || [];
  const spans = [];
  for (const b of batches) {
    const res = attrs(b.resource && b.resource.attributes);
    for (const ss of b.scopeSpans || b.instrumentationLibrarySpans || []) {
      for (const s of ss.spans || []) {
        spans.push({
          id: hexId(s.spanId),
          parent: hexId(s.parentSpanId || ''),
          name: s.name,
          kind: s.kind,
          start: Number(BigInt(s.startTimeUnixNano || 0) / 1000n) / 1000, // ms
          end: Number(BigInt(s.endTimeUnixNano || 0) / 1000n) / 1000,
          attributes: attrs(s.attributes),
          status: s.status || {},
          service: res['service.name'] || '',
          resource: res,
          events: s.events || [],
        });
      }
    }
  }
  const byId = new Map(spans.map((s) => [s.id, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent && byId.has(s.parent)) {
      if (!children.has(s.parent)) children.set(s.parent, []);
      children.get(s.parent).push(s);
    } else roots.push(s);
  }
  const out = [];
  const walk = (s, depth) => {
    out.push({ ...s, depth });
    (children.get(s.id) || []).sort((a, b) => a.start - b.start).forEach((c) => walk(c, depth + 1));
  };
  roots.sort((a, b) => a.start - b.start).forEach((r) => walk(r, 0));
  return out;
}

const TRACE_KEYS = ['trace_id', 'traceid', 'traceID', 'traceId', 'TraceId'];

/** A trace id of the entry: from structured metadata or parsed fields, else `trace_id=…` in the line. */
export function traceIdOf(line, meta) {
  for (const k of TRACE_KEYS) if (meta && meta[k]) return meta[k];
  const m = /\btrace_?id["']?\s*[=:]\s*["']?([0-9a-fA-F]{16,32})\b/i.exec(line);
  return m ? m[1] : null;
}

