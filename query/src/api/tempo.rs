//! The Tempo-compatible HTTP API that Grafana's Tempo data source uses: trace by id (v1, v2;
//! OTLP protobuf on `Accept: application/protobuf`, jsonpb JSON otherwise), TraceQL search,
//! tag names and values (v1, v2), `/api/echo`, `/api/status/buildinfo`, `/ready`.
//!
//! Errors are plain text with Tempo's status codes (400 for bad ids, parameters and TraceQL,
//! 404 for a missing trace, 500 for storage failures). Storage work runs on tokio's blocking
//! pool. Times in parameters are Unix seconds; durations Go-style (`100ms`, `1.5s`).

pub mod encode;
pub mod grpc;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prost::Message;
use serde_json::{json, Value};
use sextant_storage::traces::{AttrScope, AttrValue, SpanField, SpanFilter, TraceId, TraceSource};
use sextant_storage::StorageError;

use super::params::Params;
use crate::traceql::{
    self, ast::Attribute, ast::FieldExpr, ast::Intrinsic, ast::Pipeline, ast::SpansetExpr,
    ast::Static, SearchRequest, SearchResult, TraceMatch, ROOT_SPAN_NOT_YET_RECEIVED,
};

/// What `/api/status/buildinfo` reports (Tempo's field names).
#[derive(Clone, Debug)]
pub struct TempoBuildInfo {
    /// The Tempo version we are compatible with; Grafana enables features by it.
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

impl Default for TempoBuildInfo {
    fn default() -> Self {
        TempoBuildInfo {
            version: "2.8.0".into(),
            revision: String::new(),
            branch: String::new(),
            build_user: String::new(),
            build_date: String::new(),
            go_version: String::new(),
        }
    }
}

/// Most tag names / values one request returns.
pub const MAX_TAG_RESULTS: usize = 10_000;

/// The intrinsics listed under the `intrinsic` scope of `/api/v2/search/tags`.
pub const INTRINSIC_TAGS: &[&str] = &[
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
];

struct TempoState {
    source: Arc<dyn TraceSource>,
    info: TempoBuildInfo,
}

/// The Tempo routes (`/api/echo`, `/api/status/buildinfo`, `/ready`, `/api/traces/{id}`,
/// `/api/v2/traces/{id}`, `/api/search`, `/api/search/tags`, `/api/v2/search/tags`,
/// `/api/search/tag/{tag}/values`, `/api/v2/search/tag/{tag}/values`). No fallback is set, so
/// it merges freely with the other routers. Jaeger's API is [`super::jaeger::jaeger_router`],
/// under `/jaeger` because its `/api/traces/{id}` collides with Tempo's.
pub fn tempo_router(source: Arc<dyn TraceSource>, info: TempoBuildInfo) -> Router {
    let state = Arc::new(TempoState { source, info });
    Router::new()
        .route("/api/echo", get(|| async { "echo" }))
        .route("/ready", get(|| async { "ready" }))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/search", get(search))
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tag_values_v2))
        .with_state(state)
}

/// A failed request: status and plain-text message, as Tempo answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempoError {
    pub status: StatusCode,
    pub message: String,
}

impl TempoError {
    pub fn bad_request(message: impl Into<String>) -> TempoError {
        TempoError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<StorageError> for TempoError {
    fn from(e: StorageError) -> TempoError {
        TempoError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for TempoError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response()
    }
}

/// Runs storage work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TempoError> + Send + 'static,
) -> Result<T, TempoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TempoError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("query task failed: {e}"),
        })?
}

async fn buildinfo(State(st): State<Arc<TempoState>>) -> Response {
    let i = &st.info;
    axum::Json(json!({
        "version": i.version,
        "revision": i.revision,
        "branch": i.branch,
        "buildUser": i.build_user,
        "buildDate": i.build_date,
        "goVersion": i.go_version,
    }))
    .into_response()
}

fn params(q: Option<String>) -> Params {
    Params::from_parts(None, q.as_deref())
}

/// A Unix-seconds parameter (`""` → `None`).
fn seconds(p: &Params, name: &str) -> Result<Option<u64>, TempoError> {
    let v = p.get(name).trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<u64>()
        .map(|s| Some(s.saturating_mul(1_000_000_000)))
        .map_err(|_| {
            TempoError::bad_request(format!(
                "invalid {name}: {v:?} is not a Unix time in seconds"
            ))
        })
}

/// The `[start, end]` range in ns: end defaults to forever, start to zero; `end` is inclusive
/// of its whole second.
fn time_range(p: &Params) -> Result<(u64, u64), TempoError> {
    let start = seconds(p, "start")?.unwrap_or(0);
    let end = match seconds(p, "end")? {
        Some(e) => e.saturating_add(999_999_999),
        None => u64::MAX,
    };
    if end < start {
        return Err(TempoError::bad_request(
            "invalid start and end: end must be after start",
        ));
    }
    Ok((start, end))
}

fn parse_trace_id(id: &str) -> Result<TraceId, TempoError> {
    let parsed = TraceId::from_hex(id).ok_or_else(|| {
        TempoError::bad_request(format!(
            "invalid trace id {id:?}: expected 1 to 32 hex digits"
        ))
    })?;
    if parsed.is_zero() {
        return Err(TempoError::bad_request("invalid trace id: all zeros"));
    }
    Ok(parsed)
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/protobuf") || v.contains("application/x-protobuf"))
}

async fn load_trace(
    st: &Arc<TempoState>,
    id: &str,
    q: Option<String>,
) -> Result<sextant_storage::traces::Trace, TempoError> {
    let id = parse_trace_id(id)?;
    let p = params(q);
    let range = match (seconds(&p, "start")?, seconds(&p, "end")?) {
        (None, None) => None,
        (s, e) => Some((
            s.unwrap_or(0),
            e.map_or(u64::MAX, |e| e.saturating_add(999_999_999)),
        )),
    };
    let source = st.source.clone();
    let trace = blocking(move || Ok(source.trace(&id, range)?)).await?;
    trace.ok_or_else(|| TempoError {
        status: StatusCode::NOT_FOUND,
        message: format!("trace not found: {}", id.to_hex()),
    })
}

fn protobuf(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/protobuf")], bytes).into_response()
}

async fn trace_v1(
    State(st): State<Arc<TempoState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, TempoError> {
    let trace = load_trace(&st, &id, q).await?;
    if wants_protobuf(&headers) {
        return Ok(protobuf(encode::traces_data(&trace).encode_to_vec()));
    }
    Ok(axum::Json(json!({ "batches": encode::resource_spans_json(&trace) })).into_response())
}

async fn trace_v2(
    State(st): State<Arc<TempoState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, TempoError> {
    let trace = load_trace(&st, &id, q).await?;
    if wants_protobuf(&headers) {
        let resp = encode::TraceByIdResponse {
            trace: Some(encode::traces_data(&trace)),
        };
        return Ok(protobuf(resp.encode_to_vec()));
    }
    Ok(axum::Json(json!({
        "trace": { "resourceSpans": encode::resource_spans_json(&trace) },
        "metrics": {},
    }))
    .into_response())
}

/// A Go-style duration (`300ms`, `1.5s`, `1h30m`, or bare nanoseconds) in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    match traceql::parse(&format!("{{ duration > {s} }}"))
        .ok()?
        .source
        .as_ref()
    {
        SpansetExpr::Filter(FieldExpr::Cmp { rhs, .. }) => match rhs.as_ref() {
            FieldExpr::Static(Static::Duration(d)) => Some(*d),
            _ => None,
        },
        _ => None,
    }
}

fn usize_param(p: &Params, name: &str, default: usize) -> Result<usize, TempoError> {
    let v = p.get(name).trim();
    if v.is_empty() {
        return Ok(default);
    }
    match v.parse::<usize>() {
        Ok(0) => Ok(default),
        Ok(n) => Ok(n),
        Err(_) => Err(TempoError::bad_request(format!(
            "invalid {name}: {v:?} is not a positive integer"
        ))),
    }
}

/// Escapes a string for a TraceQL string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Legacy `tags` (logfmt `k=v k2="v 2"`) as a TraceQL span filter: all pairs must hold on one
/// span (with its resource). `name` is the span name,
/// `status.code` the status; other keys are unscoped attributes compared as strings (or as
/// numbers when the value is numeric).
pub(crate) fn tags_to_traceql(tags: &str) -> Result<String, TempoError> {
    let mut conds = Vec::new();
    let mut rest = tags.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| TempoError::bad_request(format!("invalid tags: {tags:?}")))?;
        let key = rest[..eq].trim();
        rest = &rest[eq + 1..];
        let value: String;
        if let Some(r) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = r.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            out.push(e);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let end =
                end.ok_or_else(|| TempoError::bad_request(format!("invalid tags: {tags:?}")))?;
            value = out;
            rest = r[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = rest[..end].to_string();
            rest = rest[end..].trim_start();
        }
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(TempoError::bad_request(format!("invalid tags: {tags:?}")));
        }
        let cond = match key {
            "name" => format!("name = {}", quote(&value)),
            "status.code" | "status" => match value.as_str() {
                "error" | "ok" | "unset" => format!("status = {value}"),
                _ => return Err(TempoError::bad_request(format!("invalid status {value:?}"))),
            },
            _ => {
                let attr = format!(".{}", quote(key));
                if value.parse::<i64>().is_ok() || value.parse::<f64>().is_ok() {
                    format!("({attr} = {} || {attr} = {value})", quote(&value))
                } else {
                    format!("{attr} = {}", quote(&value))
                }
            }
        };
        conds.push(cond);
    }
    if conds.is_empty() {
        return Ok("{}".into());
    }
    Ok(format!("{{ {} }}", conds.join(" && ")))
}

fn invalid_traceql(e: impl std::fmt::Display) -> TempoError {
    TempoError::bad_request(format!("invalid TraceQL query: {e}"))
}

async fn search(
    State(st): State<Arc<TempoState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, TempoError> {
    let p = params(q);
    let (start_ns, end_ns) = time_range(&p)?;
    let dur = |name: &str| -> Result<Option<u64>, TempoError> {
        let v = p.get(name).trim();
        if v.is_empty() {
            return Ok(None);
        }
        parse_go_duration(v)
            .map(Some)
            .ok_or_else(|| TempoError::bad_request(format!("invalid {name}: {v:?}")))
    };
    let req = SearchRequest {
        start_ns,
        end_ns,
        limit: usize_param(&p, "limit", 20)?,
        spss: usize_param(&p, "spss", 3)?,
        min_trace_duration_ns: dur("minDuration")?,
        max_trace_duration_ns: dur("maxDuration")?,
    };
    let text = if !p.get("q").trim().is_empty() {
        p.get("q").to_string()
    } else {
        tags_to_traceql(p.get("tags"))?
    };
    let query: Pipeline = traceql::parse(&text).map_err(invalid_traceql)?;
    let compiled = traceql::compile(&query).map_err(invalid_traceql)?;
    let source = st.source.clone();
    // The body is serialised on the blocking thread, straight from the result (no `Value`
    // tree): its bytes equal `search_json`'s.
    let body = blocking(move || {
        let result = traceql::search(&*source, &compiled, &req)?;
        Ok(search_body(&result))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// [`search_json`] serialised (same bytes: keys in the same sorted order).
pub fn search_body(r: &SearchResult) -> Vec<u8> {
    use serde::ser::{SerializeMap, SerializeSeq};
    use serde::{Serialize, Serializer};

    struct Kvs<'a>(&'a [(String, AttrValue)]);
    impl Serialize for Kvs<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for (k, v) in self.0 {
                seq.serialize_element(&json!({ "key": k, "value": encode::any_value_json(v) }))?;
            }
            seq.end()
        }
    }
    struct Set<'a>(&'a traceql::Spanset);
    impl Serialize for Set<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let set = self.0;
            let mut m = s.serialize_map(None)?;
            if !set.attributes.is_empty() {
                m.serialize_entry("attributes", &Kvs(&set.attributes))?;
            }
            m.serialize_entry("matched", &set.matched)?;
            m.serialize_entry("spans", &Spans(&set.spans))?;
            m.end()
        }
    }
    struct Spans<'a>(&'a [traceql::SpanMatch]);
    impl Serialize for Spans<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for sp in self.0 {
                seq.serialize_element(&OneSpan(sp))?;
            }
            seq.end()
        }
    }
    struct OneSpan<'a>(&'a traceql::SpanMatch);
    impl Serialize for OneSpan<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let sp = self.0;
            let mut m = s.serialize_map(None)?;
            if !sp.attributes.is_empty() {
                m.serialize_entry("attributes", &Kvs(&sp.attributes))?;
            }
            m.serialize_entry("durationNanos", &sp.duration_ns.to_string())?;
            m.serialize_entry("name", &sp.name)?;
            m.serialize_entry("spanID", &sextant_storage::traces::hex(&sp.span_id))?;
            m.serialize_entry("startTimeUnixNano", &sp.start_ns.to_string())?;
            m.end()
        }
    }
    struct Sets<'a>(&'a [traceql::Spanset]);
    impl Serialize for Sets<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for set in self.0 {
                seq.serialize_element(&Set(set))?;
            }
            seq.end()
        }
    }
    struct OneTrace<'a>(&'a TraceMatch);
    impl Serialize for OneTrace<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let t = self.0;
            let mut m = s.serialize_map(None)?;
            let ms = t.duration_ns / 1_000_000;
            if ms > 0 {
                m.serialize_entry("durationMs", &ms)?;
            }
            m.serialize_entry(
                "rootServiceName",
                t.root_service_name
                    .as_deref()
                    .unwrap_or(ROOT_SPAN_NOT_YET_RECEIVED),
            )?;
            if let Some(name) = &t.root_trace_name {
                m.serialize_entry("rootTraceName", name)?;
            }
            if let Some(first) = t.spansets.first() {
                m.serialize_entry("spanSet", &Set(first))?;
            }
            m.serialize_entry("spanSets", &Sets(&t.spansets))?;
            m.serialize_entry("startTimeUnixNano", &t.start_ns.to_string())?;
            m.serialize_entry("traceID", &search_trace_id(&t.trace_id))?;
            m.end()
        }
    }
    struct Traces<'a>(&'a [TraceMatch]);
    impl Serialize for Traces<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for t in self.0 {
                seq.serialize_element(&OneTrace(t))?;
            }
            seq.end()
        }
    }
    struct Body<'a>(&'a SearchResult);
    impl Serialize for Body<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let r = self.0;
            let mut m = s.serialize_map(None)?;
            m.serialize_entry(
                "metrics",
                &json!({
                    "inspectedTraces": r.inspected_traces,
                    "inspectedBytes": "0",
                    "inspectedSpans": r.inspected_spans.to_string(),
                    "completedJobs": 1,
                    "totalJobs": 1,
                }),
            )?;
            m.serialize_entry("traces", &Traces(&r.traces))?;
            m.end()
        }
    }
    let mut out = Vec::with_capacity(256 + 1024 * r.traces.len());
    // Serialising plain strings and numbers into a Vec cannot fail.
    if serde_json::to_writer(&mut out, &Body(r)).is_err() {
        out.clear();
    }
    out
}

/// Tempo's hex form of a trace id in search results: leading zeros removed.
pub fn search_trace_id(id: &TraceId) -> String {
    let hex = id.to_hex();
    let trimmed = hex.trim_start_matches('0');
    trimmed.to_string()
}

fn kv_json(attrs: &[(String, AttrValue)]) -> Vec<Value> {
    attrs
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": encode::any_value_json(v) }))
        .collect()
}

fn trace_json(t: &TraceMatch) -> Value {
    let spansets: Vec<Value> = t
        .spansets
        .iter()
        .map(|s| {
            let spans: Vec<Value> = s
                .spans
                .iter()
                .map(|sp| {
                    let mut m = json!({
                        "spanID": sextant_storage::traces::hex(&sp.span_id),
                        "name": sp.name,
                        "startTimeUnixNano": sp.start_ns.to_string(),
                        "durationNanos": sp.duration_ns.to_string(),
                    });
                    if !sp.attributes.is_empty() {
                        m["attributes"] = Value::Array(kv_json(&sp.attributes));
                    }
                    m
                })
                .collect();
            let mut m = json!({ "spans": spans, "matched": s.matched });
            if !s.attributes.is_empty() {
                m["attributes"] = Value::Array(kv_json(&s.attributes));
            }
            m
        })
        .collect();
    let mut m = json!({
        "traceID": search_trace_id(&t.trace_id),
        "rootServiceName": t.root_service_name.as_deref().unwrap_or(ROOT_SPAN_NOT_YET_RECEIVED),
        "startTimeUnixNano": t.start_ns.to_string(),
    });
    if let Some(name) = &t.root_trace_name {
        m["rootTraceName"] = json!(name);
    }
    let ms = t.duration_ns / 1_000_000;
    if ms > 0 {
        m["durationMs"] = json!(ms);
    }
    if let Some(first) = spansets.first() {
        m["spanSet"] = first.clone();
    }
    m["spanSets"] = Value::Array(spansets);
    m
}

/// The `/api/search` body.
pub fn search_json(r: &SearchResult) -> Value {
    json!({
        "traces": r.traces.iter().map(trace_json).collect::<Vec<_>>(),
        "metrics": {
            "inspectedTraces": r.inspected_traces,
            "inspectedBytes": "0",
            "inspectedSpans": r.inspected_spans.to_string(),
            "completedJobs": 1,
            "totalJobs": 1,
        },
    })
}

async fn tags_v1(
    State(st): State<Arc<TempoState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, TempoError> {
    let p = params(q);
    let (start, end) = time_range(&p)?;
    let source = st.source.clone();
    let names =
        blocking(move || Ok(source.tag_names(AttrScope::Any, start, end, MAX_TAG_RESULTS)?))
            .await?;
    Ok(axum::Json(json!({ "tagNames": names })).into_response())
}

async fn tags_v2(
    State(st): State<Arc<TempoState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, TempoError> {
    let p = params(q);
    let (start, end) = time_range(&p)?;
    let scope = p.get("scope").trim().to_string();
    let wanted: Vec<&str> = match scope.as_str() {
        "" | "all" => vec!["span", "resource", "intrinsic"],
        "span" | "resource" | "intrinsic" => vec![scope.as_str()],
        other => {
            return Err(TempoError::bad_request(format!(
                "invalid scope {other:?}: expected span, resource, intrinsic or all"
            )))
        }
    };
    let scopes: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
    let source = st.source.clone();
    let out = blocking(move || {
        let mut out = Vec::new();
        for s in &scopes {
            let tags: Vec<String> = match s.as_str() {
                "span" => source.tag_names(AttrScope::Span, start, end, MAX_TAG_RESULTS)?,
                "resource" => source.tag_names(AttrScope::Resource, start, end, MAX_TAG_RESULTS)?,
                _ => INTRINSIC_TAGS.iter().map(|s| s.to_string()).collect(),
            };
            out.push(json!({ "name": s, "tags": tags }));
        }
        Ok(out)
    })
    .await?;
    Ok(axum::Json(json!({ "scopes": out })).into_response())
}

fn value_text(v: &AttrValue) -> Option<String> {
    Some(match v {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Double(d) => d.to_string(),
        AttrValue::Bool(b) => b.to_string(),
        _ => return None,
    })
}

async fn tag_values_v1(
    State(st): State<Arc<TempoState>>,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, TempoError> {
    let p = params(q);
    let (start, end) = time_range(&p)?;
    let field = match tag.as_str() {
        "name" => SpanField::Name,
        _ => SpanField::Attr {
            scope: AttrScope::Any,
            key: tag.clone(),
        },
    };
    let source = st.source.clone();
    let values = blocking(move || {
        Ok(source.tag_values(&field, &SpanFilter::True, start, end, MAX_TAG_RESULTS)?)
    })
    .await?;
    let values: BTreeSet<String> = values.iter().filter_map(value_text).collect();
    Ok(axum::Json(json!({ "tagValues": values })).into_response())
}

fn typed(v: &AttrValue) -> Option<Value> {
    let (t, s) = match v {
        AttrValue::Str(s) => ("string", s.clone()),
        AttrValue::Int(i) => ("int", i.to_string()),
        AttrValue::Double(d) => ("float", d.to_string()),
        AttrValue::Bool(b) => ("bool", b.to_string()),
        _ => return None,
    };
    Some(json!({ "type": t, "value": s }))
}

fn keywords(words: &[&str]) -> Response {
    let values: Vec<Value> = words
        .iter()
        .map(|w| json!({ "type": "keyword", "value": w }))
        .collect();
    axum::Json(json!({ "tagValues": values })).into_response()
}

async fn tag_values_v2(
    State(st): State<Arc<TempoState>>,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, TempoError> {
    let p = params(q);
    let (start, end) = time_range(&p)?;
    let attr = traceql::parse_attribute(&tag)
        .map_err(|e| TempoError::bad_request(format!("invalid tag {tag:?}: {e}")))?;
    let field = match &attr {
        Attribute::Intrinsic(Intrinsic::Status) => return Ok(keywords(&["error", "ok", "unset"])),
        Attribute::Intrinsic(Intrinsic::Kind) => {
            return Ok(keywords(&[
                "client",
                "consumer",
                "internal",
                "producer",
                "server",
                "unspecified",
            ]))
        }
        Attribute::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration) => {
            return Ok(axum::Json(json!({ "tagValues": [] })).into_response())
        }
        Attribute::Intrinsic(Intrinsic::Name | Intrinsic::RootName) => SpanField::Name,
        Attribute::Intrinsic(Intrinsic::StatusMessage) => SpanField::StatusMessage,
        Attribute::Intrinsic(Intrinsic::RootServiceName) => SpanField::Attr {
            scope: AttrScope::Resource,
            key: "service.name".into(),
        },
        Attribute::Scoped { scope, key } => SpanField::Attr {
            scope: *scope,
            key: key.clone(),
        },
    };
    // `q` narrows the values to spans matching it; Grafana sends the query being typed, which
    // may be incomplete: then no narrowing is applied.
    let narrow = match p.get("q").trim() {
        "" => SpanFilter::True,
        text => traceql::parse(text)
            .ok()
            .and_then(|q| traceql::span_predicate(&q).ok().flatten())
            .unwrap_or(SpanFilter::True),
    };
    let source = st.source.clone();
    let values =
        blocking(move || Ok(source.tag_values(&field, &narrow, start, end, MAX_TAG_RESULTS)?))
            .await?;
    let values: Vec<Value> = values.iter().filter_map(typed).collect();
    Ok(axum::Json(json!({ "tagValues": values })).into_response())
}

#[cfg(test)]
mod tests;
