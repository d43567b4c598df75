//! Tests of the Tempo API's parameter handling (the HTTP round trips are in
//! `tests/tempo_api.rs`).

use axum::http::HeaderValue;

use super::*;

#[test]
fn go_durations() {
    assert_eq!(parse_go_duration("100ms"), Some(100_000_000));
    assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
    assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
    assert_eq!(parse_go_duration("250"), Some(250));
    assert_eq!(parse_go_duration("fast"), None);
    assert_eq!(parse_go_duration("1s }"), None);
    assert_eq!(parse_go_duration(""), None);
}

#[test]
fn legacy_tags_become_one_span_filter() {
    assert_eq!(tags_to_traceql("").unwrap(), "{}");
    assert_eq!(
        tags_to_traceql(r#"service.name=cart name="GET /a \"b\"""#).unwrap(),
        r#"{ ."service.name" = "cart" && name = "GET /a \"b\"" }"#
    );
    assert_eq!(
        tags_to_traceql("http.status_code=500 status.code=error").unwrap(),
        r#"{ (."http.status_code" = "500" || ."http.status_code" = 500) && status = error }"#
    );
    // Each result parses as TraceQL.
    for tags in ["a=1.5", r#"k="x y""#, "status=ok"] {
        let q = tags_to_traceql(tags).unwrap();
        traceql::parse(&q).unwrap_or_else(|e| panic!("{tags} -> {q}: {e}"));
    }
    assert!(tags_to_traceql("novalue").is_err());
    assert!(tags_to_traceql(r#"k="unterminated"#).is_err());
    assert!(tags_to_traceql("status.code=broken").is_err());
}

#[test]
fn search_ids_drop_leading_zeros() {
    let id = TraceId::from_hex("00000000000000000a00000000000003").unwrap();
    assert_eq!(search_trace_id(&id), "a00000000000003");
    let full = TraceId::from_hex("f00000000000000000000000000000ff").unwrap();
    assert_eq!(search_trace_id(&full), "f00000000000000000000000000000ff");
}

#[test]
fn protobuf_is_chosen_by_accept_header() {
    let mut h = HeaderMap::new();
    assert!(!wants_protobuf(&h));
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    assert!(!wants_protobuf(&h));
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/protobuf, */*"),
    );
    assert!(wants_protobuf(&h));
}

#[test]
fn time_ranges_are_seconds() {
    let p = Params::from_parts(None, Some("start=10&end=20"));
    assert_eq!(time_range(&p).unwrap(), (10_000_000_000, 20_999_999_999));
    let p = Params::from_parts(None, Some(""));
    assert_eq!(time_range(&p).unwrap(), (0, u64::MAX));
    let p = Params::from_parts(None, Some("start=abc"));
    assert_eq!(time_range(&p).unwrap_err().status, StatusCode::BAD_REQUEST);
    let p = Params::from_parts(None, Some("start=30&end=20"));
    assert!(time_range(&p).is_err());
}

#[test]
fn search_body_is_search_json_serialised() {
    use crate::traceql::{SpanMatch, Spanset};
    let span = |n: u8, attrs: Vec<(String, AttrValue)>| SpanMatch {
        span_id: [n; 8],
        name: format!("op{n}"),
        start_ns: 1_000 + n as u64,
        duration_ns: 2_500_000 * n as u64,
        attributes: attrs,
    };
    let set = |attrs: Vec<(String, AttrValue)>| Spanset {
        spans: vec![
            span(1, vec![("service.name".into(), AttrValue::Str("a".into()))]),
            span(2, vec![]),
        ],
        matched: 7,
        attributes: attrs,
    };
    let r = SearchResult {
        traces: vec![
            TraceMatch {
                trace_id: TraceId([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]),
                root_service_name: Some("svc".into()),
                root_trace_name: Some("GET /".into()),
                start_ns: 123,
                duration_ns: 5_000_000,
                spansets: vec![
                    set(vec![]),
                    set(vec![
                        ("k".into(), AttrValue::Int(3)),
                        ("d".into(), AttrValue::Double(0.5)),
                        ("b".into(), AttrValue::Bool(true)),
                    ]),
                ],
            },
            TraceMatch {
                trace_id: TraceId([9; 16]),
                root_service_name: None,
                root_trace_name: None,
                start_ns: 5,
                duration_ns: 10,
                spansets: vec![],
            },
        ],
        inspected_traces: 4,
        inspected_spans: 40,
    };
    let want = serde_json::to_vec(&search_json(&r)).unwrap();
    assert_eq!(
        String::from_utf8(search_body(&r)).unwrap(),
        String::from_utf8(want).unwrap()
    );
    assert_eq!(
        String::from_utf8(search_body(&SearchResult::default())).unwrap(),
        serde_json::to_string(&search_json(&SearchResult::default())).unwrap()
    );
}
