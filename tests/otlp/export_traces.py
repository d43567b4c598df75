"""Exports traces with the OpenTelemetry Python SDK: in each of `n` traces a `<service>-front`
SERVER span calls `<service>-back` through a CLIENT span, whose SERVER child is recorded by the
backend's own TracerProvider (another resource); every third backend span fails.

usage: export_traces.py <grpc|http> <endpoint> <service> <n>
Prints one line per trace: "<trace_id hex>", then "ok".
"""
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

protocol, endpoint, service, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def exporter():
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


def provider(name):
    p = TracerProvider(resource=Resource.create({"service.name": name}))
    p.add_span_processor(BatchSpanProcessor(exporter()))
    return p


front = provider(f"{service}-front")
back = provider(f"{service}-back")
ft = front.get_tracer("export_traces")
bt = back.get_tracer("export_traces")

for i in range(n):
    with ft.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        with ft.start_as_current_span("call back", kind=SpanKind.CLIENT, attributes={"http.method": "POST"}) as client:
            ctx = trace.set_span_in_context(client)
            with bt.start_as_current_span("POST /pay", context=ctx, kind=SpanKind.SERVER) as server:
                if i % 3 == 0:
                    server.set_status(Status(StatusCode.ERROR, "declined"))
        print(f"{root.get_span_context().trace_id:032x}")

front.shutdown()
back.shutdown()
print("ok")
