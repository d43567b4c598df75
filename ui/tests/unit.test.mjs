// Unit tests of the console's pure logic (node's test runner: `node --test ui/tests/`):
// autocomplete contexts, silence matchers, trace id handling and the span waterfall order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { completionContext } from '../app/promql-complete.js';
import { parseMatchers, matcherText } from '../app/matchers.js';
import { hexId, flattenTrace, traceIdOf } from '../app/trace.js';

test('autocomplete context: metric, label name, label value, grouping', () => {
  assert.deepEqual(completionContext('sum(rate(http_re', 16), { kind: 'metric', prefix: 'http_re', from: 9 });
  const q = 'http_requests_total{job="api",co';
  assert.deepEqual(completionContext(q, q.length), { kind: 'label', prefix: 'co', metric: 'http_requests_total', from: q.length - 2 });
  const v = 'up{job=~"ap';
  assert.deepEqual(completionContext(v, v.length), { kind: 'value', label: 'job', prefix: 'ap', metric: 'up', from: v.length - 2 });
  const g = 'sum by (jo';
  assert.equal(completionContext(g, g.length).kind, 'label');
  // Inside a closed selector's string, or after a number, nothing is offered.
  assert.equal(completionContext('up{job="a"} > 5', 15), null);
  // A `}` inside a string does not close the selector.
  const s = 'up{path="/a}b",me';
  assert.deepEqual(completionContext(s, s.length), { kind: 'label', prefix: 'me', metric: 'up', from: s.length - 2 });
});

test('silence matchers parse every operator, quoted and bare, and round-trip', () => {
  const ms = parseMatchers('{alertname="Disk Full", severity=~"page|ticket", job!="a\\"b", env!~dev.*}');
  assert.deepEqual(ms, [
    { name: 'alertname', value: 'Disk Full', isRegex: false, isEqual: true },
    { name: 'severity', value: 'page|ticket', isRegex: true, isEqual: true },
    { name: 'job', value: 'a"b', isRegex: false, isEqual: false },
    { name: 'env', value: 'dev.*', isRegex: true, isEqual: false },
  ]);
  assert.deepEqual(parseMatchers(ms.map(matcherText).join(', ')), ms);
  assert.throws(() => parseMatchers(''), /cannot parse/);
  assert.throws(() => parseMatchers('alertname="x" junk'), /cannot parse matchers at: alertname="x" junk/);
  assert.throws(() => parseMatchers('a="1", b'), /cannot parse matchers at: b$/);
  // Regex escapes other than \" and \\ stay as typed, and survive the round trip.
  const re = parseMatchers('path=~"/api\\.v1|a\\\\b"');
  assert.deepEqual(re, [{ name: 'path', value: '/api\\.v1|a\\b', isRegex: true, isEqual: true }]);
  assert.deepEqual(parseMatchers(matcherText(re[0])), re);
  assert.throws(() => parseMatchers('=x'), /cannot parse/);
});

test('ids: hex kept, base64 decoded', () => {
  assert.equal(hexId('4BF92F3577B34DA6A3CE929D0E0E4736'), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(hexId(Buffer.from('a1b2c3d4e5f60718', 'hex').toString('base64')), 'a1b2c3d4e5f60718');
  assert.equal(hexId(''), '');
});

test('trace ids in log entries: metadata first, then the line', () => {
  assert.equal(traceIdOf('msg=x', { trace_id: 'abc' }), 'abc');
  assert.equal(traceIdOf('level=error traceID=4bf92f3577b34da6a3ce929d0e0e4736 msg=x', {}), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(traceIdOf('{"trace_id":"4bf92f3577b34da6"}', {}), '4bf92f3577b34da6');
  assert.equal(traceIdOf('no id here, trace_id=xyz', {}), null);
});

test('waterfall: depth-first by start time, services from resources, orphans as roots', () => {
  const b64 = (h) => Buffer.from(h, 'hex').toString('base64');
  const span = (id, parent, name, start, end) => ({ spanId: b64(id), parentSpanId: parent ? b64(parent) : '', name, startTimeUnixNano: String(start * 1e6), endTimeUnixNano: String(end * 1e6) });
  const res = (svc, spans) => ({ resource: { attributes: [{ key: 'service.name', value: { stringValue: svc } }] }, scopeSpans: [{ spans }] });
  const body = {
    trace: {
      resourceSpans: [
        res('db', [span('0000000000000003', '0000000000000002', 'query', 30, 40)]),
        res('api', [span('0000000000000001', '', 'root', 0, 100), span('0000000000000004', '0000000000000001', 'late child', 60, 90), span('0000000000000002', '0000000000000001', 'early child', 10, 50)]),
        res('lost', [span('0000000000000009', '00000000000000ff', 'orphan', 5, 6)]),
      ],
    },
  };
  const rows = flattenTrace(body).map((s) => `${s.depth}:${s.service}:${s.name}`);
  assert.deepEqual(rows, ['0:api:root', '1:api:early child', '2:db:query', '1:api:late child', '0:lost:orphan']);
  // Tempo's v1 shape (`batches`) reads the same.
  assert.equal(flattenTrace({ batches: body.trace.resourceSpans }).length, 5);
});
