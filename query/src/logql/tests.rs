//! Golden tests: queries with exact answers over a small fixed dataset held by a Vec-backed
//! `LogSource` (which honours needles, so a wrong pushdown loses lines and fails here).

use std::sync::Mutex;

use sextant_storage::logs::{Direction, LogEntry, LogQuery, LogSource, Needle};
use sextant_storage::{Labels, Matcher, StorageError};

use super::*;

/// 2023-11-14T22:13:20Z.
pub(crate) const T0: i64 = 1_700_000_000_000_000_000;
pub(crate) const SEC: i64 = 1_000_000_000;

/// A log source over a vector of (stream, entry); records the needles it was given.
pub(crate) struct VecSource {
    pub rows: Vec<(Labels, LogEntry)>,
    pub seen_needles: Mutex<Vec<Vec<Needle>>>,
}

impl VecSource {
    pub fn new(rows: Vec<(Labels, LogEntry)>) -> VecSource {
        VecSource {
            rows,
            seen_needles: Mutex::new(Vec::new()),
        }
    }

    fn selected<'a>(
        &'a self,
        matchers: &'a [Matcher],
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = (usize, &'a (Labels, LogEntry))> + 'a {
        self.rows.iter().enumerate().filter(move |(_, (l, e))| {
            matchers.iter().all(|m| m.matches_labels(l)) && e.ts_ns >= start && e.ts_ns < end
        })
    }
}

fn needle_hit(n: &Needle, line: &str) -> bool {
    if n.case_insensitive {
        line.to_lowercase().contains(&n.text.to_lowercase())
    } else {
        line.contains(&n.text)
    }
}

impl LogSource for VecSource {
    fn streams(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        let mut out: Vec<Labels> = self
            .selected(matchers, start_ns, end_ns)
            .map(|(_, (l, _))| l.clone())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn scan(
        &self,
        query: &LogQuery<'_>,
        visit: &mut dyn FnMut(&Labels, &LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        if let Ok(mut seen) = self.seen_needles.lock() {
            seen.push(query.needles.to_vec());
        }
        let mut rows: Vec<(usize, &(Labels, LogEntry))> = self
            .selected(query.matchers, query.start_ns, query.end_ns)
            .filter(|(_, (_, e))| query.needles.iter().all(|n| needle_hit(n, &e.line)))
            .collect();
        rows.sort_by(|a, b| {
            let t = a.1 .1.ts_ns.cmp(&b.1 .1.ts_ns);
            let t = if query.direction == Direction::Backward {
                t.reverse()
            } else {
                t
            };
            t.then_with(|| a.1 .0.cmp(&b.1 .0)).then(a.0.cmp(&b.0))
        });
        for (_, (l, e)) in rows {
            if !visit(l, e) {
                break;
            }
        }
        Ok(())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut out: Vec<String> = self
            .selected(matchers, start_ns, end_ns)
            .flat_map(|(_, (l, _))| l.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut out: Vec<String> = self
            .selected(matchers, start_ns, end_ns)
            .filter_map(|(_, (l, _))| l.get(name).map(str::to_string))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Streams as `(labels, [second])`.
type StreamSecs = Vec<(String, Vec<i64>)>;
/// Samples as `(labels, value)`.
type Samples = Vec<(String, f64)>;

pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn entry(sec: i64, line: &str, md: &[(&str, &str)]) -> LogEntry {
    LogEntry {
        ts_ns: T0 + sec * SEC,
        line: line.to_string(),
        metadata: md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// The fixed dataset: three streams over 60 seconds.
pub(crate) fn dataset() -> VecSource {
    let api_prod = labels(&[("app", "api"), ("env", "prod")]);
    let api_dev = labels(&[("app", "api"), ("env", "dev")]);
    let web = labels(&[("app", "web"), ("env", "prod")]);
    let rows = vec![
        (
            api_prod.clone(),
            entry(
                1,
                "level=info msg=\"GET /users\" status=200 duration=15ms size=1KB",
                &[],
            ),
        ),
        (
            api_prod.clone(),
            entry(
                11,
                "level=error msg=\"GET /orders failed\" status=500 duration=1.5s size=20B",
                &[],
            ),
        ),
        (
            api_prod.clone(),
            entry(
                21,
                "level=info msg=\"POST /users\" status=201 duration=250ms size=2KB",
                &[],
            ),
        ),
        (
            api_prod.clone(),
            entry(
                31,
                "level=warn msg=\"slow request\" status=200 duration=3s size=10KB",
                &[],
            ),
        ),
        (
            api_dev.clone(),
            entry(
                5,
                "level=debug msg=\"cache miss\" status=404 duration=2ms size=0B",
                &[],
            ),
        ),
        (
            api_dev.clone(),
            entry(
                15,
                "level=error msg=\"timeout talking to db\" status=504 duration=30s size=100B",
                &[],
            ),
        ),
        (
            web.clone(),
            entry(
                2,
                r#"{"level":"info","msg":"render","user":{"id":7,"name":"ann"},"latency_ms":12}"#,
                &[],
            ),
        ),
        (
            web.clone(),
            entry(
                12,
                r#"{"level":"error","msg":"Boom","user":{"id":8,"name":"bob"},"latency_ms":250}"#,
                &[],
            ),
        ),
        (
            web.clone(),
            entry(22, "not json at all: ERROR code=E42", &[]),
        ),
        (
            web.clone(),
            entry(
                32,
                r#"{"level":"info","msg":"render","user":{"id":7,"name":"ann"},"latency_ms":30}"#,
                &[],
            ),
        ),
    ];
    VecSource::new(rows)
}

pub(crate) fn engine() -> LogqlEngine {
    LogqlEngine::new(LogqlOptions::default())
}

/// A log query over the whole dataset: `(labels, [(second, line)])` per stream.
pub(crate) fn log_lines(
    q: &str,
    limit: usize,
    dir: Direction,
) -> Vec<(String, Vec<(i64, String)>)> {
    let src = dataset();
    match engine().query_range(&src, q, T0, T0 + 100 * SEC, SEC, 0, limit, dir) {
        Ok(LogqlResult::Streams(s)) => s
            .into_iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.entries
                        .into_iter()
                        .map(|e| ((e.ts_ns - T0) / SEC, e.line))
                        .collect(),
                )
            })
            .collect(),
        other => panic!("{q}: unexpected {other:?}"),
    }
}

/// Entry seconds per stream, for compact golden answers.
fn log_secs(q: &str, limit: usize, dir: Direction) -> Vec<(String, Vec<i64>)> {
    log_lines(q, limit, dir)
        .into_iter()
        .map(|(l, es)| (l, es.into_iter().map(|(s, _)| s).collect()))
        .collect()
}

fn owned(v: &[(&str, &[i64])]) -> Vec<(String, Vec<i64>)> {
    v.iter().map(|(l, s)| (l.to_string(), s.to_vec())).collect()
}

#[test]
fn golden_log_queries() {
    let api_prod = r#"{app="api", env="prod"}"#;
    let api_dev = r#"{app="api", env="dev"}"#;
    let web = r#"{app="web", env="prod"}"#;
    let fw = Direction::Forward;
    let cases: Vec<(&str, StreamSecs)> = vec![
        (
            r#"{app="api"}"#,
            owned(&[(api_dev, &[5, 15]), (api_prod, &[1, 11, 21, 31])]),
        ),
        (
            r#"{app="api", env!="dev"}"#,
            owned(&[(api_prod, &[1, 11, 21, 31])]),
        ),
        (
            r#"{app=~"a.*"}"#,
            owned(&[(api_dev, &[5, 15]), (api_prod, &[1, 11, 21, 31])]),
        ),
        (r#"{app=~"a"}"#, owned(&[])),
        (
            r#"{env="prod", app!~"api"}"#,
            owned(&[(web, &[2, 12, 22, 32])]),
        ),
        (
            r#"{app="api"} |= "error""#,
            owned(&[(api_dev, &[15]), (api_prod, &[11])]),
        ),
        (
            r#"{app="api"} |= "error" != "db""#,
            owned(&[(api_prod, &[11])]),
        ),
        (
            r#"{app=~".+"} |~ "(?i)error""#,
            owned(&[(api_dev, &[15]), (api_prod, &[11]), (web, &[12, 22])]),
        ),
        (r#"{app=~".+"} |~ "GET.*fail""#, owned(&[(api_prod, &[11])])),
        (
            r#"{app=~".+"} !~ "level=(info|debug)" |= "level""#,
            owned(&[(api_dev, &[15]), (api_prod, &[11, 31]), (web, &[2, 12, 32])]),
        ),
        (
            r#"{app=~".+"} |= "cache" or "Boom""#,
            owned(&[(api_dev, &[5]), (web, &[12])]),
        ),
        (
            r#"{app="api"} != "info" != "warn""#,
            owned(&[(api_dev, &[5, 15]), (api_prod, &[11])]),
        ),
        ("{app=\"web\"} |= `\"id\":8`", owned(&[(web, &[12])])),
    ];
    for (q, want) in cases {
        assert_eq!(log_secs(q, 100, fw), want, "{q}");
    }
}

#[test]
fn limit_and_direction_apply_across_streams() {
    // Backward: the newest 3 entries over all streams.
    let got = log_secs(r#"{env=~"prod|dev"}"#, 3, Direction::Backward);
    assert_eq!(
        got,
        owned(&[
            (r#"{app="api", env="prod"}"#, &[31]),
            (r#"{app="web", env="prod"}"#, &[32, 22]),
        ])
    );
    let got = log_secs(r#"{env=~"prod|dev"}"#, 3, Direction::Forward);
    assert_eq!(
        got,
        owned(&[
            (r#"{app="api", env="dev"}"#, &[5]),
            (r#"{app="api", env="prod"}"#, &[1]),
            (r#"{app="web", env="prod"}"#, &[2]),
        ])
    );
}

#[test]
fn time_range_is_start_inclusive_end_exclusive() {
    let src = dataset();
    let r = engine()
        .query_range(
            &src,
            r#"{app="api", env="prod"}"#,
            T0 + 11 * SEC,
            T0 + 31 * SEC,
            SEC,
            0,
            100,
            Direction::Forward,
        )
        .ok();
    let Some(LogqlResult::Streams(s)) = r else {
        panic!("{r:?}")
    };
    let secs: Vec<i64> = s[0].entries.iter().map(|e| (e.ts_ns - T0) / SEC).collect();
    assert_eq!(secs, vec![11, 21]);
}

#[test]
fn structured_metadata_is_filterable_and_returned_per_entry() {
    let stream = labels(&[("app", "pay")]);
    let src = VecSource::new(vec![
        (
            stream.clone(),
            entry(1, "charge ok", &[("trace_id", "abc123")]),
        ),
        (
            stream.clone(),
            entry(2, "charge failed", &[("trace_id", "def456")]),
        ),
        (stream.clone(), entry(3, "no trace", &[])),
    ]);
    let r = engine()
        .query_range(
            &src,
            r#"{app="pay"} | trace_id="def456""#,
            T0,
            T0 + 100 * SEC,
            SEC,
            0,
            100,
            Direction::Forward,
        )
        .ok();
    let Some(LogqlResult::Streams(s)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].labels.to_string(), r#"{app="pay", trace_id="def456"}"#);
    assert_eq!(s[0].stream_labels.to_string(), r#"{app="pay"}"#);
    assert_eq!(s[0].entries.len(), 1);
    assert_eq!(s[0].entries[0].line, "charge failed");
    assert_eq!(
        s[0].entries[0].metadata,
        vec![("trace_id".to_string(), "def456".to_string())]
    );
    assert!(s[0].entries[0].parsed.is_empty());
    // As in Loki 3, structured metadata is part of the label set: entries group by it, and
    // metric queries keep it unless aggregated away.
    let r = engine()
        .query_range(
            &src,
            r#"{app="pay"}"#,
            T0,
            T0 + 100 * SEC,
            SEC,
            0,
            100,
            Direction::Forward,
        )
        .ok();
    let Some(LogqlResult::Streams(s)) = r else {
        panic!("{r:?}")
    };
    let groups: Vec<String> = s.iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(
        groups,
        vec![
            r#"{app="pay"}"#,
            r#"{app="pay", trace_id="abc123"}"#,
            r#"{app="pay", trace_id="def456"}"#
        ]
    );
    let r = engine()
        .query_instant(
            &src,
            r#"sum by (app) (count_over_time({app="pay"} != "ok" [1m]))"#,
            T0 + 10 * SEC,
            100,
            Direction::Backward,
        )
        .ok();
    let Some(LogqlResult::Vector(v)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].labels.to_string(), r#"{app="pay"}"#);
    assert_eq!(v[0].value, 2.0);
}

/// A metric range query as `(labels, [(second, value)])`.
pub(crate) fn matrix(q: &str, start: i64, end: i64, step: i64) -> Vec<(String, Vec<(i64, f64)>)> {
    let src = dataset();
    match engine().query_range(
        &src,
        q,
        T0 + start * SEC,
        T0 + end * SEC,
        step * SEC,
        0,
        100,
        Direction::Backward,
    ) {
        Ok(LogqlResult::Matrix(m)) => m
            .into_iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.points
                        .into_iter()
                        .map(|(t, v)| ((t - T0) / SEC, v))
                        .collect(),
                )
            })
            .collect(),
        other => panic!("{q}: unexpected {other:?}"),
    }
}

/// A metric instant query as `(labels, value)`.
pub(crate) fn instant(q: &str, at: i64) -> Vec<(String, f64)> {
    let src = dataset();
    match engine().query_instant(&src, q, T0 + at * SEC, 100, Direction::Backward) {
        Ok(LogqlResult::Vector(v)) => v
            .into_iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect(),
        other => panic!("{q}: unexpected {other:?}"),
    }
}

fn vec_of(v: &[(&str, f64)]) -> Vec<(String, f64)> {
    v.iter().map(|(l, x)| (l.to_string(), *x)).collect()
}

#[test]
fn golden_metric_instant_queries() {
    let cases: Vec<(&str, i64, Samples)> = vec![
        (
            r#"count_over_time({app="api"}[1m])"#,
            40,
            vec_of(&[
                (r#"{app="api", env="dev"}"#, 2.0),
                (r#"{app="api", env="prod"}"#, 4.0),
            ]),
        ),
        // Window (t-range, t]: at t=11 with a 10s range, the entry at 1s is excluded and 11s included.
        (
            r#"count_over_time({app="api", env="prod"}[10s])"#,
            11,
            vec_of(&[(r#"{app="api", env="prod"}"#, 1.0)]),
        ),
        (
            r#"count_over_time({app="api", env="prod"}[9s])"#,
            10,
            vec_of(&[]),
        ),
        (
            r#"rate({app="api"} |= "error" [1m])"#,
            60,
            vec_of(&[
                (r#"{app="api", env="dev"}"#, 1.0 / 60.0),
                (r#"{app="api", env="prod"}"#, 1.0 / 60.0),
            ]),
        ),
        (
            r#"sum(count_over_time({env=~".+"}[1m]))"#,
            59,
            vec_of(&[("{}", 10.0)]),
        ),
        (
            r#"sum by (env) (count_over_time({env=~".+"}[1m]))"#,
            59,
            vec_of(&[(r#"{env="dev"}"#, 2.0), (r#"{env="prod"}"#, 8.0)]),
        ),
        (
            r#"sum(count_over_time({env=~".+"}[1m])) by (app)"#,
            59,
            vec_of(&[(r#"{app="api"}"#, 6.0), (r#"{app="web"}"#, 4.0)]),
        ),
        (
            r#"sum without (env) (count_over_time({app="api"}[1m]))"#,
            59,
            vec_of(&[(r#"{app="api"}"#, 6.0)]),
        ),
        (
            r#"bytes_over_time({app="api", env="dev"}[1m])"#,
            59,
            vec_of(&[(r#"{app="api", env="dev"}"#, 133.0)]),
        ),
        (
            r#"count_over_time({app="api", env="prod"}[10s] offset 20s)"#,
            41,
            vec_of(&[(r#"{app="api", env="prod"}"#, 1.0)]),
        ),
        (
            r#"topk(1, count_over_time({env=~".+"}[1m]))"#,
            59,
            vec_of(&[(r#"{app="api", env="prod"}"#, 4.0)]),
        ),
        (
            r#"bottomk(1, count_over_time({env=~".+"}[1m]))"#,
            59,
            vec_of(&[(r#"{app="api", env="dev"}"#, 2.0)]),
        ),
        (
            r#"count(count_over_time({env=~".+"}[1m]))"#,
            59,
            vec_of(&[("{}", 3.0)]),
        ),
        (
            r#"max(count_over_time({env=~".+"}[1m]))"#,
            59,
            vec_of(&[("{}", 4.0)]),
        ),
        (
            r#"min(count_over_time({env=~".+"}[1m]))"#,
            59,
            vec_of(&[("{}", 2.0)]),
        ),
        (
            r#"avg(count_over_time({env=~".+"}[1m]))"#,
            59,
            vec_of(&[("{}", 10.0 / 3.0)]),
        ),
        ("vector(1)+vector(1)", 59, vec_of(&[("{}", 2.0)])),
        (
            r#"count_over_time({app="api"}[1m]) > 3"#,
            59,
            vec_of(&[(r#"{app="api", env="prod"}"#, 4.0)]),
        ),
        (
            r#"count_over_time({app="api"}[1m]) > bool 3"#,
            59,
            vec_of(&[
                (r#"{app="api", env="dev"}"#, 0.0),
                (r#"{app="api", env="prod"}"#, 1.0),
            ]),
        ),
        (
            r#"count_over_time({app="api"}[1m]) * 2 + 1"#,
            59,
            vec_of(&[
                (r#"{app="api", env="dev"}"#, 5.0),
                (r#"{app="api", env="prod"}"#, 9.0),
            ]),
        ),
        (
            r#"count_over_time({app="api"} |= "error" [1m]) / count_over_time({app="api"}[1m])"#,
            59,
            vec_of(&[
                (r#"{app="api", env="dev"}"#, 0.5),
                (r#"{app="api", env="prod"}"#, 0.25),
            ]),
        ),
        (
            r#"sum by (app) (count_over_time({env=~".+"}[1m])) / on (app) sum by (app) (count_over_time({env="prod"}[1m]))"#,
            59,
            vec_of(&[(r#"{app="api"}"#, 1.5), (r#"{app="web"}"#, 1.0)]),
        ),
        (
            r#"count_over_time({app="api"}[1m]) and count_over_time({app="api"} |= "debug" [1m])"#,
            59,
            vec_of(&[(r#"{app="api", env="dev"}"#, 2.0)]),
        ),
        (
            r#"count_over_time({app="api"}[1m]) unless count_over_time({app="api"} |= "debug" [1m])"#,
            59,
            vec_of(&[(r#"{app="api", env="prod"}"#, 4.0)]),
        ),
        (
            r#"absent_over_time({app="nope", env="x"}[1m])"#,
            59,
            vec_of(&[(r#"{app="nope", env="x"}"#, 1.0)]),
        ),
        (r#"absent_over_time({app="api"}[1m])"#, 59, vec_of(&[])),
    ];
    for (q, at, want) in cases {
        let got = instant(q, at);
        assert_eq!(got.len(), want.len(), "{q}: {got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "{q}");
            assert!((g.1 - w.1).abs() < 1e-9, "{q}: {} != {}", g.1, w.1);
        }
    }
}

#[test]
fn scalar_queries() {
    let src = dataset();
    let r = engine()
        .query_instant(&src, "1 + 2 * 3", T0, 100, Direction::Backward)
        .ok();
    assert_eq!(r, Some(LogqlResult::Scalar(T0, 7.0)));
    let r = engine()
        .query_instant(&src, "2 ^ 3 ^ 2", T0, 100, Direction::Backward)
        .ok();
    assert_eq!(r, Some(LogqlResult::Scalar(T0, 512.0)));
    let r = engine()
        .query_instant(&src, "(1 + 2) * -3", T0, 100, Direction::Backward)
        .ok();
    assert_eq!(r, Some(LogqlResult::Scalar(T0, -9.0)));
    // Loki folds literal comparisons to 0/1 and division by zero to NaN.
    let r = engine()
        .query_instant(&src, "1 > 2", T0, 100, Direction::Backward)
        .ok();
    assert_eq!(r, Some(LogqlResult::Scalar(T0, 0.0)));
    let r = engine()
        .query_instant(&src, "1 % 0", T0, 100, Direction::Backward)
        .ok();
    assert!(
        matches!(r, Some(LogqlResult::Scalar(T0, v)) if v.is_nan()),
        "{r:?}"
    );
    let r = engine()
        .query_instant(&src, "vector(6) / vector(0)", T0, 100, Direction::Backward)
        .ok();
    assert!(
        matches!(r, Some(LogqlResult::Vector(ref v)) if v.len() == 1 && v[0].value.is_nan()),
        "{r:?}"
    );
}

#[test]
fn range_query_matrix_steps() {
    let got = matrix(
        r#"count_over_time({app="api", env="prod"}[10s])"#,
        0,
        40,
        10,
    );
    // Windows (t-10s, t]: entries at 1, 11, 21, 31.
    assert_eq!(
        got,
        vec![(
            r#"{app="api", env="prod"}"#.to_string(),
            vec![(10, 1.0), (20, 1.0), (30, 1.0), (40, 1.0)]
        )]
    );
    let got = matrix(r#"sum(count_over_time({env=~".+"}[30s]))"#, 0, 60, 30);
    assert_eq!(got, vec![("{}".to_string(), vec![(30, 8.0), (60, 2.0)])]);
    let got = matrix("vector(1)+vector(1)", 0, 20, 10);
    assert_eq!(
        got,
        vec![("{}".to_string(), vec![(0, 2.0), (10, 2.0), (20, 2.0)])]
    );
}

#[test]
fn instant_log_query_is_bad_request() {
    let src = dataset();
    let err = engine().query_instant(&src, r#"{app="api"}"#, T0, 100, Direction::Backward);
    match err {
        Err(e @ LogqlError::BadRequest(_)) => {
            assert_eq!(e.http_status(), 400);
            assert!(e.to_string().contains("instant query type"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_fail_loudly() {
    let src = dataset();
    let err = engine().query_range(
        &src,
        r#"{app="api"}"#,
        T0,
        T0 + 100 * SEC,
        SEC,
        0,
        5001,
        Direction::Backward,
    );
    assert!(
        matches!(err, Err(LogqlError::Limit(ref m)) if m.contains("5001 > 5000")),
        "{err:?}"
    );
    let tight = LogqlEngine::new(LogqlOptions {
        max_series: 2,
        ..LogqlOptions::default()
    });
    let err = tight.query_instant(
        &src,
        r#"count_over_time({env=~".+"}[1m])"#,
        T0 + 59 * SEC,
        100,
        Direction::Backward,
    );
    assert!(
        matches!(err, Err(LogqlError::Limit(ref m)) if m.contains("maximum number of series (2)")),
        "{err:?}"
    );
    let err = engine().query_range(
        &src,
        r#"count_over_time({app="api"}[1m])"#,
        T0,
        T0 + 100 * SEC,
        0,
        0,
        100,
        Direction::Backward,
    );
    assert!(matches!(err, Err(LogqlError::BadRequest(_))), "{err:?}");
}

#[test]
fn stats_count_processed_lines_and_bytes() {
    let src = dataset();
    let (r, stats) = engine()
        .query_range_with_stats(
            &src,
            r#"{app="api", env="dev"} |= "db""#,
            T0,
            T0 + 100 * SEC,
            SEC,
            0,
            100,
            Direction::Backward,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(r, LogqlResult::Streams(ref s) if s.len() == 1));
    // The needle "db" prunes the other dev line in the store, so one line of 73 bytes is read.
    assert_eq!(stats.lines_processed, 1);
    assert_eq!(stats.bytes_processed, 73);
    assert_eq!(stats.entries_returned, 1);
    assert_eq!(stats.streams_touched, 1);
}

/// A store that fails every read.
struct FailingSource;

impl LogSource for FailingSource {
    fn streams(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<Labels>, StorageError> {
        Err(StorageError::Closed)
    }

    fn scan(
        &self,
        _: &LogQuery<'_>,
        _: &mut dyn FnMut(&Labels, &LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        Err(StorageError::Closed)
    }

    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
        Err(StorageError::Closed)
    }

    fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, StorageError> {
        Err(StorageError::Closed)
    }
}

#[test]
fn storage_errors_and_timeouts_surface() {
    let err = engine().query_range(
        &FailingSource,
        r#"{app="api"}"#,
        T0,
        T0 + SEC,
        SEC,
        0,
        10,
        Direction::Forward,
    );
    match err {
        Err(e @ LogqlError::Storage(_)) => assert_eq!(e.http_status(), 500),
        other => panic!("{other:?}"),
    }
    let err = engine().query_instant(
        &FailingSource,
        r#"count_over_time({app="api"}[1m])"#,
        T0,
        10,
        Direction::Forward,
    );
    assert!(matches!(err, Err(LogqlError::Storage(_))), "{err:?}");
    let zero = LogqlEngine::new(LogqlOptions {
        timeout: std::time::Duration::ZERO,
        ..LogqlOptions::default()
    });
    let src = dataset();
    let err = zero.query_range(
        &src,
        r#"{app="api"}"#,
        T0,
        T0 + 100 * SEC,
        SEC,
        0,
        10,
        Direction::Forward,
    );
    match err {
        Err(e @ LogqlError::Timeout) => assert_eq!(e.http_status(), 504),
        other => panic!("{other:?}"),
    }
    let err = zero.query_instant(
        &src,
        r#"count_over_time({app="api"}[1m])"#,
        T0,
        10,
        Direction::Forward,
    );
    assert!(matches!(err, Err(LogqlError::Timeout)), "{err:?}");
}
