//! The request sequence Grafana's Loki data source sends, against a `sextant` started by the
//! test: the data source health check (`vector(1)+vector(1)` = 2), Explore's label browser,
//! the query-size estimate (`index/stats`), a log query with a line filter (with
//! `categorize-labels`), the logs-volume histogram query, the volume endpoint, and the two
//! "show context" queries around one row. Logs arrive through the Loki push API (protobuf +
//! snappy and JSON), as an agent would send them.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use serde_json::{json, Value};
use sextant_ingest::loki::proto::{
    EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp,
};
use support::{urlencode, Server};

const S: i64 = 1_000_000_000;

struct Loki {
    client: reqwest::Client,
    base: String,
}

impl Loki {
    async fn get(&self, path: &str, params: &[(&str, String)], categorize: bool) -> (u16, Value) {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        let mut req = self
            .client
            .get(format!("{}{path}?{}", self.base, query.join("&")))
            .header("X-Query-Tags", "Source=grafana-explore")
            .timeout(Duration::from_secs(30));
        if categorize {
            req = req.header("X-Loki-Response-Encoding-Flags", "categorize-labels");
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Lines of the checkout service, one second apart, ending 10 s ago; every third is a
/// payment failure with a trace id in structured metadata.
fn checkout_lines(base: i64) -> Vec<(i64, String, Option<String>)> {
    (0..30)
        .map(|i| {
            let ts = base + i * S;
            if i % 3 == 0 {
                (
                    ts,
                    format!("level=error msg=\"payment failed\" order={i}"),
                    Some(format!("trace{i:04}")),
                )
            } else {
                (
                    ts,
                    format!("level=info msg=\"order accepted\" order={i}"),
                    None,
                )
            }
        })
        .collect()
}

async fn push_fixture(base_url: &str, base: i64) {
    let lines = checkout_lines(base);
    let by_level = |level: &str| -> Vec<EntryAdapter> {
        lines
            .iter()
            .filter(|(_, l, _)| l.contains(&format!("level={level}")))
            .map(|(ts, line, trace)| EntryAdapter {
                timestamp: Some(Timestamp::from_ns(*ts)),
                line: line.clone(),
                structured_metadata: trace
                    .iter()
                    .map(|t| LabelPairAdapter {
                        name: "trace_id".into(),
                        value: t.clone(),
                    })
                    .collect(),
                parsed: vec![],
            })
            .collect()
    };
    let req = PushRequest {
        streams: vec![
            StreamAdapter {
                labels: r#"{service_name="checkout", level="info", env="prod"}"#.into(),
                entries: by_level("info"),
                hash: 0,
            },
            StreamAdapter {
                labels: r#"{service_name="checkout", level="error", env="prod"}"#.into(),
                entries: by_level("error"),
                hash: 0,
            },
        ],
        format: String::new(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base_url}/loki/api/v1/push"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    // A second service through JSON.
    let json_body = json!({"streams": [{
        "stream": {"service_name": "auth", "env": "prod"},
        "values": [[(base + 5 * S).to_string(), "login ok user=alice"]]
    }]});
    let resp = client
        .post(format!("{base_url}/loki/api/v1/push"))
        .json(&json_body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_explore_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let config = support::write_config(tmp.path(), &["wal_fsync: never"]);
    let log = tmp.path().join("sextant.log");
    let server = Server::start(&config, &tmp.path().join("data"), &log).await;
    let now = now_ns();
    let base = now - 40 * S;
    push_fixture(&server.base, base).await;
    let loki = Loki {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let (start, end) = ((now - 3600 * S).to_string(), now.to_string());

    // 1. "Save & test": the health check.
    let (status, v) = loki
        .get(
            "/loki/api/v1/query",
            &[
                ("query", "vector(1)+vector(1)".into()),
                ("time", end.clone()),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"][0]["value"][1], "2");

    // 2. The label browser.
    let (_, v) = loki
        .get(
            "/loki/api/v1/labels",
            &[("start", start.clone()), ("end", end.clone())],
            false,
        )
        .await;
    assert_eq!(v["data"], json!(["env", "level", "service_name"]));
    let (_, v) = loki
        .get(
            "/loki/api/v1/label/service_name/values",
            &[("start", start.clone()), ("end", end.clone())],
            false,
        )
        .await;
    assert_eq!(v["data"], json!(["auth", "checkout"]));

    // 3. The query editor's size estimate.
    let query = r#"{service_name="checkout"} |= "payment failed""#;
    let (_, v) = loki
        .get(
            "/loki/api/v1/index/stats",
            &[
                ("query", query.into()),
                ("start", start.clone()),
                ("end", end.clone()),
            ],
            false,
        )
        .await;
    assert_eq!(v["streams"], 2, "{v}");
    assert_eq!(v["entries"], 30, "{v}");

    // 4. The log query itself (Explore: backward, limit 1000, step in ms, categorize-labels).
    let (status, v) = loki
        .get(
            "/loki/api/v1/query_range",
            &[
                ("direction", "backward".into()),
                ("end", end.clone()),
                ("limit", "1000".into()),
                ("query", query.into()),
                ("start", start.clone()),
                ("step", "2000ms".into()),
            ],
            true,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "streams");
    assert_eq!(v["data"]["encodingFlags"], json!(["categorize-labels"]));
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(
        result[0]["stream"],
        json!({"env": "prod", "level": "error", "service_name": "checkout"})
    );
    let values = result[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 10);
    // Newest first; nanosecond strings; trace ids as structured metadata.
    let newest = base + 27 * S;
    assert_eq!(values[0][0], newest.to_string());
    assert_eq!(values[0][1], "level=error msg=\"payment failed\" order=27");
    assert_eq!(
        values[0][2],
        json!({"structuredMetadata": {"trace_id": "trace0027"}})
    );
    assert!(v["data"]["stats"]["summary"]["execTime"].is_number());

    // 5. The logs-volume histogram Explore runs beside it.
    let volume_query =
        format!("sum by (level, detected_level) (count_over_time({query} | drop __error__[2s]))");
    let (status, v) = loki
        .get(
            "/loki/api/v1/query_range",
            &[
                ("direction", "backward".into()),
                ("end", end.clone()),
                ("limit", "1000".into()),
                ("query", volume_query),
                ("start", start.clone()),
                ("step", "2000ms".into()),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    let series = v["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{v}");
    assert_eq!(series[0]["metric"]["level"], "error");
    let total: f64 = series[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    // Each line falls in exactly one of the 2 s windows ending at the step points.
    assert_eq!(total, 10.0, "{v}");

    // 6. The volume panel of the label browser / Drilldown.
    let (_, v) = loki
        .get(
            "/loki/api/v1/index/volume",
            &[
                ("query", r#"{env="prod"}"#.into()),
                ("start", start.clone()),
                ("end", end.clone()),
                ("targetLabels", "service_name".into()),
            ],
            false,
        )
        .await;
    let volumes = v["data"]["result"].as_array().unwrap();
    assert_eq!(volumes[0]["metric"], json!({"service_name": "checkout"}));
    assert_eq!(volumes[1]["metric"], json!({"service_name": "auth"}));
    assert_eq!(volumes[1]["value"][1], "19");

    // 7. "Show context" on the row at order=15: the stream selector without the filter,
    //    10 lines before (backward, ending at the row) and after (forward, from the row).
    let row = base + 15 * S;
    let context = r#"{env="prod", level="error", service_name="checkout"}"#;
    let (_, before) = loki
        .get(
            "/loki/api/v1/query_range",
            &[
                ("direction", "backward".into()),
                ("end", row.to_string()),
                ("limit", "10".into()),
                ("query", context.into()),
                ("start", (row - 2 * 3600 * S).to_string()),
                ("step", "1000ms".into()),
            ],
            true,
        )
        .await;
    let lines: Vec<&str> = before["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[1].as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "level=error msg=\"payment failed\" order=12",
            "level=error msg=\"payment failed\" order=9",
            "level=error msg=\"payment failed\" order=6",
            "level=error msg=\"payment failed\" order=3",
            "level=error msg=\"payment failed\" order=0"
        ]
    );
    let (_, after) = loki
        .get(
            "/loki/api/v1/query_range",
            &[
                ("direction", "forward".into()),
                ("end", (row + 2 * 3600 * S).to_string()),
                ("limit", "10".into()),
                ("query", context.into()),
                ("start", row.to_string()),
                ("step", "1000ms".into()),
            ],
            true,
        )
        .await;
    let ts: Vec<i64> = after["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ts, (0..5).map(|i| row + 3 * i * S).collect::<Vec<_>>());

    // 8. A parser in the query: with categorize-labels the parsed fields travel in the third
    //    element, not in the stream labels.
    let (status, v) = loki
        .get(
            "/loki/api/v1/query_range",
            &[
                ("direction", "backward".into()),
                ("end", end.clone()),
                ("limit", "1000".into()),
                (
                    "query",
                    r#"{service_name="checkout", level="info"} | logfmt | order > 25"#.into(),
                ),
                ("start", start.clone()),
                ("step", "2000ms".into()),
            ],
            true,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(
        result[0]["stream"],
        json!({"env": "prod", "level": "info", "service_name": "checkout"})
    );
    let values = result[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 3, "{v}");
    assert_eq!(values[0][1], "level=info msg=\"order accepted\" order=29");
    assert_eq!(values[0][2]["parsed"]["order"], "29", "{v}");
    assert_eq!(values[0][2]["parsed"]["msg"], "order accepted", "{v}");

    // 9. Instant log queries are refused; unknown endpoints are 404.
    let (status, v) = loki
        .get("/loki/api/v1/query", &[("query", context.into())], false)
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["status"], "error");
    let (status, _) = loki
        .get("/loki/api/v1/patterns", &[("query", context.into())], false)
        .await;
    assert_eq!(status, 404);
    drop(server);
}
