//! OTLP/JSON (the protobuf JSON mapping as the OTLP specification profiles it) →
//! `ExportMetricsServiceRequest`: lowerCamelCase keys (snake_case accepted too), 64-bit
//! integers as strings or numbers, enums as integers (names accepted too), doubles as numbers
//! or `"NaN"` / `"Infinity"` / `"-Infinity"`, unknown fields ignored. Exemplars' `traceId` and
//! `spanId` are hex strings (either case), as the OTLP specification requires.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Map, Value};

type Obj = Map<String, Value>;

/// A JSON body that is not an OTLP metrics request; the message names the field.
#[derive(Debug)]
pub struct JsonError(pub String);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type R<T> = Result<T, JsonError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(JsonError(msg.into()))
}

/// Parses an OTLP/JSON metrics export request.
pub fn decode(body: &[u8]) -> R<ExportMetricsServiceRequest> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| JsonError(format!("invalid JSON: {e}")))?;
    let o = as_obj(&v, "request")?;
    Ok(ExportMetricsServiceRequest {
        resource_metrics: list(o, "resourceMetrics", "resource_metrics", resource_metrics)?,
    })
}

fn as_obj<'a>(v: &'a Value, what: &str) -> R<&'a Obj> {
    v.as_object()
        .ok_or_else(|| JsonError(format!("{what}: expected an object")))
}

fn field<'a>(o: &'a Obj, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel)
        .or_else(|| o.get(snake))
        .filter(|v| !v.is_null())
}

fn list<T>(o: &Obj, camel: &str, snake: &str, f: fn(&Value) -> R<T>) -> R<Vec<T>> {
    match field(o, camel, snake) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(f).collect(),
        Some(_) => err(format!("{camel}: expected an array")),
    }
}

fn string(o: &Obj, camel: &str, snake: &str) -> R<String> {
    match field(o, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => err(format!("{camel}: expected a string")),
    }
}

fn boolean(o: &Obj, camel: &str, snake: &str) -> R<bool> {
    match field(o, camel, snake) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => err(format!("{camel}: expected a boolean")),
    }
}

fn int_of(v: &Value, what: &str) -> R<i128> {
    let parsed = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1.9e19)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| JsonError(format!("{what}: expected an integer, got {v}")))
}

fn u64_field(o: &Obj, camel: &str, snake: &str) -> R<u64> {
    match field(o, camel, snake) {
        None => Ok(0),
        Some(v) => u64::try_from(int_of(v, camel)?)
            .map_err(|_| JsonError(format!("{camel}: out of range for uint64"))),
    }
}

fn i64_of(v: &Value, what: &str) -> R<i64> {
    i64::try_from(int_of(v, what)?)
        .map_err(|_| JsonError(format!("{what}: out of range for int64")))
}

fn i32_field(o: &Obj, camel: &str, snake: &str) -> R<i32> {
    match field(o, camel, snake) {
        None => Ok(0),
        Some(v) => i32::try_from(int_of(v, camel)?)
            .map_err(|_| JsonError(format!("{camel}: out of range for int32"))),
    }
}

fn u32_field(o: &Obj, camel: &str, snake: &str) -> R<u32> {
    match field(o, camel, snake) {
        None => Ok(0),
        Some(v) => u32::try_from(int_of(v, camel)?)
            .map_err(|_| JsonError(format!("{camel}: out of range for uint32"))),
    }
}

fn f64_of(v: &Value, what: &str) -> R<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| JsonError(format!("{what}: not a double"))),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| JsonError(format!("{what}: expected a double, got {other:?}"))),
        },
        _ => err(format!("{what}: expected a double, got {v}")),
    }
}

fn f64_field(o: &Obj, camel: &str, snake: &str) -> R<Option<f64>> {
    field(o, camel, snake).map(|v| f64_of(v, camel)).transpose()
}

fn temporality(o: &Obj) -> R<i32> {
    match field(o, "aggregationTemporality", "aggregation_temporality") {
        None => Ok(0),
        Some(Value::String(s)) if s.starts_with("AGGREGATION_TEMPORALITY_") => {
            Ok(match s.as_str() {
                "AGGREGATION_TEMPORALITY_DELTA" => 1,
                "AGGREGATION_TEMPORALITY_CUMULATIVE" => 2,
                _ => 0,
            })
        }
        Some(v) => i32::try_from(int_of(v, "aggregationTemporality")?)
            .map_err(|_| JsonError("aggregationTemporality: out of range".into())),
    }
}

fn resource_metrics(v: &Value) -> R<ResourceMetrics> {
    let o = as_obj(v, "resourceMetrics")?;
    let resource = resource_of(o)?;
    Ok(ResourceMetrics {
        resource,
        scope_metrics: list(o, "scopeMetrics", "scope_metrics", scope_metrics)?,
        schema_url: string(o, "schemaUrl", "schema_url")?,
    })
}

fn resource_of(o: &Obj) -> R<Option<Resource>> {
    Ok(match field(o, "resource", "resource") {
        None => None,
        Some(r) => {
            let r = as_obj(r, "resource")?;
            Some(Resource {
                attributes: list(r, "attributes", "attributes", key_value)?,
                dropped_attributes_count: u32_field(
                    r,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                )?,
                entity_refs: Vec::new(),
            })
        }
    })
}

fn scope_of(o: &Obj) -> R<Option<InstrumentationScope>> {
    Ok(match field(o, "scope", "scope") {
        None => None,
        Some(s) => {
            let s = as_obj(s, "scope")?;
            Some(InstrumentationScope {
                name: string(s, "name", "name")?,
                version: string(s, "version", "version")?,
                attributes: list(s, "attributes", "attributes", key_value)?,
                dropped_attributes_count: u32_field(
                    s,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                )?,
            })
        }
    })
}

fn scope_metrics(v: &Value) -> R<ScopeMetrics> {
    let o = as_obj(v, "scopeMetrics")?;
    let scope = scope_of(o)?;
    Ok(ScopeMetrics {
        scope,
        metrics: list(o, "metrics", "metrics", metric)?,
        schema_url: string(o, "schemaUrl", "schema_url")?,
    })
}

fn key_value(v: &Value) -> R<KeyValue> {
    let o = as_obj(v, "attribute")?;
    Ok(KeyValue {
        key: string(o, "key", "key")?,
        value: field(o, "value", "value").map(any_value).transpose()?,
    })
}

fn any_value(v: &Value) -> R<AnyValue> {
    let o = as_obj(v, "value")?;
    let value = if let Some(s) = field(o, "stringValue", "string_value") {
        Some(any_value::Value::StringValue(
            s.as_str()
                .ok_or_else(|| JsonError("stringValue: expected a string".into()))?
                .to_string(),
        ))
    } else if let Some(b) = field(o, "boolValue", "bool_value") {
        Some(any_value::Value::BoolValue(b.as_bool().ok_or_else(
            || JsonError("boolValue: expected a boolean".into()),
        )?))
    } else if let Some(i) = field(o, "intValue", "int_value") {
        Some(any_value::Value::IntValue(i64_of(i, "intValue")?))
    } else if let Some(d) = field(o, "doubleValue", "double_value") {
        Some(any_value::Value::DoubleValue(f64_of(d, "doubleValue")?))
    } else if let Some(a) = field(o, "arrayValue", "array_value") {
        let a = as_obj(a, "arrayValue")?;
        Some(any_value::Value::ArrayValue(ArrayValue {
            values: list(a, "values", "values", any_value)?,
        }))
    } else if let Some(kv) = field(o, "kvlistValue", "kvlist_value") {
        let kv = as_obj(kv, "kvlistValue")?;
        Some(any_value::Value::KvlistValue(KeyValueList {
            values: list(kv, "values", "values", key_value)?,
        }))
    } else if let Some(b) = field(o, "bytesValue", "bytes_value") {
        // base64 text in JSON; as a label value bytes are shown base64-encoded anyway.
        Some(any_value::Value::StringValue(
            b.as_str()
                .ok_or_else(|| JsonError("bytesValue: expected a string".into()))?
                .to_string(),
        ))
    } else {
        None
    };
    Ok(AnyValue { value })
}

fn metric(v: &Value) -> R<Metric> {
    let o = as_obj(v, "metric")?;
    let data = if let Some(g) = field(o, "gauge", "gauge") {
        let g = as_obj(g, "gauge")?;
        Some(Data::Gauge(Gauge {
            data_points: list(g, "dataPoints", "data_points", number_point)?,
        }))
    } else if let Some(s) = field(o, "sum", "sum") {
        let s = as_obj(s, "sum")?;
        Some(Data::Sum(Sum {
            data_points: list(s, "dataPoints", "data_points", number_point)?,
            aggregation_temporality: temporality(s)?,
            is_monotonic: boolean(s, "isMonotonic", "is_monotonic")?,
        }))
    } else if let Some(h) = field(o, "histogram", "histogram") {
        let h = as_obj(h, "histogram")?;
        Some(Data::Histogram(Histogram {
            data_points: list(h, "dataPoints", "data_points", histogram_point)?,
            aggregation_temporality: temporality(h)?,
        }))
    } else if let Some(h) = field(o, "exponentialHistogram", "exponential_histogram") {
        let h = as_obj(h, "exponentialHistogram")?;
        Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: list(h, "dataPoints", "data_points", exponential_point)?,
            aggregation_temporality: temporality(h)?,
        }))
    } else if let Some(s) = field(o, "summary", "summary") {
        let s = as_obj(s, "summary")?;
        Some(Data::Summary(Summary {
            data_points: list(s, "dataPoints", "data_points", summary_point)?,
        }))
    } else {
        None
    };
    Ok(Metric {
        name: string(o, "name", "name")?,
        description: string(o, "description", "description")?,
        unit: string(o, "unit", "unit")?,
        metadata: list(o, "metadata", "metadata", key_value)?,
        data,
    })
}

fn number_point(v: &Value) -> R<NumberDataPoint> {
    let o = as_obj(v, "dataPoint")?;
    let value = if let Some(d) = field(o, "asDouble", "as_double") {
        Some(number_data_point::Value::AsDouble(f64_of(d, "asDouble")?))
    } else if let Some(i) = field(o, "asInt", "as_int") {
        Some(number_data_point::Value::AsInt(i64_of(i, "asInt")?))
    } else {
        None
    };
    Ok(NumberDataPoint {
        attributes: list(o, "attributes", "attributes", key_value)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano")?,
        exemplars: list(o, "exemplars", "exemplars", exemplar_of)?,
        flags: u32_field(o, "flags", "flags")?,
        value,
    })
}

fn exemplar_of(v: &Value) -> R<Exemplar> {
    let o = as_obj(v, "exemplar")?;
    let value = if let Some(d) = field(o, "asDouble", "as_double") {
        Some(exemplar::Value::AsDouble(f64_of(d, "asDouble")?))
    } else if let Some(i) = field(o, "asInt", "as_int") {
        Some(exemplar::Value::AsInt(i64_of(i, "asInt")?))
    } else {
        None
    };
    Ok(Exemplar {
        filtered_attributes: list(o, "filteredAttributes", "filtered_attributes", key_value)?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano")?,
        span_id: hex_field(o, "spanId", "span_id", 8)?,
        trace_id: hex_field(o, "traceId", "trace_id", 16)?,
        value,
    })
}

/// A hex-encoded id of `len` bytes (empty when absent or `""`).
fn hex_field(o: &Obj, camel: &str, snake: &str, len: usize) -> R<Vec<u8>> {
    let text = match field(o, camel, snake) {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return err(format!("{camel}: expected a hex string")),
    };
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = text.as_bytes();
    if bytes.len() != 2 * len {
        return err(format!("{camel}: expected {} hex digits", 2 * len));
    }
    let digit = |c: u8| (c as char).to_digit(16);
    bytes
        .chunks_exact(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
            _ => err(format!("{camel}: invalid hex {text:?}")),
        })
        .collect()
}

fn u64_list(o: &Obj, camel: &str, snake: &str) -> R<Vec<u64>> {
    match field(o, camel, snake) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                u64::try_from(int_of(v, camel)?)
                    .map_err(|_| JsonError(format!("{camel}: out of range for uint64")))
            })
            .collect(),
        Some(_) => err(format!("{camel}: expected an array")),
    }
}

fn histogram_point(v: &Value) -> R<HistogramDataPoint> {
    let o = as_obj(v, "dataPoint")?;
    Ok(HistogramDataPoint {
        attributes: list(o, "attributes", "attributes", key_value)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano")?,
        count: u64_field(o, "count", "count")?,
        sum: f64_field(o, "sum", "sum")?,
        bucket_counts: u64_list(o, "bucketCounts", "bucket_counts")?,
        explicit_bounds: match field(o, "explicitBounds", "explicit_bounds") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| f64_of(v, "explicitBounds"))
                .collect::<R<_>>()?,
            Some(_) => return err("explicitBounds: expected an array"),
        },
        exemplars: list(o, "exemplars", "exemplars", exemplar_of)?,
        flags: u32_field(o, "flags", "flags")?,
        min: f64_field(o, "min", "min")?,
        max: f64_field(o, "max", "max")?,
    })
}

fn buckets(o: &Obj, name: &str) -> R<Option<Buckets>> {
    match field(o, name, name) {
        None => Ok(None),
        Some(b) => {
            let b = as_obj(b, name)?;
            Ok(Some(Buckets {
                offset: i32_field(b, "offset", "offset")?,
                bucket_counts: u64_list(b, "bucketCounts", "bucket_counts")?,
            }))
        }
    }
}

fn exponential_point(v: &Value) -> R<ExponentialHistogramDataPoint> {
    let o = as_obj(v, "dataPoint")?;
    Ok(ExponentialHistogramDataPoint {
        attributes: list(o, "attributes", "attributes", key_value)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano")?,
        count: u64_field(o, "count", "count")?,
        sum: f64_field(o, "sum", "sum")?,
        scale: i32_field(o, "scale", "scale")?,
        zero_count: u64_field(o, "zeroCount", "zero_count")?,
        positive: buckets(o, "positive")?,
        negative: buckets(o, "negative")?,
        flags: u32_field(o, "flags", "flags")?,
        exemplars: list(o, "exemplars", "exemplars", exemplar_of)?,
        min: f64_field(o, "min", "min")?,
        max: f64_field(o, "max", "max")?,
        zero_threshold: f64_field(o, "zeroThreshold", "zero_threshold")?.unwrap_or(0.0),
    })
}

fn summary_point(v: &Value) -> R<SummaryDataPoint> {
    let o = as_obj(v, "dataPoint")?;
    Ok(SummaryDataPoint {
        attributes: list(o, "attributes", "attributes", key_value)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano")?,
        count: u64_field(o, "count", "count")?,
        sum: f64_field(o, "sum", "sum")?.unwrap_or(0.0),
        quantile_values: list(o, "quantileValues", "quantile_values", |v| {
            let q = as_obj(v, "quantileValues")?;
            Ok(ValueAtQuantile {
                quantile: f64_field(q, "quantile", "quantile")?.unwrap_or(0.0),
                value: f64_field(q, "value", "value")?.unwrap_or(0.0),
            })
        })?,
        flags: u32_field(o, "flags", "flags")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Logs

/// Parses an OTLP/JSON logs export request. `traceId`/`spanId` are hex strings;
/// `severityNumber` an integer or its enum name.
pub fn decode_logs(body: &[u8]) -> R<ExportLogsServiceRequest> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| JsonError(format!("invalid JSON: {e}")))?;
    let o = as_obj(&v, "request")?;
    Ok(ExportLogsServiceRequest {
        resource_logs: list(o, "resourceLogs", "resource_logs", resource_logs)?,
    })
}

fn resource_logs(v: &Value) -> R<ResourceLogs> {
    let o = as_obj(v, "resourceLogs")?;
    Ok(ResourceLogs {
        resource: resource_of(o)?,
        scope_logs: list(o, "scopeLogs", "scope_logs", scope_logs)?,
        schema_url: string(o, "schemaUrl", "schema_url")?,
    })
}

fn scope_logs(v: &Value) -> R<ScopeLogs> {
    let o = as_obj(v, "scopeLogs")?;
    Ok(ScopeLogs {
        scope: scope_of(o)?,
        log_records: list(o, "logRecords", "log_records", log_record)?,
        schema_url: string(o, "schemaUrl", "schema_url")?,
    })
}

fn log_record(v: &Value) -> R<LogRecord> {
    let o = as_obj(v, "logRecord")?;
    let severity_number = match field(o, "severityNumber", "severity_number") {
        Some(Value::String(name)) if SeverityNumber::from_str_name(name).is_some() => {
            SeverityNumber::from_str_name(name).map_or(0, |s| s as i32)
        }
        _ => i32_field(o, "severityNumber", "severity_number")?,
    };
    Ok(LogRecord {
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano")?,
        observed_time_unix_nano: u64_field(o, "observedTimeUnixNano", "observed_time_unix_nano")?,
        severity_number,
        severity_text: string(o, "severityText", "severity_text")?,
        body: field(o, "body", "body").map(any_value).transpose()?,
        attributes: list(o, "attributes", "attributes", key_value)?,
        dropped_attributes_count: u32_field(
            o,
            "droppedAttributesCount",
            "dropped_attributes_count",
        )?,
        flags: u32_field(o, "flags", "flags")?,
        trace_id: hex_field(o, "traceId", "trace_id", 16)?,
        span_id: hex_field(o, "spanId", "span_id", 8)?,
        event_name: string(o, "eventName", "event_name")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_strings_numbers_and_enums() {
        let body = br#"{"resourceMetrics":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"svc"}},
            {"key":"n","value":{"intValue":"42"}}]},
          "scopeMetrics":[{"scope":{"name":"s"},"metrics":[
            {"name":"c","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
              "dataPoints":[{"timeUnixNano":"1700000000000000000","asInt":"7"}]}},
            {"name":"h","histogram":{"aggregation_temporality":"AGGREGATION_TEMPORALITY_DELTA",
              "dataPoints":[{"timeUnixNano":1700000000000000000,"count":"3","sum":1.5,
                "bucketCounts":["1",2],"explicitBounds":[1.0]}]}},
            {"name":"e","exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[
              {"timeUnixNano":"1","count":"2","scale":-1,"zeroCount":"1","sum":"NaN",
               "positive":{"offset":-2,"bucketCounts":["1"]}}]}}]}]}]}"#;
        let req = decode(body).unwrap();
        let rm = &req.resource_metrics[0];
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        assert_eq!(
            attrs[1].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(42))
        );
        let ms = &rm.scope_metrics[0].metrics;
        match &ms[0].data {
            Some(Data::Sum(s)) => {
                assert!(s.is_monotonic);
                assert_eq!(s.aggregation_temporality, 2);
                assert_eq!(s.data_points[0].time_unix_nano, 1_700_000_000_000_000_000);
                assert_eq!(
                    s.data_points[0].value,
                    Some(number_data_point::Value::AsInt(7))
                );
            }
            other => panic!("{other:?}"),
        }
        match &ms[1].data {
            Some(Data::Histogram(h)) => {
                assert_eq!(h.aggregation_temporality, 1);
                assert_eq!(h.data_points[0].bucket_counts, vec![1, 2]);
                assert_eq!(h.data_points[0].count, 3);
            }
            other => panic!("{other:?}"),
        }
        match &ms[2].data {
            Some(Data::ExponentialHistogram(h)) => {
                let p = &h.data_points[0];
                assert_eq!(p.scale, -1);
                assert!(p.sum.unwrap().is_nan());
                assert_eq!(p.positive.as_ref().unwrap().offset, -2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exemplars_decode_with_hex_ids() {
        let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"c","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[
              {"timeUnixNano":"2000000","asDouble":3,"exemplars":[
                {"timeUnixNano":"1500000","asInt":"2","traceId":"5B8EFFF798038103D269B633813FC60C",
                 "spanId":"eee19b7ec3c1b174","filteredAttributes":[
                   {"key":"user","value":{"stringValue":"u1"}}]},
                {"time_unix_nano":"1600000","as_double":0.5}]}]}}]}]}]}"#;
        let req = decode(body).unwrap();
        let Some(Data::Sum(s)) = &req.resource_metrics[0].scope_metrics[0].metrics[0].data else {
            panic!("not a sum");
        };
        let ex = &s.data_points[0].exemplars;
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].value, Some(exemplar::Value::AsInt(2)));
        assert_eq!(ex[0].time_unix_nano, 1_500_000);
        assert_eq!(
            ex[0].trace_id,
            vec![
                0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
                0xc6, 0x0c
            ]
        );
        assert_eq!(
            ex[0].span_id,
            vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        assert_eq!(ex[0].filtered_attributes[0].key, "user");
        assert_eq!(ex[1].value, Some(exemplar::Value::AsDouble(0.5)));
        assert!(ex[1].trace_id.is_empty());
        for bad in [
            r#""traceId":"abc""#,
            r#""spanId":"zzzzzzzzzzzzzzzz""#,
            r#""spanId":7"#,
        ] {
            let body = format!(
                r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{{"asInt":"1","exemplars":[{{{bad}}}]}}]}}}}]}}]}}]}}"#
            );
            assert!(decode(body.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_wrong_shapes() {
        assert!(decode(b"not json").is_err());
        assert!(decode(b"[]").is_err());
        assert!(decode(br#"{"resourceMetrics":{}}"#).is_err());
        let e = decode(br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"asInt":"x1"}]}}]}]}]}"#)
            .unwrap_err();
        assert!(e.0.contains("asInt"), "{e}");
    }

    #[test]
    fn example_payload_decodes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance/otlp/metrics.json"
        );
        let Ok(body) = std::fs::read(path) else {
            return; // shared/ is beside the repository in CI and in the lead's checkout
        };
        let req = decode(&body).unwrap();
        assert!(!req.resource_metrics.is_empty());
    }
}
