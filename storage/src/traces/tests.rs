//! Tests of [`TraceStore`]: every `TraceSource` method against the reference `NaiveTraceStore`
//! on the same seeded random input (head only, after flush, split traces, duplicates,
//! compaction), WAL replay, crash damage (torn/corrupt WAL tails, corrupt blocks), retention.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::{FsyncPolicy, StorageError};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

const BASE: u64 = 1_700_000_000_000_000_000;

fn services() -> Vec<Resource> {
    (0..4)
        .map(|i| Resource {
            attributes: vec![
                Attr::new("service.name", AttrValue::Str(format!("svc{i}"))),
                Attr::new("host.id", AttrValue::Int(i)),
            ],
            dropped_attributes_count: (i == 3) as u32,
            schema_url: if i == 2 {
                "https://s".into()
            } else {
                String::new()
            },
        })
        .collect()
}

fn scopes() -> Vec<Scope> {
    vec![
        Scope::default(),
        Scope {
            name: "lib".into(),
            version: "1.2".into(),
            attributes: vec![Attr::new("x", AttrValue::Bool(true))],
            dropped_attributes_count: 0,
            schema_url: String::new(),
        },
    ]
}

/// Random traces as (service index, scope index, span), grouped per trace.
fn gen_traces(rng: &mut Rng, n: usize, id_base: u8) -> Vec<Vec<(usize, usize, Span)>> {
    let routes = ["/v1/a", "/v1/prices/{id}/history", "/v2/b", "/health"];
    let names = ["GET", "POST", "db.query", "cache.get", "render"];
    let mut out = Vec::new();
    for t in 0..n {
        let mut tid = [0u8; 16];
        tid[0] = id_base;
        tid[8..].copy_from_slice(&(rng.next() | 1).to_le_bytes());
        tid[1] = t as u8;
        let trace_id = TraceId(tid);
        let start0 = BASE + rng.below(1_000_000_000_000);
        let count = 1 + rng.below(12) as usize;
        let mut spans: Vec<(usize, usize, Span)> = Vec::new();
        for i in 0..count {
            let mut sid = (rng.next() | 1).to_le_bytes();
            sid[7] = i as u8 + 1;
            let parent = if i == 0 {
                if rng.chance(10) {
                    Some([9u8; 8])
                } else {
                    None
                }
            } else {
                Some(spans[rng.below(i as u64) as usize].2.span_id)
            };
            let start = start0 + rng.below(5_000_000_000);
            let dur = if rng.chance(5) {
                3_000_000_000 + rng.below(1_000_000_000)
            } else {
                rng.below(500_000_000)
            };
            let mut attrs = vec![Attr::new(
                "http.route",
                AttrValue::Str(routes[rng.below(4) as usize].into()),
            )];
            if rng.chance(70) {
                attrs.push(Attr::new(
                    "http.response.status_code",
                    AttrValue::Int([200, 404, 500, 503][rng.below(4) as usize]),
                ));
            }
            if rng.chance(30) {
                attrs.push(Attr::new(
                    "user.id",
                    AttrValue::Str(format!("u{}", rng.below(100_000))),
                ));
            }
            if rng.chance(10) {
                attrs.push(Attr::new(
                    "ratio",
                    AttrValue::Double(rng.below(100) as f64 / 7.0),
                ));
            }
            if rng.chance(10) {
                attrs.push(Attr::new("cached", AttrValue::Bool(rng.chance(50))));
            }
            if rng.chance(3) {
                // Shadows the resource attribute for unscoped `.host.id`.
                attrs.push(Attr::new("host.id", AttrValue::Str("span-host".into())));
            }
            if rng.chance(5) {
                attrs.push(Attr::new(
                    "nested",
                    AttrValue::Array(vec![
                        AttrValue::Int(1),
                        AttrValue::KvList(vec![Attr::new("k", AttrValue::Str("v".into()))]),
                        AttrValue::Bytes(vec![0, 255]),
                        AttrValue::Empty,
                    ]),
                ));
            }
            if rng.chance(5) {
                // Same key twice: the first one counts for filters.
                attrs.push(Attr::new("http.route", AttrValue::Str("/dup".into())));
            }
            let error = rng.chance(8);
            let span = Span {
                trace_id,
                span_id: sid,
                parent_span_id: parent,
                trace_state: if rng.chance(10) {
                    "a=b".into()
                } else {
                    String::new()
                },
                flags: if rng.chance(50) { 1 } else { 0 },
                name: names[rng.below(5) as usize].into(),
                kind: SpanKind::from_i32(rng.below(6) as i32),
                start_unix_nano: start,
                end_unix_nano: start + dur,
                attributes: attrs,
                dropped_attributes_count: rng.chance(5) as u32,
                events: if rng.chance(10) {
                    vec![SpanEvent {
                        time_unix_nano: start + 5,
                        name: "exception".into(),
                        attributes: vec![Attr::new("m", AttrValue::Str("boom".into()))],
                        dropped_attributes_count: 0,
                    }]
                } else {
                    Vec::new()
                },
                dropped_events_count: 0,
                links: if rng.chance(5) {
                    vec![SpanLink {
                        trace_id: TraceId([7; 16]),
                        span_id: [3; 8],
                        trace_state: "t".into(),
                        attributes: Vec::new(),
                        dropped_attributes_count: 1,
                        flags: 1,
                    }]
                } else {
                    Vec::new()
                },
                dropped_links_count: 0,
                status_code: if error {
                    StatusCode::Error
                } else {
                    StatusCode::from_i32(rng.below(2) as i32)
                },
                status_message: if error {
                    "failed".into()
                } else {
                    String::new()
                },
            };
            spans.push((rng.below(4) as usize, rng.below(2) as usize, span));
        }
        out.push(spans);
    }
    out
}

/// Batches of the given spans: one per (service, scope), with fresh but equal `Arc`s each call
/// (as ingest produces them per request).
fn batches(spans: &[(usize, usize, Span)]) -> Vec<SpanBatch> {
    let res = services();
    let sc = scopes();
    let mut by: BTreeMap<(usize, usize), Vec<Span>> = BTreeMap::new();
    for (r, s, span) in spans {
        by.entry((*r, *s)).or_default().push(span.clone());
    }
    by.into_iter()
        .map(|((r, s), spans)| SpanBatch {
            resource: Arc::new(res[r].clone()),
            scope: Arc::new(sc[s].clone()),
            spans,
        })
        .collect()
}

fn append_both(a: &dyn TraceAppender, b: &dyn TraceAppender, spans: &[(usize, usize, Span)]) {
    for chunk in spans.chunks(37) {
        let x = a.append(batches(chunk)).unwrap();
        let y = b.append(batches(chunk)).unwrap();
        assert_eq!(x, y);
    }
}

type Flat = Vec<(Resource, Scope, Span)>;

fn flat(t: &Trace) -> Flat {
    let mut v: Flat = t
        .batches
        .iter()
        .flat_map(|b| {
            b.spans
                .iter()
                .map(|s| ((*b.resource).clone(), (*b.scope).clone(), s.clone()))
        })
        .collect();
    v.sort_by_key(|a| a.2.span_id);
    v
}

fn filters() -> Vec<(&'static str, TraceFilter)> {
    let cond = |field, op, value| SpanFilter::Cond { field, op, value };
    let attr = |scope, key: &str| SpanField::Attr {
        scope,
        key: key.into(),
    };
    vec![
        ("all", vec![]),
        (
            "status=error",
            vec![cond(
                SpanField::Status,
                FilterOp::Eq,
                FilterValue::Status(StatusCode::Error),
            )],
        ),
        (
            "svc1 && code>=500",
            vec![SpanFilter::And(vec![
                cond(
                    attr(AttrScope::Resource, "service.name"),
                    FilterOp::Eq,
                    FilterValue::Str("svc1".into()),
                ),
                cond(
                    attr(AttrScope::Span, "http.response.status_code"),
                    FilterOp::Ge,
                    FilterValue::Int(500),
                ),
            ])],
        ),
        (
            "duration>2s",
            vec![cond(
                SpanField::Duration,
                FilterOp::Gt,
                FilterValue::Duration(2_000_000_000),
            )],
        ),
        (
            ".http.route",
            vec![cond(
                attr(AttrScope::Any, "http.route"),
                FilterOp::Eq,
                FilterValue::Str("/v1/prices/{id}/history".into()),
            )],
        ),
        (
            "name regex || kind",
            vec![SpanFilter::Or(vec![
                cond(
                    SpanField::Name,
                    FilterOp::Regex,
                    FilterValue::Regex(regex::Regex::new("^db").unwrap()),
                ),
                cond(
                    SpanField::Kind,
                    FilterOp::Eq,
                    FilterValue::Kind(SpanKind::Producer),
                ),
            ])],
        ),
        (
            "two span sets",
            vec![
                cond(
                    attr(AttrScope::Any, "service.name"),
                    FilterOp::Eq,
                    FilterValue::Str("svc0".into()),
                ),
                cond(
                    attr(AttrScope::Span, "cached"),
                    FilterOp::Eq,
                    FilterValue::Bool(true),
                ),
            ],
        ),
        (
            "missing key ne",
            vec![cond(
                attr(AttrScope::Span, "nope"),
                FilterOp::Ne,
                FilterValue::Str("x".into()),
            )],
        ),
        (
            "status msg / ratio",
            vec![SpanFilter::And(vec![
                cond(
                    SpanField::StatusMessage,
                    FilterOp::Eq,
                    FilterValue::Str("failed".into()),
                ),
                cond(
                    attr(AttrScope::Span, "ratio"),
                    FilterOp::Lt,
                    FilterValue::Double(5.0),
                ),
            ])],
        ),
        (
            "unindexed array key exists",
            vec![cond(
                attr(AttrScope::Span, "nested"),
                FilterOp::Exists,
                FilterValue::Bool(true),
            )],
        ),
        (
            "name = render || status msg regex",
            vec![SpanFilter::Or(vec![
                cond(
                    SpanField::Name,
                    FilterOp::Eq,
                    FilterValue::Str("render".into()),
                ),
                cond(
                    SpanField::StatusMessage,
                    FilterOp::Regex,
                    FilterValue::Regex(regex::Regex::new("^fail").unwrap()),
                ),
            ])],
        ),
        (
            "route exists && code != 200 && dur >= 3s && .host.id",
            vec![SpanFilter::And(vec![
                cond(
                    attr(AttrScope::Span, "http.route"),
                    FilterOp::Exists,
                    FilterValue::Bool(true),
                ),
                cond(
                    attr(AttrScope::Span, "http.response.status_code"),
                    FilterOp::Ne,
                    FilterValue::Int(200),
                ),
                cond(
                    SpanField::Duration,
                    FilterOp::Ge,
                    FilterValue::Duration(3_000_000_000),
                ),
                cond(
                    attr(AttrScope::Any, "host.id"),
                    FilterOp::Regex,
                    FilterValue::Regex(regex::Regex::new(".").unwrap()),
                ),
            ])],
        ),
        (
            "ratio double / cached false / dur < 5ns",
            vec![
                cond(
                    attr(AttrScope::Any, "ratio"),
                    FilterOp::Gt,
                    FilterValue::Double(10.0),
                ),
                cond(
                    attr(AttrScope::Span, "cached"),
                    FilterOp::Ne,
                    FilterValue::Bool(true),
                ),
                cond(SpanField::Duration, FilterOp::Lt, FilterValue::Double(5.0)),
            ],
        ),
        (
            "kind != server, dur<=1ms",
            vec![SpanFilter::And(vec![
                cond(
                    SpanField::Kind,
                    FilterOp::Ne,
                    FilterValue::Kind(SpanKind::Server),
                ),
                cond(
                    SpanField::Duration,
                    FilterOp::Le,
                    FilterValue::Int(1_000_000),
                ),
            ])],
        ),
    ]
}

/// What a projected search must keep of a flattened trace: the span attributes with one of
/// `keys` or tested by `filter`; no events, links, trace state, flags or dropped counts.
fn project(mut t: Flat, keys: &[String], filter: &TraceFilter) -> Flat {
    fn tested(f: &SpanFilter, out: &mut Vec<String>) {
        match f {
            SpanFilter::True => {}
            SpanFilter::And(p) | SpanFilter::Or(p) => p.iter().for_each(|x| tested(x, out)),
            SpanFilter::Cond { field, .. } => {
                if let SpanField::Attr {
                    scope: AttrScope::Span | AttrScope::Any,
                    key,
                } = field
                {
                    out.push(key.clone());
                }
            }
        }
    }
    let mut keep = keys.to_vec();
    filter.iter().for_each(|f| tested(f, &mut keep));
    for (_, _, s) in &mut t {
        s.attributes.retain(|a| keep.contains(&a.key));
        s.events.clear();
        s.links.clear();
        s.trace_state.clear();
        s.flags = 0;
        s.dropped_attributes_count = 0;
        s.dropped_events_count = 0;
        s.dropped_links_count = 0;
    }
    t
}

fn search_all(src: &dyn TraceSource, s: &TraceSearch<'_>) -> BTreeMap<TraceId, Flat> {
    let mut out = BTreeMap::new();
    src.search(s, &mut |t| {
        let id = t.id;
        assert!(
            out.insert(id, flat(&t)).is_none(),
            "trace {id} visited twice"
        );
        true
    })
    .unwrap();
    out
}

/// Compares every read of `store` with `naive`. `ranges` are the search ranges to try.
fn compare(store: &TraceStore, naive: &NaiveTraceStore, ids: &[TraceId], ranges: &[(u64, u64)]) {
    for id in ids {
        let a = store.trace(id, None).unwrap().map(|t| flat(&t));
        let b = naive.trace(id, None).unwrap().map(|t| flat(&t));
        assert_eq!(a, b, "trace {id}");
    }
    assert!(store.trace(&TraceId([0xee; 16]), None).unwrap().is_none());
    for (name, f) in filters() {
        for &(start_ns, end_ns) in ranges {
            let s = TraceSearch {
                start_ns,
                end_ns,
                filter: &f,
            };
            let a = search_all(store, &s);
            let b = search_all(naive, &s);
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "search {name} range {start_ns}..{end_ns}"
            );
            assert_eq!(a, b, "search {name}: trace contents");
            // A projected search visits the same traces; the spans it passes carry at least
            // the projected span attributes (and everything but attributes, events, links,
            // trace state, flags and dropped counts) exactly.
            let keys = ["http.route".to_string(), "cached".to_string()];
            let mut p = BTreeMap::new();
            store
                .search_projected(&s, &keys, &mut |t| {
                    assert!(p.insert(t.id, project(flat(&t), &keys, &f)).is_none());
                    true
                })
                .unwrap();
            let want: BTreeMap<TraceId, Flat> = b
                .into_iter()
                .map(|(id, t)| (id, project(t, &keys, &f)))
                .collect();
            assert_eq!(
                p, want,
                "projected search {name} range {start_ns}..{end_ns}"
            );
        }
        // Early stop: visit returning false ends the search after one trace.
        let s = TraceSearch {
            start_ns: 0,
            end_ns: u64::MAX,
            filter: &f,
        };
        let mut n = 0;
        store
            .search(&s, &mut |_| {
                n += 1;
                false
            })
            .unwrap();
        assert!(n <= 1);
    }
    for &(s, e) in ranges {
        for scope in [AttrScope::Span, AttrScope::Resource, AttrScope::Any] {
            assert_eq!(
                store.tag_names(scope, s, e, 100).unwrap(),
                naive.tag_names(scope, s, e, 100).unwrap(),
                "tag_names {scope:?}"
            );
        }
        assert_eq!(
            store
                .tag_names(AttrScope::Any, s, e, 2)
                .unwrap()
                .len()
                .min(2),
            { naive.tag_names(AttrScope::Any, s, e, 2).unwrap().len() }
        );
        let err = SpanFilter::Cond {
            field: SpanField::Status,
            op: FilterOp::Eq,
            value: FilterValue::Status(StatusCode::Error),
        };
        let fields = [
            SpanField::Name,
            SpanField::StatusMessage,
            SpanField::Kind,
            SpanField::Attr {
                scope: AttrScope::Span,
                key: "http.route".into(),
            },
            SpanField::Attr {
                scope: AttrScope::Any,
                key: "service.name".into(),
            },
            SpanField::Attr {
                scope: AttrScope::Resource,
                key: "host.id".into(),
            },
            SpanField::Attr {
                scope: AttrScope::Any,
                key: "host.id".into(),
            },
            SpanField::Attr {
                scope: AttrScope::Span,
                key: "http.response.status_code".into(),
            },
        ];
        for field in &fields {
            for filter in [&SpanFilter::True, &err] {
                assert_eq!(
                    store.tag_values(field, filter, s, e, 1000).unwrap(),
                    naive.tag_values(field, filter, s, e, 1000).unwrap(),
                    "tag_values {field:?} {filter:?}"
                );
            }
        }
    }
}

fn small_opts() -> TraceStoreOptions {
    TraceStoreOptions {
        row_group_spans: 40,
        retention: None,
        compaction_small_bytes: 1 << 30,
        compaction_max_bytes: 1 << 30,
        fsync: FsyncPolicy::Never,
        ..TraceStoreOptions::default()
    }
}

fn all_ids(traces: &[Vec<(usize, usize, Span)>]) -> Vec<TraceId> {
    traces.iter().map(|t| t[0].2.trace_id).collect()
}

const FULL: (u64, u64) = (0, u64::MAX);

fn partial_ranges() -> Vec<(u64, u64)> {
    vec![
        FULL,
        (BASE + 200_000_000_000, BASE + 400_000_000_000),
        (BASE + 900_000_000_000, u64::MAX),
    ]
}

#[test]
fn head_only_matches_naive() {
    let mut rng = Rng(42);
    let traces = gen_traces(&mut rng, 120, 1);
    let spans: Vec<_> = traces.iter().flatten().cloned().collect();
    let store = TraceStore::in_memory_with(small_opts());
    let naive = NaiveTraceStore::new();
    append_both(&store, &naive, &spans);
    assert_eq!(store.stats().head_spans, spans.len() as u64);
    assert_eq!(store.stats().blocks, 0);
    compare(&store, &naive, &all_ids(&traces), &partial_ranges());
}

#[test]
fn flushed_blocks_match_naive() {
    for seed in [1u64, 7, 99] {
        let mut rng = Rng(seed);
        let traces = gen_traces(&mut rng, 150, 2);
        let spans: Vec<_> = traces.iter().flatten().cloned().collect();
        let store = TraceStore::in_memory_with(small_opts());
        let naive = NaiveTraceStore::new();
        append_both(&store, &naive, &spans);
        store.flush().unwrap();
        let st = store.stats();
        assert_eq!((st.head_spans, st.blocks), (0, 1));
        assert_eq!(st.block_spans, spans.len() as u64);
        assert_eq!(st.block_traces, traces.len() as u64);
        compare(&store, &naive, &all_ids(&traces), &partial_ranges());
    }
}

/// Late spans and duplicates: a trace's spans spread over the head and several blocks, some
/// spans received twice (also across a flush); then compaction merges the blocks.
#[test]
fn split_traces_duplicates_and_compaction_match_naive() {
    let mut rng = Rng(5);
    let traces = gen_traces(&mut rng, 100, 3);
    let store = TraceStore::in_memory_with(small_opts());
    let naive = NaiveTraceStore::new();
    // Round r gets every span whose index within its trace is ≡ r (mod 4).
    for round in 0..4 {
        let spans: Vec<_> = traces
            .iter()
            .flat_map(|t| t.iter().enumerate().filter(move |(i, _)| i % 4 == round))
            .map(|(_, s)| s.clone())
            .collect();
        append_both(&store, &naive, &spans);
        // Duplicates of the previous round's first spans.
        let dups: Vec<_> = traces.iter().take(20).map(|t| t[0].clone()).collect();
        append_both(&store, &naive, &dups);
        if round < 3 {
            store.flush().unwrap();
        }
    }
    assert_eq!(store.stats().blocks, 3);
    assert!(store.stats().head_spans > 0);
    compare(&store, &naive, &all_ids(&traces), &[FULL]);
    store.maintain().unwrap();
    assert_eq!(
        store.stats().blocks,
        1,
        "compaction merged the three small blocks"
    );
    compare(&store, &naive, &all_ids(&traces), &[FULL]);
    store.flush().unwrap();
    store.maintain().unwrap();
    let st = store.stats();
    assert_eq!((st.blocks, st.head_spans), (1, 0));
    compare(&store, &naive, &all_ids(&traces), &[FULL]);
}

#[test]
fn rejects_zero_ids_and_round_trips_every_field() {
    let mut rng = Rng(11);
    let traces = gen_traces(&mut rng, 30, 4);
    let mut spans: Vec<_> = traces.iter().flatten().cloned().collect();
    let mut bad = spans[0].clone();
    bad.2.trace_id = TraceId([0; 16]);
    spans.push(bad);
    let store = TraceStore::in_memory_with(small_opts());
    let out = store.append(batches(&spans)).unwrap();
    assert_eq!(
        (out.accepted_spans, out.rejected_spans),
        (spans.len() as u64 - 1, 1)
    );
    assert!(!out.errors.is_empty());
    store.flush().unwrap();
    for t in &traces {
        let got = store.trace(&t[0].2.trace_id, None).unwrap().unwrap();
        let mut want: Vec<Span> = t.iter().map(|x| x.2.clone()).collect();
        want.sort_by_key(|s| s.span_id);
        let got: Vec<Span> = flat(&got).into_iter().map(|x| x.2).collect();
        assert_eq!(got, want);
    }
}

fn disk_opts() -> TraceStoreOptions {
    TraceStoreOptions {
        fsync: FsyncPolicy::Always,
        ..small_opts()
    }
}

fn wal_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn block_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir.join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn wal_replay_and_flush_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(3);
    let traces = gen_traces(&mut rng, 60, 5);
    let spans: Vec<_> = traces.iter().flatten().cloned().collect();
    let naive = NaiveTraceStore::new();
    {
        let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
        append_both(&store, &naive, &spans[..spans.len() / 2]);
        // Dropped without flush: like kill -9 after the acknowledgement.
    }
    {
        let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
        assert_eq!(store.stats().head_spans, (spans.len() / 2) as u64);
        compare(&store, &naive, &all_ids(&traces), &[FULL]);
        append_both(&store, &naive, &spans[spans.len() / 2..]);
        store.flush().unwrap();
        let wal_bytes: u64 = wal_files(dir.path())
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(wal_bytes, 0, "flush truncates the WAL");
        assert_eq!(block_files(dir.path()).len(), 1);
    }
    let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
    let st = store.stats();
    assert_eq!((st.head_spans, st.blocks), (0, 1));
    compare(&store, &naive, &all_ids(&traces), &partial_ranges());
}

/// Group commit: appends from several threads at once (each answered only after a shared
/// fsync covered its WAL frame), some of them cutting the head into blocks meanwhile, all
/// survive a reopen without flush (as after kill -9 following the acknowledgements).
#[test]
fn concurrent_appends_with_group_commit_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(21);
    let traces = gen_traces(&mut rng, 120, 7);
    let spans: Vec<_> = traces.iter().flatten().cloned().collect();
    let opts = TraceStoreOptions {
        // Small enough that appends cut full heads while other threads append.
        max_head_bytes: 64 << 10,
        ..disk_opts()
    };
    let naive = NaiveTraceStore::new();
    for part in spans.chunks(29) {
        naive.append(batches(part)).unwrap();
    }
    {
        let store = TraceStore::open(dir.path(), opts.clone()).unwrap();
        let quarter = spans.len() / 4 + 1;
        std::thread::scope(|sc| {
            for chunk in spans.chunks(quarter) {
                let store = &store;
                sc.spawn(move || {
                    for part in chunk.chunks(29) {
                        let out = store.append(batches(part)).unwrap();
                        assert_eq!(out.accepted_spans + out.rejected_spans, part.len() as u64);
                    }
                });
            }
        });
        assert!(
            store.stats().blocks > 0,
            "the head was cut during the appends"
        );
        compare(&store, &naive, &all_ids(&traces), &[FULL]);
        // Dropped without flush.
    }
    let store = TraceStore::open(dir.path(), opts).unwrap();
    compare(&store, &naive, &all_ids(&traces), &[FULL]);
}

/// Cutting only idle traces re-logs the rest into the new WAL generation, so they survive a
/// crash after the old generation is deleted.
#[test]
fn idle_cut_keeps_active_traces_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(8);
    let traces = gen_traces(&mut rng, 40, 6);
    let opts = TraceStoreOptions {
        trace_idle: Duration::from_millis(50),
        max_block_duration: Duration::ZERO,
        ..disk_opts()
    };
    let naive = NaiveTraceStore::new();
    let (old, new) = traces.split_at(20);
    {
        let store = TraceStore::open(dir.path(), opts.clone()).unwrap();
        append_both(
            &store,
            &naive,
            &old.iter().flatten().cloned().collect::<Vec<_>>(),
        );
        std::thread::sleep(Duration::from_millis(120));
        append_both(
            &store,
            &naive,
            &new.iter().flatten().cloned().collect::<Vec<_>>(),
        );
        store.maintain().unwrap();
        let st = store.stats();
        assert_eq!(st.blocks, 1);
        assert_eq!(st.block_traces, 20, "only the idle traces were cut");
        assert_eq!(st.head_traces, 20);
        assert_eq!(
            wal_files(dir.path()).len(),
            1,
            "older WAL generations deleted"
        );
        // The partial cut left the head's autocomplete summary stale: it is rebuilt.
        assert!(!store.head_summary_valid());
        compare(&store, &naive, &all_ids(&traces), &[FULL]);
        assert!(store.head_summary_valid());
    }
    let store = TraceStore::open(dir.path(), opts).unwrap();
    assert_eq!(store.stats().head_traces, 20);
    compare(&store, &naive, &all_ids(&traces), &[FULL]);
}

type GenTraces = Vec<Vec<(usize, usize, Span)>>;

fn write_two_records(dir: &Path) -> (GenTraces, NaiveTraceStore) {
    let mut rng = Rng(21);
    let traces = gen_traces(&mut rng, 20, 7);
    let naive = NaiveTraceStore::new();
    let store = TraceStore::open(dir, disk_opts()).unwrap();
    for t in traces.iter().take(10) {
        store.append(batches(t)).unwrap();
        naive.append(batches(t)).unwrap();
    }
    let rest: Vec<_> = traces[10..].iter().flatten().cloned().collect();
    store.append(batches(&rest)).unwrap();
    (traces, naive)
}

#[test]
fn torn_wal_tail_is_skipped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (traces, naive) = write_two_records(dir.path());
    let wal = wal_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&wal).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len - 7).unwrap();
    let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
    // The last record (traces 10..) is lost, everything before it is intact.
    compare(&store, &naive, &all_ids(&traces), &[FULL]);
    assert!(store
        .trace(&traces[15][0].2.trace_id, None)
        .unwrap()
        .is_none());
    assert!(store
        .trace(&traces[5][0].2.trace_id, None)
        .unwrap()
        .is_some());
}

#[test]
fn corrupt_wal_record_ends_replay_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (traces, naive) = write_two_records(dir.path());
    let wal = wal_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&wal).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x55;
    fs::write(&wal, &bytes).unwrap();
    let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
    compare(&store, &naive, &all_ids(&traces), &[FULL]);
    // Garbage in place of the whole WAL: opens empty.
    drop(store);
    fs::write(&wal, b"\xff\xff\xff\x7fgarbage").unwrap();
    let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
    assert_eq!(store.stats().head_spans, 0);
}

#[test]
fn corrupt_block_footer_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let (traces, _) = write_two_records(dir.path());
    {
        let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
        store.flush().unwrap();
    }
    let block = block_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&block).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 0xff; // inside the footer
    fs::write(&block, &bytes).unwrap();
    let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
    let st = store.stats();
    assert_eq!((st.blocks, st.quarantined_blocks), (0, 1));
    assert!(dir
        .path()
        .join("quarantine")
        .join(block.file_name().unwrap())
        .exists());
    assert!(store
        .trace(&traces[0][0].2.trace_id, None)
        .unwrap()
        .is_none());
}

#[test]
fn corrupt_block_column_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (traces, _) = write_two_records(dir.path());
    {
        let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
        store.flush().unwrap();
    }
    let block = block_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&block).unwrap();
    bytes[20] ^= 0xff; // inside the first row group's columns
    fs::write(&block, &bytes).unwrap();
    let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
    assert_eq!(store.stats().blocks, 1, "index intact: block opens");
    let mut errors = 0;
    for t in &traces {
        match store.trace(&t[0].2.trace_id, None) {
            Err(StorageError::Corruption { reason, .. }) => {
                assert!(reason.contains("checksum"), "{reason}");
                errors += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => {}
        }
    }
    assert!(errors > 0);
    let all: TraceFilter = vec![];
    let r = store.search(
        &TraceSearch {
            start_ns: 0,
            end_ns: u64::MAX,
            filter: &all,
        },
        &mut |_| true,
    );
    assert!(matches!(r, Err(StorageError::Corruption { .. })));
}

#[test]
fn retention_drops_old_blocks_by_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(13);
    let traces = gen_traces(&mut rng, 30, 8);
    let opts = TraceStoreOptions {
        retention: Some(Duration::from_secs(3600)),
        ..disk_opts()
    };
    let store = TraceStore::open(dir.path(), opts).unwrap();
    for chunk in traces.chunks(10) {
        let spans: Vec<_> = chunk.iter().flatten().cloned().collect();
        store.append(batches(&spans)).unwrap();
        store.flush().unwrap();
    }
    assert_eq!(store.stats().blocks, 3);
    let newest = BASE + 1_000_000_000_000 + 10_000_000_000;
    store.apply_retention(newest).unwrap();
    assert_eq!(store.stats().blocks, 3, "all within an hour of their end");
    store
        .apply_retention(newest + 7200 * 1_000_000_000)
        .unwrap();
    assert_eq!(store.stats().blocks, 0);
    assert!(block_files(dir.path()).is_empty());
    assert!(store
        .trace(&traces[0][0].2.trace_id, None)
        .unwrap()
        .is_none());

    let opts = TraceStoreOptions {
        retention: None,
        retention_bytes: Some(1),
        ..disk_opts()
    };
    let dir2 = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir2.path(), opts).unwrap();
    for chunk in traces.chunks(10) {
        let spans: Vec<_> = chunk.iter().flatten().cloned().collect();
        store.append(batches(&spans)).unwrap();
        store.flush().unwrap();
    }
    store.apply_retention(0).unwrap();
    assert_eq!(store.stats().blocks, 0, "over the size limit: all dropped");
}

#[test]
fn head_size_limit_cuts_a_block_during_append() {
    let mut rng = Rng(17);
    let traces = gen_traces(&mut rng, 50, 9);
    let store = TraceStore::in_memory_with(TraceStoreOptions {
        max_head_bytes: 4096,
        ..small_opts()
    });
    let naive = NaiveTraceStore::new();
    append_both(
        &store,
        &naive,
        &traces.iter().flatten().cloned().collect::<Vec<_>>(),
    );
    let st = store.stats();
    assert!(st.blocks >= 2, "{st:?}");
    assert!(st.head_bytes < 4096 + 37 * 400);
    compare(&store, &naive, &all_ids(&traces), &[FULL]);
}

#[test]
fn compaction_on_disk_deletes_sources_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(23);
    let traces = gen_traces(&mut rng, 40, 10);
    let naive = NaiveTraceStore::new();
    {
        let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
        for chunk in traces.chunks(10) {
            append_both(
                &store,
                &naive,
                &chunk.iter().flatten().cloned().collect::<Vec<_>>(),
            );
            store.flush().unwrap();
        }
        assert_eq!(block_files(dir.path()).len(), 4);
        store.maintain().unwrap();
        assert_eq!(store.stats().blocks, 1);
    }
    assert_eq!(block_files(dir.path()).len(), 1);
    let store = TraceStore::open(dir.path(), disk_opts()).unwrap();
    compare(&store, &naive, &all_ids(&traces), &partial_ranges());
}

/// The head's autocomplete summary reads what was appended since it was last asked, so
/// `tag_names`/`tag_values` over a range holding the whole head answer without decoding every
/// span, and agree with the naive store — also when a trace got more spans after it was read.
#[test]
fn head_summary_answers_autocomplete() {
    let mut rng = Rng(77);
    let traces = gen_traces(&mut rng, 80, 9);
    // Every trace's first spans, then the rest: the second reading resumes inside traces.
    let first: Vec<_> = (traces.iter())
        .flat_map(|t| t[..t.len() / 2].iter().cloned())
        .collect();
    let rest: Vec<_> = (traces.iter())
        .flat_map(|t| t[t.len() / 2..].iter().cloned())
        .collect();
    let store = TraceStore::in_memory_with(small_opts());
    let naive = NaiveTraceStore::new();
    append_both(&store, &naive, &first);
    assert!(store.head_summary_valid());
    let route = SpanField::Attr {
        scope: AttrScope::Any,
        key: "http.route".into(),
    };
    let (s, e) = FULL;
    assert!(store.head_summary_answers(&route, s, e));
    assert_eq!(
        store
            .tag_values(&route, &SpanFilter::True, s, e, 100)
            .unwrap(),
        naive
            .tag_values(&route, &SpanFilter::True, s, e, 100)
            .unwrap()
    );
    // "/dup" is only ever a span's second http.route: never listed.
    assert!(!store
        .tag_values(&route, &SpanFilter::True, s, e, 100)
        .unwrap()
        .contains(&AttrValue::Str("/dup".into())));
    append_both(&store, &naive, &rest);
    assert!(store.head_summary_valid());
    compare(&store, &naive, &all_ids(&traces), &[FULL]);
    // A range that excludes some head spans is answered by decoding (still exact).
    let late = traces
        .iter()
        .flatten()
        .map(|x| x.2.start_unix_nano)
        .max()
        .unwrap();
    assert!(!store.head_summary_answers(&route, late, u64::MAX));
    compare(&store, &naive, &all_ids(&traces), &partial_ranges());
    store.flush().unwrap();
    assert!(
        store.head_summary_valid(),
        "an emptied head starts a fresh summary"
    );
}
