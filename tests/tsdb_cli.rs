//! `sextant tsdb list|analyze|dump` end to end: the binary on a data directory written through
//! `Db` (blocks, a WAL-only head and a deletion) and through a running server (remote write,
//! then `POST /api/v1/admin/tsdb/flush`). The commands must leave the directory untouched.

mod support;

use support::free_port;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use prost::Message;
use sextant_ingest::remote_write::{
    proto_histogram, ProtoBucketSpan, ProtoHistogram, ProtoLabel, ProtoSample, TimeSeries,
    WriteRequest,
};
use sextant_storage::{Db, DbOptions, FsyncPolicy, Labels, Matcher, Sample};

const H: i64 = 3_600_000;

fn tsdb(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .arg("tsdb")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run sextant tsdb")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every path under `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// `up{job="a"}`, `up{job="b"}` and `http_requests_total{code="200",job="a"}` every 15s over
/// [0, 5h): [0, 4h) in two blocks, the rest only in the WAL; then samples of `up{job="b"}` in
/// [1h, 3h] are deleted. Returns the block ids.
fn write_data_dir(dir: &Path) -> Vec<String> {
    let db = Db::open(
        dir,
        DbOptions {
            fsync: FsyncPolicy::Never,
            // Keeps a flush at one block per aligned 2h window, so 4h make two blocks.
            max_block_range_ms: 2 * H,
            ..DbOptions::default()
        },
    )
    .unwrap();
    let series = [
        Labels::from_pairs([("__name__", "up"), ("job", "a")]),
        Labels::from_pairs([("__name__", "up"), ("job", "b")]),
        Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("job", "a"),
            ("code", "200"),
        ]),
    ];
    let append = |from: i64, to: i64| {
        let batch: Vec<(Labels, Vec<Sample>)> = series
            .iter()
            .enumerate()
            .map(|(k, l)| {
                let samples = (from / 15_000..to / 15_000)
                    .map(|i| Sample {
                        t: i * 15_000,
                        v: if k == 2 { i as f64 * 0.5 } else { 1.0 },
                    })
                    .collect();
                (l.clone(), samples)
            })
            .collect();
        db.append(&batch).unwrap();
    };
    append(0, 4 * H);
    db.flush().unwrap();
    append(4 * H, 5 * H);
    db.delete_series(&[Matcher::equal("job", "b")], H, 3 * H)
        .unwrap();
    db.blocks().into_iter().map(|b| b.ulid).collect()
}

#[test]
fn list_analyze_and_dump_read_a_data_dir_without_changing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks = write_data_dir(tmp.path());
    assert_eq!(blocks.len(), 2);
    let before = listing(tmp.path());

    let list = stdout(&tsdb(&["list"], tmp.path()));
    let lines: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert_eq!(lines[0][0..2], ["BLOCK", "ULID"], "{list}");
    // id, min, max, duration, series, samples, chunks, size
    assert_eq!(lines[1][0], blocks[0]);
    assert_eq!(
        lines[1][1..6],
        ["0", "7200000", "2h0m0s", "3", "1440"],
        "{list}"
    );
    assert_eq!(lines[2][0], blocks[1]);
    assert_eq!(
        lines[2][1..6],
        ["7200000", "14385001", "1h59m45.001s", "3", "1440"]
    );
    let human = stdout(&tsdb(&["list", "--human"], tmp.path()));
    assert!(human.contains("1970-01-01T02:00:00Z"), "{human}");
    let size = human
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().last());
    assert!(size.is_some_and(|s| s.ends_with('B')), "{human}");

    let analyze = stdout(&tsdb(&["analyze"], tmp.path()));
    assert!(analyze.contains("Blocks: 2\n"), "{analyze}");
    assert!(analyze.contains("Series: 3\n"), "{analyze}");
    // 2 blocks × 1440 + head 3 × 240; the tombstoned block samples are still counted in stats.
    assert!(
        analyze.contains("Samples: 3600 (2880 in blocks, 720 in the head)"),
        "{analyze}"
    );
    let section = |title: &str| -> Vec<String> {
        analyze
            .split(title)
            .nth(1)
            .unwrap_or_else(|| panic!("no {title:?} in {analyze}"))
            .lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        section("Highest cardinality labels (distinct values):"),
        ["2 __name__", "2 job", "1 code"]
    );
    assert_eq!(
        section("Label names with highest cumulative label value length (bytes):"),
        ["21 __name__", "3 code", "2 job"]
    );
    assert_eq!(
        section("Highest cardinality metric names (series):"),
        ["2 up", "1 http_requests_total"]
    );
    assert!(analyze.contains("sum of series per block: 9"), "{analyze}");

    let dump = stdout(&tsdb(
        &[
            "dump",
            "--match",
            "http_requests_total",
            "--min-time",
            "0",
            "--max-time",
            "30000",
        ],
        tmp.path(),
    ));
    assert_eq!(
        dump,
        "{__name__=\"http_requests_total\", code=\"200\", job=\"a\"} 0 0\n\
         {__name__=\"http_requests_total\", code=\"200\", job=\"a\"} 0.5 15000\n\
         {__name__=\"http_requests_total\", code=\"200\", job=\"a\"} 1 30000\n"
    );
    // The deletion is honoured across blocks and head; job b has [0, 1h) and (3h, 5h).
    let dump = stdout(&tsdb(&["dump", "--match", "up{job=\"b\"}"], tmp.path()));
    assert_eq!(dump.lines().count(), 240 + 479);
    assert!(!dump.contains(&format!(" {}\n", 2 * H)));
    let all = stdout(&tsdb(&["dump"], tmp.path()));
    assert_eq!(all.lines().count(), 2 * 1200 + 240 + 479);

    let bad = tsdb(&["dump", "--match", "rate(up[5m])"], tmp.path());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected a vector selector"));
    let missing = tsdb(&["list"], &tmp.path().join("nope"));
    assert!(!missing.status.success());

    assert_eq!(
        listing(tmp.path()),
        before,
        "tsdb commands changed the data dir"
    );
}

#[tokio::test]
async fn flush_endpoint_then_list_on_a_server_written_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["serve", "--data-dir"])
        .arg(tmp.path())
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(client.get(format!("{base}/-/ready")).send().await, Ok(r) if r.status() == 200)
    {
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let label = |n: &str, v: &str| ProtoLabel {
        name: n.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    };
    // Integer histograms: zero bucket 2, buckets (0.5,1] = 1 and (1,2] = 2 (deltas 1, +1).
    let histogram = |t: i64| ProtoHistogram {
        count: Some(proto_histogram::Count::CountInt(5)),
        sum: 10.0,
        schema: 0,
        zero_threshold: 0.001,
        zero_count: Some(proto_histogram::ZeroCount::ZeroCountInt(2)),
        positive_spans: vec![ProtoBucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1, 1],
        timestamp: t,
        ..Default::default()
    };
    let latency = TimeSeries {
        labels: vec![label("__name__", "latency")],
        samples: vec![],
        exemplars: vec![],
        histograms: vec![histogram(5_000), histogram(15_000)],
    };
    let timeseries = (0..4)
        .map(|i| TimeSeries {
            labels: vec![label("__name__", "temp"), label("room", &i.to_string())],
            samples: (0..100)
                .map(|k| ProtoSample {
                    timestamp: k * 10_000,
                    value: k as f64,
                })
                .collect(),
            exemplars: vec![],
            histograms: vec![],
        })
        .chain([latency])
        .collect();
    let body = WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    let status = client
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(snap::raw::Encoder::new().compress_vec(&body).unwrap())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let resp = client
        .post(format!("{base}/api/v1/admin/tsdb/flush"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["status"], "success");
    assert_eq!(json["data"]["blocksCut"], 1);
    let _ = child.kill();
    let _ = child.wait();

    let list = stdout(&tsdb(&["list"], tmp.path()));
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], json["data"]["blocks"][0].as_str().unwrap());
    assert_eq!(
        row[1..7],
        ["0", "990001", "16m30.001s", "5", "402", "5"],
        "{list}"
    );
    let dump = stdout(&tsdb(&["dump", "--match", "temp{room=\"3\"}"], tmp.path()));
    assert_eq!(dump.lines().count(), 100);
    assert_eq!(
        dump.lines().last(),
        Some("{__name__=\"temp\", room=\"3\"} 99 990000")
    );
    let dump = stdout(&tsdb(&["dump", "--match", "latency"], tmp.path()));
    assert_eq!(
        dump.lines().collect::<Vec<_>>(),
        [
            "{__name__=\"latency\"} {count:5, sum:10, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2} 5000",
            "{__name__=\"latency\"} {count:5, sum:10, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2} 15000",
        ]
    );
}
