//! The admin endpoints through the router, on a database in a temporary directory.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use sextant_storage::{Db, DbOptions, FsyncPolicy, Labels, Matcher, Sample, SeriesSource};
use tower::ServiceExt;

use crate::api::{router, ApiState, ServerInfo};
use crate::promql::{Engine, EngineOptions};

fn opts() -> DbOptions {
    DbOptions {
        fsync: FsyncPolicy::Never,
        ..DbOptions::default()
    }
}

/// `up{job="a"}` and `up{job="b"}`, a sample every 15s over the first 10 minutes.
fn open_with_data(dir: &Path) -> Arc<Db> {
    let db = Db::open(dir, opts()).unwrap();
    let batch: Vec<(Labels, Vec<Sample>)> = ["a", "b"]
        .iter()
        .map(|job| {
            let labels = Labels::from_pairs([("__name__", "up"), ("job", *job)]);
            let samples = (0..40)
                .map(|i| Sample {
                    t: i * 15_000,
                    v: i as f64,
                })
                .collect();
            (labels, samples)
        })
        .collect();
    db.append(&batch).unwrap();
    Arc::new(db)
}

fn app(db: &Arc<Db>) -> Router {
    router(Arc::new(ApiState {
        db: db.clone(),
        engine: Arc::new(Engine::new(EngineOptions::default())),
        info: ServerInfo::default(),
    }))
}

async fn send(app: Router, method: Method, uri: &str, form: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if form.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let body = form.map_or_else(Body::empty, |f| Body::from(f.to_string()));
    let resp = app.oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn points(db: &Db, job: &str) -> Vec<i64> {
    db.select(&[Matcher::equal("job", job)], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.samples.into_iter().map(|x| x.t))
        .collect()
}

#[tokio::test]
async fn flush_persists_the_head_and_reports_the_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_with_data(tmp.path());
    let (status, body) = send(app(&db), Method::GET, "/api/v1/admin/tsdb/flush", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (status, body) = send(app(&db), Method::POST, "/api/v1/admin/tsdb/flush", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        body,
        format!(
            r#"{{"status":"success","data":{{"blocksCut":1,"blocksCompacted":0,"blocks":["{}"]}}}}"#,
            blocks[0].ulid
        )
    );
    assert_eq!(blocks[0].stats.num_samples, 80);
    assert_eq!(db.head_stats().num_samples, 0);
    // Nothing left to cut: PUT works too and cuts nothing.
    let (status, body) = send(app(&db), Method::PUT, "/api/v1/admin/tsdb/flush", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""blocksCut":0"#), "{body}");
}

#[tokio::test]
async fn snapshot_names_a_directory_that_opens_with_the_same_data() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_with_data(tmp.path());
    let uri = "/api/v1/admin/tsdb/snapshot?skip_head=x";
    let (status, body) = send(app(&db), Method::POST, uri, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"skip_head\": strconv.ParseBool: parsing \"x\": invalid syntax"}"#
    );
    let (status, body) = send(app(&db), Method::POST, "/api/v1/admin/tsdb/snapshot", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "success");
    let name = json["data"]["name"].as_str().unwrap().to_string();
    let snap = Db::open(&tmp.path().join("snapshots").join(&name), opts()).unwrap();
    for job in ["a", "b"] {
        assert_eq!(points(&snap, job), points(&db, job));
        assert_eq!(points(&snap, job).len(), 40);
    }
    // skip_head leaves the (unflushed) head out.
    let (status, body) = send(
        app(&db),
        Method::PUT,
        "/api/v1/admin/tsdb/snapshot",
        Some("skip_head=true"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let name = json["data"]["name"].as_str().unwrap();
    let snap = Db::open(&tmp.path().join("snapshots").join(name), opts()).unwrap();
    assert!(points(&snap, "a").is_empty());
}

#[tokio::test]
async fn delete_series_and_clean_tombstones_remove_data_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_with_data(tmp.path());
    let uri = "/api/v1/admin/tsdb/delete_series";
    let (status, body) = send(app(&db), Method::POST, uri, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("no match[] parameter provided"), "{body}");
    let (status, body) = send(
        app(&db),
        Method::POST,
        &format!("{uri}?match[]=%7B%7D"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let bad_start = format!("{uri}?match[]=up&start=soon");
    let (status, body) = send(app(&db), Method::POST, &bad_start, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#"invalid parameter \"start\""#), "{body}");

    // Half of job a lives in a block, half in the head; delete [60s, 450s] across both.
    db.append(&[(
        Labels::from_pairs([("__name__", "up"), ("job", "a")]),
        vec![Sample {
            t: 40 * 15_000,
            v: 1.0,
        }],
    )])
    .unwrap();
    db.flush().unwrap();
    let more: Vec<Sample> = (41..60)
        .map(|i| Sample {
            t: i * 15_000,
            v: 2.0,
        })
        .collect();
    db.append(&[(Labels::from_pairs([("__name__", "up"), ("job", "a")]), more)])
        .unwrap();
    let form = "match[]=up%7Bjob%3D%22a%22%7D&start=60&end=750";
    let (status, body) = send(app(&db), Method::POST, uri, Some(form)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(body.is_empty());
    let expected: Vec<i64> = (0..4).chain(51..60).map(|i| i * 15_000).collect();
    assert_eq!(points(&db, "a"), expected);
    assert_eq!(points(&db, "b").len(), 40);
    // The query API agrees.
    let (_, body) = send(
        app(&db),
        Method::GET,
        "/api/v1/query?query=count_over_time(up%5B1h%5D)&time=900",
        None,
    )
    .await;
    assert!(body.contains(r#""job":"a"},"value":[900,"13"]"#), "{body}");

    let (status, _) = send(
        app(&db),
        Method::PUT,
        "/api/v1/admin/tsdb/clean_tombstones",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].stats.num_samples, 4 + 40);
    let block_dir = tmp.path().join("blocks").join(&blocks[0].ulid);
    assert!(!block_dir.join("tombstones").exists());
    drop(db);

    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(points(&db, "a"), expected);
    assert_eq!(points(&db, "b").len(), 40);
}
