"""Exports nested traces across three services with the OpenTelemetry Python SDK, with explicit
timestamps so durations are known, and prints what it sent as one JSON document.

Each trace (i = 0 … n-1):
  frontend  SERVER   "GET /checkout"        http.route=/checkout
  frontend  CLIENT   "POST checkout"
  checkout  SERVER   "POST /api/checkout"   http.route=/api/checkout
  checkout  INTERNAL "validate cart"
  checkout  CLIENT   "POST payment"
  payment   SERVER   "POST /api/pay"        http.route=/api/pay; status_code 500 + ERROR when i % 4 == 0
  payment   CLIENT   "SELECT payments"      db.system.name=postgresql
  frontend  INTERNAL "render" (2.5 s)       only when i % 5 == 0, a sibling of "POST checkout"

usage: three_services.py <grpc|http> <endpoint> <n>
"""
import json
import sys
import time

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

protocol, endpoint, n = sys.argv[1], sys.argv[2], int(sys.argv[3])


def exporter():
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


providers = {}
for name in ("frontend", "checkout", "payment"):
    p = TracerProvider(resource=Resource.create({"service.name": name, "deployment.environment": "test"}))
    p.add_span_processor(BatchSpanProcessor(exporter()))
    providers[name] = p
tracers = {name: p.get_tracer("three_services", "1.0") for name, p in providers.items()}

MS = 1_000_000
base = time.time_ns() - 120_000 * MS
traces = []
for i in range(n):
    t0 = base + i * 200 * MS
    slow = i % 5 == 0
    failed = i % 4 == 0
    spans = []

    def span(service, name, kind, start, end, parent, attrs=None, error=False):
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        s = tracers[service].start_span(name, context=ctx, kind=kind, start_time=start, attributes=attrs or {})
        if error:
            s.set_status(Status(StatusCode.ERROR, "card declined"))
        s.end(end_time=end)
        parent_id = parent.get_span_context().span_id if parent is not None else 0
        spans.append(
            {
                "span_id": f"{s.get_span_context().span_id:016x}",
                "parent_span_id": f"{parent_id:016x}" if parent is not None else "",
                "service": service,
                "name": name,
            }
        )
        return s

    root_end = t0 + (2700 if slow else 60) * MS
    root = span("frontend", "GET /checkout", SpanKind.SERVER, t0, root_end, None,
                {"http.route": "/checkout", "http.response.status_code": 500 if failed else 200}, failed)
    call = span("frontend", "POST checkout", SpanKind.CLIENT, t0 + 1 * MS, t0 + 50 * MS, root,
                {"http.request.method": "POST"}, failed)
    srv = span("checkout", "POST /api/checkout", SpanKind.SERVER, t0 + 2 * MS, t0 + 49 * MS, call,
               {"http.route": "/api/checkout", "http.response.status_code": 500 if failed else 200}, failed)
    span("checkout", "validate cart", SpanKind.INTERNAL, t0 + 3 * MS, t0 + 5 * MS, srv)
    pay_call = span("checkout", "POST payment", SpanKind.CLIENT, t0 + 6 * MS, t0 + 40 * MS, srv,
                    {"http.request.method": "POST"}, failed)
    pay = span("payment", "POST /api/pay", SpanKind.SERVER, t0 + 7 * MS, t0 + 39 * MS, pay_call,
               {"http.route": "/api/pay", "http.response.status_code": 500 if failed else 200}, failed)
    span("payment", "SELECT payments", SpanKind.CLIENT, t0 + 8 * MS, t0 + 30 * MS, pay,
         {"db.system.name": "postgresql", "db.query.text": "SELECT * FROM payments WHERE id = $1"})
    if slow:
        span("frontend", "render", SpanKind.INTERNAL, t0 + 100 * MS, t0 + 2600 * MS, root)
    traces.append({
        "trace_id": f"{root.get_span_context().trace_id:032x}",
        "failed": failed,
        "slow": slow,
        "start_ns": t0,
        "spans": spans,
    })

for p in providers.values():
    p.shutdown()
print(json.dumps({"base_ns": base, "traces": traces}))
