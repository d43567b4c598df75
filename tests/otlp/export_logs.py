"""Exports log records through Python's logging module with the OpenTelemetry SDK's
LoggingHandler, inside spans so that records carry trace and span ids.

usage: export_logs.py <grpc|http> <endpoint> <service.name> <marker>
Prints one line per record: "<trace_id hex> <span_id hex> <level> <message>", then "ok".
"""
import logging
import sys

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

protocol, endpoint, service, marker = sys.argv[1:5]
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    exporter = OTLPLogExporter(endpoint=endpoint)

resource = Resource.create({"service.name": service, "deployment.environment": "test", "host.name": "py-host"})
tracer = TracerProvider(resource=resource).get_tracer("export_logs")
provider = LoggerProvider(resource=resource)
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
logger = logging.getLogger("sextant.test")
logger.setLevel(logging.DEBUG)
logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))

records = [
    (logging.INFO, f"{marker} order accepted"),
    (logging.WARNING, f"{marker} payment slow"),
    (logging.ERROR, f"{marker} payment declined"),
]
for level, message in records:
    with tracer.start_as_current_span("handle") as span:
        ctx = span.get_span_context()
        logger.log(level, message, extra={"order.id": "o-17"})
        print(f"{ctx.trace_id:032x} {ctx.span_id:016x} {logging.getLevelName(level).lower()} {message}")

provider.shutdown()
print("ok")
