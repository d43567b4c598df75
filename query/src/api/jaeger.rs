//! Jaeger's query API (the JSON shapes Grafana's Jaeger data source and the Jaeger UI read),
//! served under `/jaeger`: `/jaeger/api/services`, `/jaeger/api/services/{svc}/operations`,
//! `/jaeger/api/operations?service=&spanKind=`, `/jaeger/api/traces/{id}`,
//! `/jaeger/api/traces?service=&operation=&tags=&minDuration=&maxDuration=&limit=&start=&end=`
//! and `/jaeger/api/dependencies?endTs=&lookback=` (milliseconds; service edges computed from
//! parent/child spans of traces in the window, at most [`MAX_DEPENDENCY_TRACES`] traces).
//!
//! Path rule: Jaeger's `/api/traces/{id}` collides with Tempo's, so the Jaeger API lives under
//! the `/jaeger` prefix; point Grafana's Jaeger data source at `http://<host>:9090/jaeger`.
//! Jaeger search semantics: one span must satisfy service, operation, tags and the duration
//! bounds together (durations are span durations); `start`/`end` are Unix microseconds.
//! Envelope: `{"data":…,"total":n,"limit":0,"offset":0,"errors":null}`; errors fill `errors`
//! with `{"code","msg"}` and use the same HTTP status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sextant_storage::traces::{
    hex, Attr, AttrScope, AttrValue, FilterOp, FilterValue, Resource, SpanField, SpanFilter,
    SpanKind, StatusCode as OtelStatus, Trace, TraceId, TraceSource,
};
use sextant_storage::StorageError;

use super::params::Params;
use super::tempo::{encode::base64, parse_go_duration, quote, MAX_TAG_RESULTS};
use crate::traceql::{self, ast::kind_name, SearchRequest};

/// A Jaeger API error: HTTP status and message.
#[derive(Debug)]
pub struct JaegerError {
    pub status: StatusCode,
    pub msg: String,
}

impl JaegerError {
    fn bad_request(msg: impl Into<String>) -> JaegerError {
        JaegerError {
            status: StatusCode::BAD_REQUEST,
            msg: msg.into(),
        }
    }
}

impl From<StorageError> for JaegerError {
    fn from(e: StorageError) -> JaegerError {
        JaegerError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            msg: e.to_string(),
        }
    }
}

impl IntoResponse for JaegerError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({
                "data": null,
                "total": 0,
                "limit": 0,
                "offset": 0,
                "errors": [{ "code": self.status.as_u16(), "msg": self.msg }],
            })),
        )
            .into_response()
    }
}

fn envelope(data: Value, total: usize) -> Response {
    axum::Json(json!({
        "data": data,
        "total": total,
        "limit": 0,
        "offset": 0,
        "errors": null,
    }))
    .into_response()
}

/// The Jaeger routes, all under `/jaeger` (see the module docs for the path rule).
pub fn jaeger_router(source: Arc<dyn TraceSource>) -> Router {
    Router::new()
        .route("/jaeger/api/services", get(services))
        .route(
            "/jaeger/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/jaeger/api/operations", get(operations))
        .route("/jaeger/api/traces", get(find_traces))
        .route("/jaeger/api/traces/{id}", get(trace_by_id))
        .route("/jaeger/api/dependencies", get(dependencies))
        .with_state(source)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JaegerError> + Send + 'static,
) -> Result<T, JaegerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| JaegerError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            msg: format!("query task failed: {e}"),
        })?
}

fn service_field() -> SpanField {
    SpanField::Attr {
        scope: AttrScope::Resource,
        key: "service.name".into(),
    }
}

fn service_is(service: &str) -> SpanFilter {
    SpanFilter::Cond {
        field: service_field(),
        op: FilterOp::Eq,
        value: FilterValue::Str(service.to_string()),
    }
}

fn strings(values: Vec<AttrValue>) -> Vec<String> {
    values
        .into_iter()
        .filter_map(|v| match v {
            AttrValue::Str(s) => Some(s),
            _ => None,
        })
        .collect()
}

async fn services(State(src): State<Arc<dyn TraceSource>>) -> Result<Response, JaegerError> {
    let names = blocking(move || {
        Ok(strings(src.tag_values(
            &service_field(),
            &SpanFilter::True,
            0,
            u64::MAX,
            MAX_TAG_RESULTS,
        )?))
    })
    .await?;
    let n = names.len();
    Ok(envelope(json!(names), n))
}

async fn service_operations(
    State(src): State<Arc<dyn TraceSource>>,
    Path(service): Path<String>,
) -> Result<Response, JaegerError> {
    let names = blocking(move || {
        Ok(strings(src.tag_values(
            &SpanField::Name,
            &service_is(&service),
            0,
            u64::MAX,
            MAX_TAG_RESULTS,
        )?))
    })
    .await?;
    let n = names.len();
    Ok(envelope(json!(names), n))
}

const KINDS: [SpanKind; 6] = [
    SpanKind::Unspecified,
    SpanKind::Internal,
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Producer,
    SpanKind::Consumer,
];

/// `/api/operations?service=&spanKind=`: `[{"name","spanKind"}]`.
async fn operations(
    State(src): State<Arc<dyn TraceSource>>,
    RawQuery(q): RawQuery,
) -> Result<Response, JaegerError> {
    let p = Params::from_parts(None, q.as_deref());
    let service = p.get("service").to_string();
    if service.is_empty() {
        return Err(JaegerError::bad_request("parameter 'service' is required"));
    }
    let wanted = p.get("spanKind").to_string();
    let ops = blocking(move || {
        let mut ops: BTreeSet<(String, &'static str)> = BTreeSet::new();
        for kind in KINDS {
            let name = if kind == SpanKind::Unspecified {
                ""
            } else {
                kind_name(kind)
            };
            if !wanted.is_empty() && wanted != name {
                continue;
            }
            let filter = SpanFilter::And(vec![
                service_is(&service),
                SpanFilter::Cond {
                    field: SpanField::Kind,
                    op: FilterOp::Eq,
                    value: FilterValue::Kind(kind),
                },
            ]);
            for op in
                strings(src.tag_values(&SpanField::Name, &filter, 0, u64::MAX, MAX_TAG_RESULTS)?)
            {
                ops.insert((op, name));
            }
        }
        Ok(ops)
    })
    .await?;
    let data: Vec<Value> = ops
        .iter()
        .map(|(name, kind)| json!({ "name": name, "spanKind": kind }))
        .collect();
    let n = data.len();
    Ok(envelope(Value::Array(data), n))
}

fn micros(p: &Params, name: &str) -> Result<Option<u64>, JaegerError> {
    let v = p.get(name).trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<u64>()
        .map(|us| Some(us.saturating_mul(1000)))
        .map_err(|_| JaegerError::bad_request(format!("unable to parse param '{name}': {v:?}")))
}

async fn find_traces(
    State(src): State<Arc<dyn TraceSource>>,
    RawQuery(q): RawQuery,
) -> Result<Response, JaegerError> {
    let p = Params::from_parts(None, q.as_deref());
    let service = p.get("service");
    if service.is_empty() {
        return Err(JaegerError::bad_request("parameter 'service' is required"));
    }
    let mut conds = vec![format!("resource.service.name = {}", quote(service))];
    let operation = p.get("operation");
    if !operation.is_empty() {
        conds.push(format!("name = {}", quote(operation)));
    }
    let tags = p.get("tags").trim();
    if !tags.is_empty() {
        let map: BTreeMap<String, Value> = serde_json::from_str(tags)
            .map_err(|e| JaegerError::bad_request(format!("malformed 'tags' parameter: {e}")))?;
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let attr = format!(".{}", quote(&k));
            if v.parse::<f64>().is_ok() || v == "true" || v == "false" {
                conds.push(format!("({attr} = {} || {attr} = {v})", quote(&v)));
            } else {
                conds.push(format!("{attr} = {}", quote(&v)));
            }
        }
    }
    for (name, op) in [("minDuration", ">="), ("maxDuration", "<=")] {
        let v = p.get(name).trim();
        if v.is_empty() {
            continue;
        }
        let ns = parse_go_duration(v).ok_or_else(|| {
            JaegerError::bad_request(format!("unable to parse param '{name}': {v:?}"))
        })?;
        conds.push(format!("duration {op} {ns}ns"));
    }
    let limit = match p.get("limit").trim() {
        "" => 20,
        v => v.parse::<usize>().map_err(|_| {
            JaegerError::bad_request(format!("unable to parse param 'limit': {v:?}"))
        })?,
    };
    let text = format!("{{ {} }}", conds.join(" && "));
    let query = traceql::parse(&text).map_err(|e| JaegerError::bad_request(e.to_string()))?;
    let compiled = traceql::compile(&query).map_err(|e| JaegerError::bad_request(e.to_string()))?;
    let req = SearchRequest {
        start_ns: micros(&p, "start")?.unwrap_or(0),
        end_ns: micros(&p, "end")?.unwrap_or(u64::MAX),
        limit: if limit == 0 { 20 } else { limit },
        ..SearchRequest::default()
    };
    let traces = blocking(move || Ok(traceql::search_traces(&*src, &compiled, &req)?)).await?;
    let data: Vec<Value> = traces.iter().map(trace_json).collect();
    let n = data.len();
    Ok(envelope(Value::Array(data), n))
}

/// Most traces `/api/dependencies` reads.
pub const MAX_DEPENDENCY_TRACES: usize = 100_000;

/// `(parent service, child service) → calls` over the parent/child span pairs of `trace` that
/// cross services.
pub fn service_edges(trace: &Trace, edges: &mut BTreeMap<(String, String), u64>) {
    let mut service_of: std::collections::HashMap<[u8; 8], &str> = std::collections::HashMap::new();
    for b in &trace.batches {
        let svc = b.resource.service_name().unwrap_or("unknown_service");
        for s in &b.spans {
            service_of.insert(s.span_id, svc);
        }
    }
    for b in &trace.batches {
        let child = b.resource.service_name().unwrap_or("unknown_service");
        for s in &b.spans {
            if let Some(parent) = s.parent_span_id.and_then(|p| service_of.get(&p)) {
                if *parent != child {
                    *edges
                        .entry((parent.to_string(), child.to_string()))
                        .or_insert(0) += 1;
                }
            }
        }
    }
}

async fn dependencies(
    State(src): State<Arc<dyn TraceSource>>,
    RawQuery(q): RawQuery,
) -> Result<Response, JaegerError> {
    let p = Params::from_parts(None, q.as_deref());
    let ms = |name: &str| -> Result<Option<u64>, JaegerError> {
        match p.get(name).trim() {
            "" => Ok(None),
            v => v.parse::<u64>().map(Some).map_err(|_| {
                JaegerError::bad_request(format!("unable to parse param '{name}': {v:?}"))
            }),
        }
    };
    let end_ms = match ms("endTs")? {
        Some(v) => v,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    let lookback_ms = ms("lookback")?.unwrap_or(24 * 3_600_000);
    let end_ns = end_ms.saturating_mul(1_000_000);
    let start_ns = end_ms.saturating_sub(lookback_ms).saturating_mul(1_000_000);
    let edges = blocking(move || {
        let mut edges = BTreeMap::new();
        let mut seen = 0usize;
        let search = sextant_storage::traces::TraceSearch {
            start_ns,
            end_ns,
            filter: &[],
        };
        src.search(&search, &mut |t| {
            service_edges(&t, &mut edges);
            seen += 1;
            seen < MAX_DEPENDENCY_TRACES
        })?;
        Ok(edges)
    })
    .await?;
    let data: Vec<Value> = edges
        .into_iter()
        .map(|((parent, child), n)| json!({ "parent": parent, "child": child, "callCount": n }))
        .collect();
    let n = data.len();
    Ok(envelope(Value::Array(data), n))
}

async fn trace_by_id(
    State(src): State<Arc<dyn TraceSource>>,
    Path(id): Path<String>,
) -> Result<Response, JaegerError> {
    let tid = TraceId::from_hex(&id)
        .filter(|t| !t.is_zero())
        .ok_or_else(|| JaegerError::bad_request(format!("malformed trace id {id:?}")))?;
    let trace = blocking(move || Ok(src.trace(&tid, None)?)).await?;
    match trace {
        Some(t) => Ok(envelope(json!([trace_json(&t)]), 1)),
        None => Err(JaegerError {
            status: StatusCode::NOT_FOUND,
            msg: "trace not found".into(),
        }),
    }
}

/// Jaeger's trace id text: 16 hex digits when the high half is zero, else 32.
pub fn jaeger_trace_id(id: &TraceId) -> String {
    if id.0[..8] == [0; 8] {
        hex(&id.0[8..])
    } else {
        hex(&id.0)
    }
}

fn tag(key: &str, v: &AttrValue) -> Value {
    let (t, value) = match v {
        AttrValue::Str(s) => ("string", json!(s)),
        AttrValue::Bool(b) => ("bool", json!(b)),
        AttrValue::Int(i) => ("int64", json!(i)),
        AttrValue::Double(d) => ("float64", json!(d)),
        AttrValue::Bytes(b) => ("binary", json!(base64(b))),
        AttrValue::Empty => ("string", json!("")),
        other => (
            "string",
            json!(serde_json::to_string(&any_json(other)).unwrap_or_default()),
        ),
    };
    json!({ "key": key, "type": t, "value": value })
}

fn any_json(v: &AttrValue) -> Value {
    match v {
        AttrValue::Empty => Value::Null,
        AttrValue::Str(s) => json!(s),
        AttrValue::Bool(b) => json!(b),
        AttrValue::Int(i) => json!(i),
        AttrValue::Double(d) => json!(d),
        AttrValue::Bytes(b) => json!(base64(b)),
        AttrValue::Array(a) => Value::Array(a.iter().map(any_json).collect()),
        AttrValue::KvList(kv) => Value::Object(
            kv.iter()
                .map(|a| (a.key.clone(), any_json(&a.value)))
                .collect(),
        ),
    }
}

fn tags(attrs: &[Attr]) -> Vec<Value> {
    attrs.iter().map(|a| tag(&a.key, &a.value)).collect()
}

/// One trace in Jaeger's JSON model (`ui.Trace`).
pub fn trace_json(trace: &Trace) -> Value {
    let trace_id = jaeger_trace_id(&trace.id);
    // One process per distinct resource, numbered in order of appearance.
    let mut processes: Vec<&Resource> = Vec::new();
    let mut spans = Vec::new();
    for batch in &trace.batches {
        let pid = match processes.iter().position(|r| **r == *batch.resource) {
            Some(i) => i,
            None => {
                processes.push(&batch.resource);
                processes.len() - 1
            }
        };
        for s in &batch.spans {
            let mut span_tags = tags(&s.attributes);
            if !batch.scope.name.is_empty() {
                span_tags.push(tag(
                    "otel.scope.name",
                    &AttrValue::Str(batch.scope.name.clone()),
                ));
            }
            if !batch.scope.version.is_empty() {
                span_tags.push(tag(
                    "otel.scope.version",
                    &AttrValue::Str(batch.scope.version.clone()),
                ));
            }
            if !matches!(s.kind, SpanKind::Unspecified) {
                span_tags.push(tag("span.kind", &AttrValue::Str(kind_name(s.kind).into())));
            }
            match s.status_code {
                OtelStatus::Error => {
                    span_tags.push(tag("otel.status_code", &AttrValue::Str("ERROR".into())));
                    span_tags.push(tag("error", &AttrValue::Bool(true)));
                }
                OtelStatus::Ok => {
                    span_tags.push(tag("otel.status_code", &AttrValue::Str("OK".into())))
                }
                OtelStatus::Unset => {}
            }
            if !s.status_message.is_empty() {
                span_tags.push(tag(
                    "otel.status_description",
                    &AttrValue::Str(s.status_message.clone()),
                ));
            }
            let references: Vec<Value> = s
                .parent_span_id
                .iter()
                .map(|p| json!({ "refType": "CHILD_OF", "traceID": trace_id, "spanID": hex(p) }))
                .chain(s.links.iter().map(|l| {
                    json!({
                        "refType": "FOLLOWS_FROM",
                        "traceID": jaeger_trace_id(&l.trace_id),
                        "spanID": hex(&l.span_id),
                    })
                }))
                .collect();
            let logs: Vec<Value> = s
                .events
                .iter()
                .map(|e| {
                    let mut fields = vec![tag("event", &AttrValue::Str(e.name.clone()))];
                    fields.extend(tags(&e.attributes));
                    json!({ "timestamp": e.time_unix_nano / 1000, "fields": fields })
                })
                .collect();
            spans.push(json!({
                "traceID": trace_id,
                "spanID": hex(&s.span_id),
                "flags": s.flags,
                "operationName": s.name,
                "references": references,
                "startTime": s.start_unix_nano / 1000,
                "duration": s.duration_nanos() / 1000,
                "tags": span_tags,
                "logs": logs,
                "processID": format!("p{}", pid + 1),
                "warnings": null,
            }));
        }
    }
    let procs: serde_json::Map<String, Value> = processes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let other: Vec<Attr> = r
                .attributes
                .iter()
                .filter(|a| a.key != "service.name")
                .cloned()
                .collect();
            (
                format!("p{}", i + 1),
                json!({
                    "serviceName": r.service_name().unwrap_or("unknown_service"),
                    "tags": tags(&other),
                }),
            )
        })
        .collect();
    json!({
        "traceID": trace_id,
        "spans": spans,
        "processes": procs,
        "warnings": null,
    })
}
