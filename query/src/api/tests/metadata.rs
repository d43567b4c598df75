//! `series`, `labels`, `label/<name>/values` and `metadata`.

use axum::http::StatusCode;

use super::{enc, error_body, get, post, success};

const ALL_LABELS: &str = r#"["__name__","code","foo.bar","instance","job"]"#;

#[tokio::test]
async fn labels_without_matchers() {
    let (status, body) = get("/api/v1/labels").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, success(ALL_LABELS));
    let (status, body) = post("/api/v1/labels", "").await;
    assert_eq!((status, body), (StatusCode::OK, success(ALL_LABELS)));
}

#[tokio::test]
async fn labels_limit_truncates_with_warning() {
    let (status, body) = get("/api/v1/labels?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"status":"success","data":["__name__","code"],"warnings":["results truncated due to limit"]}"#
    );
    // A limit that cuts nothing adds no warning.
    let (_, body) = get("/api/v1/labels?limit=5").await;
    assert_eq!(body, success(ALL_LABELS));
    let (status, body) = get("/api/v1/labels?limit=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        error_body(
            "bad_data",
            r#"invalid parameter "limit": limit must be non-negative"#
        )
    );
    let (_, body) = get("/api/v1/labels?limit=ten").await;
    assert_eq!(
        body,
        error_body(
            "bad_data",
            r#"invalid parameter "limit": strconv.Atoi: parsing "ten": invalid syntax"#
        )
    );
}

#[tokio::test]
async fn labels_time_range() {
    // Every series has samples from 0 to 60s; a window after that is empty.
    let (_, body) = get("/api/v1/labels?start=61&end=100").await;
    assert_eq!(body, success("[]"));
    let (_, body) =
        get("/api/v1/labels?start=1970-01-01T00:00:30Z&end=1970-01-01T00:00:31.5Z").await;
    assert_eq!(body, success(ALL_LABELS));
    let (status, body) = get("/api/v1/labels?start=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        error_body(
            "bad_data",
            r#"invalid parameter "start": Invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#
        )
    );
}

#[tokio::test]
async fn label_values() {
    let (status, body) = get("/api/v1/label/job/values").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, success(r#"["api","node"]"#))
    );
    let (_, body) = post("/api/v1/label/instance/values", "limit=1").await;
    assert_eq!(
        body,
        r#"{"status":"success","data":["a"],"warnings":["results truncated due to limit"]}"#
    );
    let (_, body) = get("/api/v1/label/nonexistent/values").await;
    assert_eq!(body, success("[]"));
}

#[tokio::test]
async fn label_values_utf8_escaping() {
    let (status, body) = get("/api/v1/label/U__foo_2e_bar/values").await;
    assert_eq!((status, body), (StatusCode::OK, success(r#"["x"]"#)));
    // Percent-encoded raw names work too.
    let (_, body) = get("/api/v1/label/foo.bar/values").await;
    assert_eq!(body, success(r#"["x"]"#));
    let (_, body) = get("/api/v1/label/U______name____/values").await;
    assert_eq!(body, success(r#"["dotted","http_requests_total","up"]"#));
    for bad in ["U__foo_zz_bar", "U__foo_2e", "U__a_110000_"] {
        let (status, body) = get(&format!("/api/v1/label/{bad}/values")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            body,
            error_body("bad_data", &format!("invalid label name: \"{bad}\"")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn series_requires_match() {
    for (status, body) in [
        get("/api/v1/series").await,
        post("/api/v1/series", "").await,
    ] {
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            error_body("bad_data", "no match[] parameter provided")
        );
    }
}

#[tokio::test]
async fn series_rejects_bad_selectors() {
    for sel in ["up{", "{job=~\".*\"}", "sum(up)"] {
        let (status, body) = get(&format!("/api/v1/series?match[]={}", enc(sel))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sel}");
        assert!(
            body.starts_with(r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"match[]\": "#),
            "{sel}: {body}"
        );
    }
}

// Needs the PromQL parser for `match[]`.
#[tokio::test]
async fn series_by_selector() {
    let (status, body) = get(&format!(
        "/api/v1/series?match[]={}",
        enc("up{job=\"api\"}")
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        success(
            r#"[{"__name__":"up","instance":"a","job":"api"},{"__name__":"up","instance":"b","job":"api"}]"#
        )
    );
    // Selectors from the body and the query string are unioned, duplicates removed.
    let (_, body) = post(
        &format!("/api/v1/series?match[]={}", enc("up{instance=\"c\"}")),
        &format!(
            "match[]={}&match[]={}",
            enc("http_requests_total"),
            enc("up{instance=\"c\"}")
        ),
    )
    .await;
    assert_eq!(
        body,
        success(
            r#"[{"__name__":"http_requests_total","code":"200","job":"api"},{"__name__":"up","instance":"c","job":"node"}]"#
        )
    );
    let (_, body) = get(&format!("/api/v1/series?limit=1&match[]={}", enc("up"))).await;
    assert_eq!(
        body,
        r#"{"status":"success","data":[{"__name__":"up","instance":"a","job":"api"}],"warnings":["results truncated due to limit"]}"#
    );
    let (_, body) = get(&format!("/api/v1/series?start=100&match[]={}", enc("up"))).await;
    assert_eq!(body, success("[]"));
}

// Needs the PromQL parser for `match[]`.
#[tokio::test]
async fn labels_and_values_by_selector() {
    let (_, body) = get(&format!(
        "/api/v1/labels?match[]={}",
        enc("http_requests_total")
    ))
    .await;
    assert_eq!(body, success(r#"["__name__","code","job"]"#));
    let (_, body) = get(&format!(
        "/api/v1/label/job/values?match[]={}&match[]={}",
        enc("up{instance=\"c\"}"),
        enc("http_requests_total")
    ))
    .await;
    assert_eq!(body, success(r#"["api","node"]"#));
    let (status, body) = get(&format!("/api/v1/labels?match[]={}", enc("{job=\"\"}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        error_body(
            "bad_data",
            "1:1: parse error: vector selector must contain at least one non-empty matcher"
        )
    );
}

#[tokio::test]
async fn metadata() {
    let all = r#"{"http_requests_total":[{"type":"counter","help":"Requests \u003cserved\u003e.","unit":"requests"}],"up":[{"type":"gauge","help":"Whether the target is up.","unit":""}]}"#;
    let (status, body) = get("/api/v1/metadata").await;
    assert_eq!((status, body), (StatusCode::OK, success(all)));
    let (_, body) = get("/api/v1/metadata?metric=up&limit_per_metric=1").await;
    assert_eq!(
        body,
        success(r#"{"up":[{"type":"gauge","help":"Whether the target is up.","unit":""}]}"#)
    );
    let (_, body) = get("/api/v1/metadata?limit=0").await;
    assert_eq!(body, success("{}"));
    let (_, body) = post("/api/v1/metadata", "limit=1").await;
    assert!(body.starts_with(r#"{"status":"success","data":{"http_requests_total":"#));
    let (status, body) = get("/api/v1/metadata?limit=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, error_body("bad_data", "limit must be a number"));
    let (_, body) = get("/api/v1/metadata?limit_per_metric=x").await;
    assert_eq!(
        body,
        error_body("bad_data", "limit_per_metric must be a number")
    );
}
