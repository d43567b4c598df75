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
