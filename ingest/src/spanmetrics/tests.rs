//! Span-metrics and service-graph generator tests: series values after collection, exemplars,
//! the series limit, pairing across requests, expiry and virtual nodes, and the TSDB write.

use std::sync::Arc;
use std::time::Duration;

use sextant_storage::traces::{
    Attr, AttrValue, Resource, Scope, Span, SpanBatch, SpanKind, StatusCode, TraceId,
};
use sextant_storage::{Db, Matcher, SeriesSource};

use super::*;

fn batch(service: &str, spans: Vec<Span>) -> SpanBatch {
    SpanBatch {
        resource: Arc::new(Resource {
            attributes: vec![
                Attr::new("service.name", AttrValue::Str(service.into())),
                Attr::new("deployment.environment", AttrValue::Str("prod".into())),
            ],
            ..Resource::default()
        }),
        scope: Arc::new(Scope::default()),
        spans,
    }
}

fn span(trace: u8, id: u8, parent: Option<u8>, kind: SpanKind, name: &str, ms: u64) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: [id; 8],
        parent_span_id: parent.map(|p| [p; 8]),
        name: name.into(),
        kind,
        start_unix_nano: 1_000_000_000,
        end_unix_nano: 1_000_000_000 + ms * 1_000_000,
        ..Span::default()
    }
}

fn generator(options: SpanMetricsOptions) -> Arc<SpanMetrics> {
    SpanMetrics::new(Arc::new(Db::in_memory()), options).unwrap()
}

const T0: i64 = 1_700_000_000_000;

fn red<'a>(
    service: &'a str,
    name: &'a str,
    kind: &'a str,
    status: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("service", service),
        ("span_name", name),
        ("span_kind", kind),
        ("status_code", status),
    ]
}

#[test]
fn calls_and_latency_follow_tempo_names_labels_and_buckets() {
    let g = generator(SpanMetricsOptions::default());
    let mut err = span(1, 3, None, SpanKind::Server, "GET /", 3);
    err.status_code = StatusCode::Error;
    g.observe_at(
        &[batch(
            "api",
            vec![
                span(1, 1, None, SpanKind::Server, "GET /", 3),
                span(1, 2, None, SpanKind::Server, "GET /", 20),
                err,
            ],
        )],
        T0,
    );
    let c = g.collect_at(T0 + 1000, false);
    let ok = red("api", "GET /", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET");
    assert_eq!(c.value("traces_spanmetrics_calls_total", &ok), Some(2.0));
    assert_eq!(
        c.value(
            "traces_spanmetrics_calls_total",
            &red("api", "GET /", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR")
        ),
        Some(1.0)
    );
    assert_eq!(c.value("traces_spanmetrics_latency_count", &ok), Some(2.0));
    let sum = c.value("traces_spanmetrics_latency_sum", &ok).unwrap();
    assert!((sum - 0.023).abs() < 1e-12, "{sum}");
    let bucket = |le: &'static str| {
        let mut l = ok.clone();
        l.push(("le", le));
        c.value("traces_spanmetrics_latency_bucket", &l)
    };
    // Tempo's defaults: 0.002, 0.004, …, 16.384.
    assert_eq!(bucket("0.002"), Some(0.0));
    assert_eq!(bucket("0.004"), Some(1.0));
    assert_eq!(bucket("0.016"), Some(1.0));
    assert_eq!(bucket("0.032"), Some(2.0));
    assert_eq!(bucket("16.384"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(2.0));
    // A new series is written as 0 one millisecond before its first value.
    let (_, samples) = c
        .floats
        .iter()
        .find(|(l, _)| {
            l.get("__name__") == Some("traces_spanmetrics_calls_total")
                && l.get("status_code") == Some("STATUS_CODE_UNSET")
        })
        .unwrap();
    assert_eq!(
        samples.iter().map(|s| (s.t, s.v)).collect::<Vec<_>>(),
        [(T0 + 999, 0.0), (T0 + 1000, 2.0)]
    );
    // Later collections are cumulative and without the leading 0.
    g.observe_at(
        &[batch(
            "api",
            vec![span(2, 1, None, SpanKind::Server, "GET /", 1)],
        )],
        T0 + 2000,
    );
    let c = g.collect_at(T0 + 15_000, false);
    assert_eq!(c.value("traces_spanmetrics_calls_total", &ok), Some(3.0));
    let (_, samples) = c
        .floats
        .iter()
        .find(|(l, _)| {
            l.get("__name__") == Some("traces_spanmetrics_calls_total")
                && l.get("status_code") == Some("STATUS_CODE_UNSET")
        })
        .unwrap();
    assert_eq!(samples.len(), 1);
}

#[test]
fn exemplars_carry_the_trace_and_span_of_the_latest_span_per_bucket() {
    let g = generator(SpanMetricsOptions::default());
    g.observe_at(
        &[batch(
            "api",
            vec![
                span(7, 1, None, SpanKind::Server, "op", 3),
                span(8, 2, None, SpanKind::Server, "op", 3),
            ],
        )],
        T0,
    );
    let c = g.collect_at(T0 + 1, false);
    let find = |name: &str, le: Option<&str>| {
        c.exemplars
            .iter()
            .find(|(l, _)| l.get("__name__") == Some(name) && l.get("le") == le)
            .map(|(_, e)| e.clone())
    };
    let ex = find("traces_spanmetrics_latency_bucket", Some("0.004")).unwrap();
    assert_eq!(ex.len(), 1);
    assert_eq!(
        ex[0].labels.get("trace_id"),
        Some(TraceId([8; 16]).to_hex().as_str())
    );
    assert_eq!(ex[0].labels.get("span_id"), Some("0202020202020202"));
    assert!((ex[0].value - 0.003).abs() < 1e-12);
    assert_eq!(ex[0].t, T0 + 1);
    assert!(find("traces_spanmetrics_calls_total", None).is_some());
    assert!(find("traces_spanmetrics_latency_bucket", Some("0.002")).is_none());
    // Exemplars are written once: the next collection has none without new spans.
    let c = g.collect_at(T0 + 2, false);
    assert!(c.exemplars.is_empty());
}

#[test]
fn dimensions_come_from_span_then_resource_attributes_with_sanitised_names() {
    let g = generator(SpanMetricsOptions {
        dimensions: vec![
            "http.method".into(),
            "deployment.environment".into(),
            "http.status_code".into(),
        ],
        ..SpanMetricsOptions::default()
    });
    let mut s = span(1, 1, None, SpanKind::Client, "call", 1);
    s.attributes = vec![
        Attr::new("http.method", AttrValue::Str("POST".into())),
        Attr::new("http.status_code", AttrValue::Int(503)),
        Attr::new("deployment.environment", AttrValue::Str("canary".into())),
    ];
    let plain = span(1, 2, None, SpanKind::Client, "call", 1);
    g.observe_at(&[batch("web", vec![s, plain])], T0);
    let c = g.collect_at(T0 + 1, false);
    let mut l = red("web", "call", "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET");
    l.extend([
        ("http_method", "POST"),
        ("deployment_environment", "canary"),
        ("http_status_code", "503"),
    ]);
    assert_eq!(c.value("traces_spanmetrics_calls_total", &l), Some(1.0));
    // The span without the attributes falls back to the resource's; absent ones are no label.
    let mut l = red("web", "call", "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET");
    l.push(("deployment_environment", "prod"));
    assert_eq!(c.value("traces_spanmetrics_calls_total", &l), Some(1.0));
    assert_eq!(sanitize_label_name("1st.key-x"), "_1st_key_x");
    assert!(SpanMetrics::new(
        Arc::new(Db::in_memory()),
        SpanMetricsOptions {
            dimensions: vec!["service".into()],
            ..Default::default()
        }
    )
    .is_err());
    assert!(SpanMetrics::new(
        Arc::new(Db::in_memory()),
        SpanMetricsOptions {
            buckets: vec![1.0, 0.5],
            ..Default::default()
        }
    )
    .is_err());
}

#[test]
fn the_series_limit_drops_new_series_and_counts_them() {
    let g = generator(SpanMetricsOptions {
        max_series: 2,
        service_graph: ServiceGraphOptions {
            enabled: false,
            ..Default::default()
        },
        ..SpanMetricsOptions::default()
    });
    let spans = (0..5)
        .map(|i| span(1, i + 1, None, SpanKind::Internal, &format!("op{i}"), 1))
        .collect();
    g.observe_at(&[batch("a", spans)], T0);
    // Existing series still count.
    g.observe_at(
        &[batch(
            "a",
            vec![span(2, 1, None, SpanKind::Internal, "op0", 1)],
        )],
        T0,
    );
    assert_eq!(g.metrics().series_dropped.get(), 3);
    assert_eq!(g.metrics().active_series.get(), 2);
    let c = g.collect_at(T0 + 1, false);
    assert_eq!(
        c.value(
            "traces_spanmetrics_calls_total",
            &red("a", "op0", "SPAN_KIND_INTERNAL", "STATUS_CODE_UNSET")
        ),
        Some(2.0)
    );
    assert_eq!(
        c.value(
            "traces_spanmetrics_calls_total",
            &red("a", "op4", "SPAN_KIND_INTERNAL", "STATUS_CODE_UNSET")
        ),
        None
    );
}

#[test]
fn stale_series_are_forgotten() {
    let g = generator(SpanMetricsOptions {
        stale_after: Duration::from_secs(60),
        ..SpanMetricsOptions::default()
    });
    g.observe_at(
        &[batch(
            "a",
            vec![span(1, 1, None, SpanKind::Internal, "old", 1)],
        )],
        T0,
    );
    g.observe_at(
        &[batch(
            "a",
            vec![span(1, 2, None, SpanKind::Internal, "new", 1)],
        )],
        T0 + 50_000,
    );
    let c = g.collect_at(T0 + 70_000, false);
    let l = |n| red("a", n, "SPAN_KIND_INTERNAL", "STATUS_CODE_UNSET");
    assert_eq!(c.value("traces_spanmetrics_calls_total", &l("old")), None);
    assert_eq!(
        c.value("traces_spanmetrics_calls_total", &l("new")),
        Some(1.0)
    );
}

fn edge<'a>(client: &'a str, server: &'a str, ct: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client", client),
        ("server", server),
        ("connection_type", ct),
    ]
}

#[test]
fn client_and_server_spans_pair_across_requests_in_either_order() {
    let g = generator(SpanMetricsOptions::default());
    // Server half first, in its own request.
    let mut server = span(1, 2, Some(1), SpanKind::Server, "GET /", 50);
    server.status_code = StatusCode::Error;
    g.observe_at(&[batch("backend", vec![server])], T0);
    g.observe_at(
        &[batch(
            "frontend",
            vec![span(1, 1, None, SpanKind::Client, "GET", 80)],
        )],
        T0 + 10,
    );
    // Client half first.
    g.observe_at(
        &[batch(
            "frontend",
            vec![span(2, 1, None, SpanKind::Client, "GET", 150)],
        )],
        T0 + 20,
    );
    g.observe_at(
        &[batch(
            "backend",
            vec![span(2, 2, Some(1), SpanKind::Server, "GET /", 120)],
        )],
        T0 + 30,
    );
    let c = g.collect_at(T0 + 40, false);
    let e = edge("frontend", "backend", "");
    assert_eq!(c.value("traces_service_graph_request_total", &e), Some(2.0));
    assert_eq!(
        c.value("traces_service_graph_request_failed_total", &e),
        Some(1.0)
    );
    assert_eq!(
        c.value("traces_service_graph_request_server_seconds_count", &e),
        Some(2.0)
    );
    let s = c
        .value("traces_service_graph_request_server_seconds_sum", &e)
        .unwrap();
    assert!((s - 0.17).abs() < 1e-9, "{s}");
    let s = c
        .value("traces_service_graph_request_client_seconds_sum", &e)
        .unwrap();
    assert!((s - 0.23).abs() < 1e-9, "{s}");
    let mut b = e.clone();
    b.push(("le", "0.1"));
    assert_eq!(
        c.value("traces_service_graph_request_client_seconds_bucket", &b),
        Some(1.0)
    );
    assert_eq!(
        c.value("traces_service_graph_request_server_seconds_bucket", &b),
        Some(1.0)
    );
    assert_eq!(g.metrics().edges_expired.get(), 0);
    assert!(c
        .exemplars
        .iter()
        .any(|(l, _)| l.get("__name__") == Some("traces_service_graph_request_total")));
}

#[test]
fn unpaired_halves_expire_and_are_counted_and_the_store_is_bounded() {
    let g = generator(SpanMetricsOptions {
        service_graph: ServiceGraphOptions {
            wait: Duration::from_secs(10),
            max_items: 2,
            ..Default::default()
        },
        ..SpanMetricsOptions::default()
    });
    let clients = (1..=3)
        .map(|i| span(i, 1, None, SpanKind::Client, "c", 1))
        .collect();
    g.observe_at(&[batch("a", clients)], T0);
    assert_eq!(g.metrics().edges_dropped.get(), 1);
    assert_eq!(g.inner.lock().graph.pending(), 2);
    // Not yet expired at +9s; expired at +11s.
    let _ = g.collect_at(T0 + 9_000, false);
    assert_eq!(g.metrics().edges_expired.get(), 0);
    let c = g.collect_at(T0 + 11_000, false);
    assert_eq!(g.metrics().edges_expired.get(), 2);
    assert_eq!(g.inner.lock().graph.pending(), 0);
    assert!(c
        .floats
        .iter()
        .all(|(l, _)| l.get("__name__") != Some("traces_service_graph_request_total")));
    // A server span arriving after its client expired pairs with nothing.
    g.observe_at(
        &[batch(
            "b",
            vec![span(1, 2, Some(1), SpanKind::Server, "s", 1)],
        )],
        T0 + 12_000,
    );
    let c = g.collect_at(T0 + 12_001, true);
    assert_eq!(
        c.value("traces_service_graph_request_total", &edge("a", "b", "")),
        None
    );
    assert_eq!(g.metrics().edges_expired.get(), 3);
}

#[test]
fn virtual_nodes_for_databases_peers_users_and_messaging() {
    let g = generator(SpanMetricsOptions::default());
    let mut db = span(1, 5, Some(4), SpanKind::Client, "SELECT", 2);
    db.attributes = vec![
        Attr::new("db.system", AttrValue::Str("postgresql".into())),
        Attr::new("db.name", AttrValue::Str("orders".into())),
    ];
    let mut redis = span(1, 6, Some(4), SpanKind::Client, "GET", 1);
    redis.attributes = vec![Attr::new("db.system.name", AttrValue::Str("redis".into()))];
    let mut peer = span(1, 7, Some(4), SpanKind::Client, "charge", 1);
    peer.attributes = vec![Attr::new("peer.service", AttrValue::Str("stripe".into()))];
    let root = span(1, 4, None, SpanKind::Server, "POST /order", 5);
    let producer = span(1, 8, Some(4), SpanKind::Producer, "publish", 1);
    g.observe_at(&[batch("shop", vec![db, redis, peer, root, producer])], T0);
    g.observe_at(
        &[batch(
            "mailer",
            vec![span(1, 9, Some(8), SpanKind::Consumer, "consume", 1)],
        )],
        T0 + 1,
    );
    let c = g.collect_at(T0 + 20_000, false);
    let total = |e: Vec<(&str, &str)>| c.value("traces_service_graph_request_total", &e);
    assert_eq!(total(edge("shop", "orders", "database")), Some(1.0));
    assert_eq!(total(edge("shop", "redis", "database")), Some(1.0));
    assert_eq!(total(edge("user", "shop", "virtual_node")), Some(1.0));
    assert_eq!(total(edge("shop", "mailer", "messaging_system")), Some(1.0));
    // The peer.service client expired unpaired into a virtual edge, not an expiry.
    assert_eq!(total(edge("shop", "stripe", "virtual_node")), Some(1.0));
    assert_eq!(g.metrics().edges_expired.get(), 0);
}

#[test]
fn native_histograms_when_configured() {
    let g = generator(SpanMetricsOptions {
        histogram: HistogramMode::Native,
        ..SpanMetricsOptions::default()
    });
    g.observe_at(
        &[batch(
            "a",
            vec![
                span(1, 1, None, SpanKind::Server, "op", 100),
                span(1, 2, None, SpanKind::Server, "op", 100),
                span(1, 3, None, SpanKind::Server, "op", 0),
            ],
        )],
        T0,
    );
    let c = g.collect_at(T0 + 1, false);
    assert!(c
        .floats
        .iter()
        .all(|(l, _)| l.get("__name__") != Some("traces_spanmetrics_latency_bucket")));
    let (_, samples) = c
        .histograms
        .iter()
        .find(|(l, _)| l.get("__name__") == Some("traces_spanmetrics_latency"))
        .unwrap();
    let h = &samples.last().unwrap().h;
    assert_eq!((h.count, h.zero_count, h.schema), (3.0, 1.0, 3));
    assert_eq!(h.positive_buckets, [2.0]);
    // 0.1 s lies in the bucket (2^((i-1)/8), 2^(i/8)].
    let i = h.positive_spans[0].offset;
    let (lo, hi) = (
        2f64.powf(f64::from(i - 1) / 8.0),
        2f64.powf(f64::from(i) / 8.0),
    );
    assert!(lo < 0.1 && 0.1 <= hi, "{lo} {hi}");
    assert!(h.validate().is_ok());
}

#[test]
fn flush_writes_series_and_exemplars_to_the_tsdb() {
    let db = Arc::new(Db::in_memory());
    let g = SpanMetrics::new(db.clone(), SpanMetricsOptions::default()).unwrap();
    g.observe_at(
        &[batch(
            "api",
            vec![span(9, 1, None, SpanKind::Server, "op", 5)],
        )],
        T0,
    );
    g.flush_at(T0 + 1000, false).unwrap();
    g.observe_at(
        &[batch(
            "api",
            vec![span(9, 2, None, SpanKind::Server, "op", 5)],
        )],
        T0 + 2000,
    );
    g.flush_at(T0 + 16_000, true).unwrap();
    let m = [
        Matcher::equal("__name__", "traces_spanmetrics_calls_total"),
        Matcher::equal("service", "api"),
    ];
    let series = db.select(&m, i64::MIN, i64::MAX).unwrap();
    assert_eq!(series.len(), 1);
    let got: Vec<(i64, f64)> = series[0].samples.iter().map(|s| (s.t, s.v)).collect();
    assert_eq!(got, [(T0 + 999, 0.0), (T0 + 1000, 1.0), (T0 + 16_000, 2.0)]);
    let m = [
        Matcher::equal("__name__", "traces_spanmetrics_latency_bucket"),
        Matcher::equal("le", "0.008"),
    ];
    let ex = db
        .select_exemplars(&[m.to_vec()], i64::MIN, i64::MAX)
        .unwrap();
    let traces: Vec<&str> = ex
        .iter()
        .flat_map(|s| s.exemplars.iter().filter_map(|e| e.labels.get("trace_id")))
        .collect();
    assert_eq!(
        traces,
        [TraceId([9; 16]).to_hex(), TraceId([9; 16]).to_hex()]
    );
}
