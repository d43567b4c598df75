"""Exports a fixed set of metrics to Sextant with the OpenTelemetry Python SDK.

Used by tests/otlp_client.rs. Records, in two export rounds (so delta temporality sends two
consecutive windows):
  <prefix>.requests   counter (unit {request})        5, then 2       -> 7
  <prefix>.queue      up-down counter                 +10, then -3    -> 7
  <prefix>.temp       gauge (unit Cel)                20, then 42.5   -> 42.5
  <prefix>.latency    histogram (unit s), explicit buckets [0.25, 1]
                      0.1, 0.3, then 2.0              -> count 3, sum 2.4
  <prefix>.size       histogram (unit By), exponential buckets
                      1, 2, then 4, 1000              -> count 4, sum 1007
and prints "ok" when both exports succeeded.

Usage: export.py PROTOCOL(grpc|http) ENDPOINT TEMPORALITY(cumulative|delta) SERVICE PREFIX
"""

import sys
import time

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource


def main():
    protocol, endpoint, temporality, service, prefix = sys.argv[1:6]
    if temporality == "delta":
        t = AggregationTemporality.DELTA
    else:
        t = AggregationTemporality.CUMULATIVE
    preferred = {
        Counter: t,
        UpDownCounter: t,
        Histogram: t,
        ObservableCounter: t,
        ObservableUpDownCounter: t,
        ObservableGauge: AggregationTemporality.CUMULATIVE,
    }
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(
            endpoint=endpoint, insecure=True, preferred_temporality=preferred
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=endpoint, preferred_temporality=preferred)

    results = []
    original_export = exporter.export

    def export(*args, **kwargs):
        r = original_export(*args, **kwargs)
        results.append(r)
        return r

    exporter.export = export

    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create(
            {
                "service.name": service,
                "service.namespace": "otlptest",
                "service.instance.id": "instance-1",
                "deployment.environment": "ci",
            }
        ),
        metric_readers=[reader],
        views=[
            View(
                instrument_name=prefix + ".latency",
                aggregation=ExplicitBucketHistogramAggregation(boundaries=[0.25, 1.0]),
            ),
            View(
                instrument_name=prefix + ".size",
                aggregation=ExponentialBucketHistogramAggregation(max_size=160),
            ),
        ],
    )
    meter = provider.get_meter("sextant.otlp.test", "1.0")
    requests = meter.create_counter(prefix + ".requests", unit="{request}", description="Requests served")
    queue = meter.create_up_down_counter(prefix + ".queue", description="Queue length")
    temp = meter.create_gauge(prefix + ".temp", unit="Cel", description="Temperature")
    latency = meter.create_histogram(prefix + ".latency", unit="s", description="Latency")
    size = meter.create_histogram(prefix + ".size", unit="By", description="Sizes")

    attrs = {"route": "/checkout"}
    requests.add(5, attrs)
    queue.add(10, attrs)
    temp.set(20, attrs)
    latency.record(0.1, attrs)
    latency.record(0.3, attrs)
    size.record(1, attrs)
    size.record(2, attrs)
    if not provider.force_flush(30_000):
        sys.exit("first flush failed")
    time.sleep(0.05)

    requests.add(2, attrs)
    queue.add(-3, attrs)
    temp.set(42.5, attrs)
    latency.record(2.0, attrs)
    size.record(4, attrs)
    size.record(1000, attrs)
    if not provider.force_flush(30_000):
        sys.exit("second flush failed")
    provider.shutdown()

    if len(results) < 2 or any(r != MetricExportResult.SUCCESS for r in results):
        sys.exit("exports failed: %r" % (results,))
    print("ok")


if __name__ == "__main__":
    main()
