//! OTLP logs → Loki-model streams, as Loki's OTLP endpoint maps them:
//!
//! * stream labels: the resource attributes in [`OtlpLogsOptions::index_resource_attributes`]
//!   (Loki's default list), names with every character outside `[a-zA-Z0-9_]` turned into `_`;
//!   `service_name` is always set (`unknown_service` when the resource has no `service.name`);
//! * structured metadata: the other resource attributes, the scope's name (`scope_name`),
//!   version (`scope_version`) and attributes, the record's attributes, `trace_id` and
//!   `span_id` (lower-case hex), `flags`, `severity_text`, `severity_number`, `event_name`, and
//!   `detected_level` (from the severity number, else the severity text);
//! * the line is the body (a string as is; other values as JSON or their text form);
//! * the time is `time_unix_nano`, else `observed_time_unix_nano`, else the arrival time.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use sextant_storage::logs::LogEntry;
use sextant_storage::Labels;

use super::convert::any_value_string;
use crate::loki::decode::normalize_metadata;
use crate::loki::PushStream;

/// Resource attributes that become stream labels unless configured otherwise (Loki's
/// `default_resource_attributes_as_index_labels`).
pub const DEFAULT_INDEX_RESOURCE_ATTRIBUTES: &[&str] = &[
    "cloud.availability_zone",
    "cloud.region",
    "container.name",
    "deployment.environment",
    "deployment.environment.name",
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.cronjob.name",
    "k8s.daemonset.name",
    "k8s.deployment.name",
    "k8s.job.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.replicaset.name",
    "k8s.statefulset.name",
    "service.instance.id",
    "service.name",
    "service.namespace",
];

/// How OTLP log records map to streams.
#[derive(Clone, Debug)]
pub struct OtlpLogsOptions {
    /// Resource attributes (OTLP names, e.g. `k8s.pod.name`) promoted to stream labels.
    pub index_resource_attributes: Vec<String>,
}

impl Default for OtlpLogsOptions {
    fn default() -> Self {
        OtlpLogsOptions {
            index_resource_attributes: DEFAULT_INDEX_RESOURCE_ATTRIBUTES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Converts a request into streams grouped by label set; `now_ns` stamps records without a
/// time. Returns the streams and the number of records.
pub fn convert_logs(
    req: &ExportLogsServiceRequest,
    opts: &OtlpLogsOptions,
    now_ns: i64,
) -> (Vec<PushStream>, usize) {
    let mut streams: BTreeMap<Labels, Vec<LogEntry>> = BTreeMap::new();
    let mut records = 0;
    for rl in &req.resource_logs {
        let mut label_pairs: Vec<(String, String)> = Vec::new();
        let mut resource_meta: Vec<(String, String)> = Vec::new();
        let attrs: &[KeyValue] = rl.resource.as_ref().map_or(&[], |r| &r.attributes);
        for kv in attrs {
            let value = any_value_string(kv.value.as_ref());
            if opts.index_resource_attributes.iter().any(|a| a == &kv.key) {
                label_pairs.push((sanitize(&kv.key), value));
            } else {
                resource_meta.push((sanitize(&kv.key), value));
            }
        }
        if !label_pairs
            .iter()
            .any(|(n, v)| n == "service_name" && !v.is_empty())
        {
            label_pairs.push(("service_name".into(), "unknown_service".into()));
        }
        let labels = Labels::from_pairs(label_pairs);
        for sl in &rl.scope_logs {
            let mut scope_meta = resource_meta.clone();
            if let Some(scope) = &sl.scope {
                scope_meta.push(("scope_name".into(), scope.name.clone()));
                scope_meta.push(("scope_version".into(), scope.version.clone()));
                for kv in &scope.attributes {
                    scope_meta.push((sanitize(&kv.key), any_value_string(kv.value.as_ref())));
                }
            }
            let entries = streams.entry(labels.clone()).or_default();
            for record in &sl.log_records {
                records += 1;
                entries.push(entry(record, &scope_meta, now_ns));
            }
        }
    }
    let streams = streams
        .into_iter()
        .filter(|(_, e)| !e.is_empty())
        .map(|(labels, entries)| PushStream {
            labels_text: labels.to_string(),
            labels: Ok(labels),
            entries,
        })
        .collect();
    (streams, records)
}

fn entry(record: &LogRecord, scope_meta: &[(String, String)], now_ns: i64) -> LogEntry {
    let ts = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|&t| t != 0)
        .map_or(now_ns, |t| t.min(i64::MAX as u64) as i64);
    let mut meta = scope_meta.to_vec();
    for kv in &record.attributes {
        meta.push((sanitize(&kv.key), any_value_string(kv.value.as_ref())));
    }
    if is_valid_id(&record.trace_id, 16) {
        meta.push(("trace_id".into(), hex(&record.trace_id)));
    }
    if is_valid_id(&record.span_id, 8) {
        meta.push(("span_id".into(), hex(&record.span_id)));
    }
    if record.flags != 0 {
        meta.push(("flags".into(), record.flags.to_string()));
    }
    meta.push(("severity_text".into(), record.severity_text.clone()));
    if record.severity_number != 0 {
        meta.push(("severity_number".into(), record.severity_number.to_string()));
    }
    meta.push(("event_name".into(), record.event_name.clone()));
    meta.push((
        "detected_level".into(),
        detected_level(record.severity_number, &record.severity_text).into(),
    ));
    LogEntry {
        ts_ns: ts,
        line: any_value_string(record.body.as_ref()),
        metadata: normalize_metadata(meta),
    }
}

/// Loki's level names for a severity number (OTLP ranges of four) or, without one, the
/// severity text.
pub fn detected_level(number: i32, text: &str) -> &'static str {
    match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => match text.trim().to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" | "dbg" => "debug",
            "info" | "information" | "notice" => "info",
            "warn" | "warning" => "warn",
            "error" | "err" => "error",
            "fatal" | "critical" | "crit" | "emerg" | "alert" | "panic" => "fatal",
            _ => "unknown",
        },
    }
}

/// An OTLP attribute name as a label name: characters outside `[a-zA-Z0-9_]` become `_`, and
/// a leading digit gets a `_` prefix.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn is_valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
        }
    }

    fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app.http".into(),
                        version: "1.2".into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn maps_resource_severity_ids_and_attributes_as_loki() {
        let record = LogRecord {
            time_unix_nano: 1_700_000_000_123_456_789,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("payment failed".into())),
            }),
            attributes: vec![kv("http.method", "POST"), kv("user.id", "u-1")],
            trace_id: (1..=16).collect(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 9],
            ..Default::default()
        };
        let (streams, n) = convert_logs(
            &request(
                vec![
                    kv("service.name", "checkout"),
                    kv("k8s.pod.name", "pod-1"),
                    kv("host.name", "h1"),
                ],
                vec![record],
            ),
            &OtlpLogsOptions::default(),
            5,
        );
        assert_eq!(n, 1);
        assert_eq!(streams.len(), 1);
        let labels = streams[0].labels.as_ref().unwrap();
        assert_eq!(
            labels.to_string(),
            r#"{k8s_pod_name="pod-1", service_name="checkout"}"#
        );
        let e = &streams[0].entries[0];
        assert_eq!(e.ts_ns, 1_700_000_000_123_456_789);
        assert_eq!(e.line, "payment failed");
        let meta: BTreeMap<&str, &str> = e
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(meta["trace_id"], "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(meta["span_id"], "0000000000000009");
        assert_eq!(meta["detected_level"], "error");
        assert_eq!(meta["severity_text"], "ERROR");
        assert_eq!(meta["severity_number"], "17");
        assert_eq!(meta["http_method"], "POST");
        assert_eq!(meta["host_name"], "h1");
        assert_eq!(meta["scope_name"], "app.http");
        assert!(!meta.contains_key("event_name"), "empty values are dropped");
    }

    #[test]
    fn configurable_labels_default_service_and_fallback_times() {
        let opts = OtlpLogsOptions {
            index_resource_attributes: vec!["host.name".into()],
        };
        let records = vec![
            LogRecord {
                observed_time_unix_nano: 42,
                severity_text: "warning".into(),
                ..Default::default()
            },
            LogRecord {
                trace_id: vec![0; 16],
                ..Default::default()
            },
        ];
        let (streams, _) = convert_logs(
            &request(
                vec![kv("host.name", "h1"), kv("service.name", "x")],
                records,
            ),
            &opts,
            7,
        );
        let labels = streams[0].labels.as_ref().unwrap();
        assert_eq!(
            labels.to_string(),
            r#"{host_name="h1", service_name="unknown_service"}"#
        );
        let e = &streams[0].entries;
        assert_eq!(e[0].ts_ns, 42);
        assert_eq!(e[1].ts_ns, 7);
        assert!(e[0]
            .metadata
            .contains(&("detected_level".into(), "warn".into())));
        assert!(e[0].metadata.contains(&("service_name".into(), "x".into())));
        assert!(
            !e[1].metadata.iter().any(|(k, _)| k == "trace_id"),
            "all-zero id is no id"
        );
    }

    #[test]
    fn names_and_levels() {
        assert_eq!(sanitize("k8s.pod-name"), "k8s_pod_name");
        assert_eq!(sanitize("1abc"), "_1abc");
        assert_eq!(detected_level(0, "Information"), "info");
        assert_eq!(detected_level(24, ""), "fatal");
        assert_eq!(detected_level(0, "?"), "unknown");
    }
}
