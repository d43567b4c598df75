//! Handler tests over a small in-memory store and a selector-only runner: parameters as
//! Grafana sends them, response shapes, index statistics and errors.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::Request;
use serde_json::{json, Value};
use sextant_storage::logs::{LogEntry, LogQuery};
use std::sync::Mutex;
use tower::ServiceExt;

use super::*;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_714_557_600 * S;

/// Streams held in memory; implements the read interfaces the API uses.
struct MemLogs {
    streams: Vec<(Labels, Vec<LogEntry>)>,
}

fn matches(m: &[Matcher], l: &Labels) -> bool {
    m.iter().all(|m| m.matches(l.get(&m.name).unwrap_or("")))
}

impl MemLogs {
    fn selected(&self, m: &[Matcher], start: i64, end: i64) -> Vec<(&Labels, Vec<&LogEntry>)> {
        self.streams
            .iter()
            .filter(|(l, _)| matches(m, l))
            .map(|(l, e)| {
                (
                    l,
                    e.iter()
                        .filter(|e| e.ts_ns >= start && e.ts_ns < end)
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, e)| !e.is_empty())
            .collect()
    }
}

impl LogSource for MemLogs {
    fn streams(&self, m: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, StorageError> {
        let mut v: Vec<Labels> = self
            .selected(m, start, end)
            .into_iter()
            .map(|(l, _)| l.clone())
            .collect();
        v.sort();
        Ok(v)
    }

    fn scan(
        &self,
        q: &LogQuery<'_>,
        visit: &mut dyn FnMut(&Labels, &LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        let mut all: Vec<(&Labels, &LogEntry)> = self
            .selected(q.matchers, q.start_ns, q.end_ns)
            .into_iter()
            .flat_map(|(l, es)| es.into_iter().map(move |e| (l, e)))
            .collect();
        all.sort_by(|a, b| a.1.ts_ns.cmp(&b.1.ts_ns).then_with(|| a.0.cmp(b.0)));
        if q.direction == Direction::Backward {
            all.reverse();
        }
        for (l, e) in all {
            if !visit(l, e) {
                break;
            }
        }
        Ok(())
    }

    fn label_names(
        &self,
        m: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StorageError> {
        let set: BTreeSet<String> = self
            .selected(m, start, end)
            .iter()
            .flat_map(|(l, _)| l.iter().map(|x| x.name.clone()))
            .collect();
        Ok(set.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        m: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StorageError> {
        let set: BTreeSet<String> = self
            .selected(m, start, end)
            .iter()
            .filter_map(|(l, _)| l.get(name).map(String::from))
            .collect();
        Ok(set.into_iter().collect())
    }
}

impl LogIndex for MemLogs {
    fn stream_stats(
        &self,
        m: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<(Labels, IndexStats)>, StorageError> {
        Ok(self
            .selected(m, start, end)
            .into_iter()
            .map(|(l, es)| {
                (
                    l.clone(),
                    IndexStats {
                        streams: 1,
                        chunks: 1,
                        entries: es.len() as u64,
                        bytes: es.iter().map(|e| e.line.len() as u64).sum(),
                    },
                )
            })
            .collect())
    }
}

/// Answers selector-only log queries by scanning the source (each entry its own result
/// stream with its metadata), and records what it was asked.
#[derive(Default)]
struct SelectorRunner {
    asked: Mutex<Vec<RangeRequest>>,
}

impl LogqlRunner for SelectorRunner {
    fn query_range(
        &self,
        src: &dyn LogSource,
        req: &RangeRequest,
    ) -> Result<(QueryData, QueryStats), LokiError> {
        self.asked.lock().unwrap().push(req.clone());
        let matchers = params::selector_matchers(&req.query).map_err(LokiError::bad_request)?;
        let mut streams: Vec<LokiStream> = Vec::new();
        let q = LogQuery {
            matchers: &matchers,
            start_ns: req.start_ns,
            end_ns: req.end_ns,
            direction: req.direction,
            needles: &[],
        };
        src.scan(&q, &mut |l, e| {
            let mut all: Vec<(String, String)> = l
                .iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect();
            all.extend(e.metadata.iter().cloned());
            streams.push(LokiStream {
                labels: Labels::from_pairs(all),
                stream_labels: l.clone(),
                entries: vec![LokiEntry {
                    ts_ns: e.ts_ns,
                    line: e.line.clone(),
                    metadata: e.metadata.clone(),
                    parsed: Vec::new(),
                }],
            });
            streams.len() < req.limit
        })?;
        let n = streams.len() as u64;
        Ok((
            QueryData::Streams(streams),
            QueryStats {
                entries_returned: n,
                ..QueryStats::default()
            },
        ))
    }

    fn query_instant(
        &self,
        _src: &dyn LogSource,
        query: &str,
        _ts_ns: i64,
        _limit: usize,
        _direction: Direction,
    ) -> Result<(QueryData, QueryStats), LokiError> {
        Err(LokiError::bad_request(format!(
            "cannot evaluate {query} here"
        )))
    }

    fn format(&self, query: &str) -> Result<String, LokiError> {
        params::selector_matchers(query).map_err(LokiError::bad_request)?;
        Ok(query.trim().to_string())
    }
}

fn entry(ts: i64, line: &str, meta: &[(&str, &str)]) -> LogEntry {
    LogEntry {
        ts_ns: ts,
        line: line.into(),
        metadata: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn app() -> (Router, Arc<SelectorRunner>) {
    let logs = Arc::new(MemLogs {
        streams: vec![
            (
                Labels::from_pairs([("job", "shop"), ("level", "info")]),
                vec![
                    entry(T0, "level=info msg=\"order placed\" took=12ms", &[]),
                    entry(
                        T0 + S,
                        "level=info msg=\"order paid\" took=9ms",
                        &[("trace_id", "abc")],
                    ),
                ],
            ),
            (
                Labels::from_pairs([("job", "shop"), ("level", "error")]),
                vec![entry(T0 + 2 * S, r#"{"msg":"declined","code":402}"#, &[])],
            ),
            (
                Labels::from_pairs([("job", "auth")]),
                vec![entry(T0 + 70 * S, "login ok", &[])],
            ),
        ],
    });
    let runner = Arc::new(SelectorRunner::default());
    let state = Arc::new(LokiApiState {
        source: logs.clone(),
        index: logs,
        engine: runner.clone(),
        version: "3.4.0".into(),
        revision: "test".into(),
    });
    (router(state), runner)
}

async fn get_json(app: &Router, uri: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (status, v)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn query_range_passes_grafana_params_and_categorizes_labels() {
    let (app, runner) = app();
    let uri = format!(
        "/loki/api/v1/query_range?direction=backward&end={}&limit=1000&query={}&start={}&step=15000ms",
        T0 + 60 * S,
        enc(r#"{job="shop"}"#),
        T0
    );
    let (status, v) = get_json(
        &app,
        &uri,
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let asked = runner.asked.lock().unwrap()[0].clone();
    assert_eq!(
        asked,
        RangeRequest {
            query: r#"{job="shop"}"#.into(),
            start_ns: T0,
            end_ns: T0 + 60 * S,
            step_ns: 15 * S,
            interval_ns: 0,
            limit: 1000,
            direction: Direction::Backward,
        }
    );
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "streams");
    assert_eq!(v["data"]["encodingFlags"], json!(["categorize-labels"]));
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(
        result[0]["stream"],
        json!({"job": "shop", "level": "error"})
    );
    assert_eq!(
        result[1]["values"],
        json!([
            [(T0 + S).to_string(), "level=info msg=\"order paid\" took=9ms", {"structuredMetadata": {"trace_id": "abc"}}],
            [T0.to_string(), "level=info msg=\"order placed\" took=12ms", {}]
        ])
    );
    assert_eq!(v["data"]["stats"]["summary"]["totalEntriesReturned"], 3);

    // Without the header: full label sets, 2-tuples.
    let (_, v) = get_json(&app, &uri, &[]).await;
    assert!(v["data"].get("encodingFlags").is_none());
    let streams: Vec<&Value> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["stream"])
        .collect();
    assert!(streams.contains(&&json!({"job": "shop", "level": "info", "trace_id": "abc"})));
    assert_eq!(
        v["data"]["result"][0]["values"][0]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn bad_parameters_answer_loki_errors() {
    let (app, _) = app();
    let q = enc(r#"{job="shop"}"#);
    for (uri, msg) in [
        (format!("/loki/api/v1/query_range?query={q}&step=0"), "zero or negative query resolution step widths are not accepted. Try a positive integer"),
        (format!("/loki/api/v1/query_range?query={q}&limit=-1"), "limit must be a positive value"),
        (format!("/loki/api/v1/query_range?query={q}&start=20&end=10"), "end timestamp must not be before or equal to start time"),
        ("/loki/api/v1/query_range".to_string(), "query parameter is required"),
    ] {
        let (status, v) = get_json(&app, &uri, &[]).await;
        assert_eq!(status, 400, "{uri}");
        assert_eq!(v, json!({"code": 400, "status": "error", "message": msg}), "{uri}");
    }
}

#[tokio::test]
async fn labels_values_and_series() {
    let (app, _) = app();
    let range = format!("start={}&end={}", T0, T0 + 100 * S);
    let (_, v) = get_json(&app, &format!("/loki/api/v1/labels?{range}"), &[]).await;
    assert_eq!(v, json!({"status": "success", "data": ["job", "level"]}));
    let (_, v) = get_json(&app, &format!("/loki/api/v1/label/job/values?{range}"), &[]).await;
    assert_eq!(v["data"], json!(["auth", "shop"]));
    let (_, v) = get_json(
        &app,
        &format!(
            "/loki/api/v1/label/level/values?{range}&query={}",
            enc(r#"{job="shop"}"#)
        ),
        &[],
    )
    .await;
    assert_eq!(v["data"], json!(["error", "info"]));
    // Only the first two seconds: the auth stream has no entries there.
    let (_, v) = get_json(
        &app,
        &format!(
            "/loki/api/v1/series?start={T0}&end={}&match[]={}",
            T0 + 3 * S,
            enc(r#"{job=~".+"}"#)
        ),
        &[],
    )
    .await;
    assert_eq!(
        v["data"],
        json!([{"job": "shop", "level": "error"}, {"job": "shop", "level": "info"}])
    );
}

#[tokio::test]
async fn index_stats_and_volumes() {
    let (app, _) = app();
    let range = format!("start={}&end={}", T0, T0 + 100 * S);
    let q = enc(r#"{job="shop"}"#);
    let (status, v) = get_json(
        &app,
        &format!("/loki/api/v1/index/stats?{range}&query={q}"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let b0 = "level=info msg=\"order placed\" took=12ms".len()
        + "level=info msg=\"order paid\" took=9ms".len()
        + r#"{"msg":"declined","code":402}"#.len();
    assert_eq!(
        v,
        json!({"streams": 2, "chunks": 2, "bytes": b0, "entries": 3})
    );

    let all = enc(r#"{job=~".+"}"#);
    let (_, v) = get_json(
        &app,
        &format!("/loki/api/v1/index/volume?{range}&query={all}"),
        &[],
    )
    .await;
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(
        v["data"]["result"],
        json!([
            {"metric": {"job": "shop"}, "value": [1714557700, b0.to_string()]},
            {"metric": {"job": "auth"}, "value": [1714557700, "8"]}
        ])
    );
    let (_, v) = get_json(
        &app,
        &format!("/loki/api/v1/index/volume?{range}&query={q}&targetLabels=level"),
        &[],
    )
    .await;
    assert_eq!(v["data"]["result"][0]["metric"], json!({"level": "info"}));

    let (_, v) = get_json(
        &app,
        &format!("/loki/api/v1/index/volume_range?start={T0}&end={}&step=60s&query={all}&aggregateBy=series", T0 + 119 * S),
        &[],
    )
    .await;
    assert_eq!(v["data"]["resultType"], "matrix");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 3);
    assert_eq!(
        result[0],
        json!({"metric": {"job": "auth"}, "values": [[1714557660, "8"]]})
    );
}

#[tokio::test]
async fn detected_labels_and_fields() {
    let (app, _) = app();
    let range = format!("start={}&end={}", T0, T0 + 100 * S);
    let (_, v) = get_json(
        &app,
        &format!(
            "/loki/api/v1/detected_labels?{range}&query={}",
            enc(r#"{job="shop"}"#)
        ),
        &[],
    )
    .await;
    assert_eq!(
        v,
        json!({"detectedLabels": [{"label": "job", "cardinality": 1}, {"label": "level", "cardinality": 2}]})
    );
    let (_, v) = get_json(
        &app,
        &format!(
            "/loki/api/v1/detected_fields?{range}&query={}",
            enc(r#"{job="shop"}"#)
        ),
        &[],
    )
    .await;
    let fields = v["fields"].as_array().unwrap();
    let find = |n: &str| {
        fields
            .iter()
            .find(|f| f["label"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        find("took"),
        json!({"label": "took", "type": "duration", "cardinality": 2, "parsers": ["logfmt"]})
    );
    assert_eq!(
        find("code"),
        json!({"label": "code", "type": "int", "cardinality": 1, "parsers": ["json"]})
    );
    assert_eq!(find("trace_id")["parsers"], Value::Null);
    assert_eq!(find("level"), Value::Null, "stream labels are not fields");
}

#[tokio::test]
async fn unknown_endpoints_are_404_and_buildinfo_answers() {
    let (app, _) = app();
    for uri in ["/loki/api/v1/patterns", "/loki/api/v1/nope/deeper"] {
        let (status, v) = get_json(&app, uri, &[]).await;
        assert_eq!(status, 404, "{uri}");
        assert_eq!(v["status"], "error");
    }
    let (status, v) = get_json(&app, "/loki/api/v1/status/buildinfo", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(v["version"], "3.4.0");
    let (_, v) = get_json(
        &app,
        &format!("/loki/api/v1/format_query?query={}", enc(r#" {job="a"} "#)),
        &[],
    )
    .await;
    assert_eq!(v, json!({"status": "success", "data": "{job=\"a\"}"}));
    let (status, v) = get_json(
        &app,
        &format!("/loki/api/v1/query?query={}", enc("{job=\"a\"}")),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["code"], 400);
}

#[tokio::test]
async fn tail_streams_existing_entries_over_a_websocket() {
    use futures_util::StreamExt;
    let (app, _) = app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!(
        "ws://{addr}/loki/api/v1/tail?query={}&start={T0}&limit=2",
        enc(r#"{job="shop"}"#)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .expect("a tail frame")
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    // Forward from `start`, at most `limit` entries in the first frame.
    let values: Vec<Value> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .collect();
    assert_eq!(
        values,
        vec![
            json!([T0.to_string(), "level=info msg=\"order placed\" took=12ms"]),
            json!([
                (T0 + S).to_string(),
                "level=info msg=\"order paid\" took=9ms"
            ])
        ]
    );
    assert!(v.get("dropped_entries").is_some());
    server.abort();
}

#[test]
fn tail_polls_resume_after_the_newest_entry() {
    let logs = Arc::new(MemLogs {
        streams: vec![(
            Labels::from_pairs([("job", "a")]),
            vec![entry(T0, "one", &[]), entry(T0 + S, "two", &[])],
        )],
    });
    let state = LokiApiState {
        source: logs.clone(),
        index: logs,
        engine: Arc::new(SelectorRunner::default()),
        version: String::new(),
        revision: String::new(),
    };
    let (frame, next) = tail::poll_once(&state, r#"{job="a"}"#, T0, T0 + 10 * S, 100).unwrap();
    assert_eq!(frame.unwrap()["streams"].as_array().unwrap().len(), 2);
    assert_eq!(next, T0 + S + 1);
    let (frame, again) = tail::poll_once(&state, r#"{job="a"}"#, next, T0 + 10 * S, 100).unwrap();
    assert!(frame.is_none());
    assert_eq!(again, next);
}
