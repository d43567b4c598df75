//! `/api/v1/targets` and `/api/v1/targets/metadata`, shaped as Prometheus answers them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sextant_storage::{MatchOp, Matcher};

use super::config::format_duration;
use super::ScrapeManager;

/// The targets API routes.
pub fn router(manager: Arc<ScrapeManager>) -> Router {
    Router::new()
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/metadata", get(targets_metadata))
        .with_state(manager)
}

fn error(status: StatusCode, kind: &str, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"status": "error", "errorType": kind, "error": msg.into()})),
    )
        .into_response()
}

fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

async fn targets(
    State(manager): State<Arc<ScrapeManager>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let param = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let state = param("state").unwrap_or("").to_ascii_lowercase();
    let show_active = state.is_empty() || state == "any" || state == "active";
    let show_dropped = state.is_empty() || state == "any" || state == "dropped";
    let pool_filter = param("scrapePool").filter(|p| !p.is_empty());
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    let mut dropped_counts = serde_json::Map::new();
    let mut pools: Vec<_> = manager.pools().iter().collect();
    pools.sort_by(|a, b| a.job.name.cmp(&b.job.name));
    for pool in pools {
        if pool_filter.is_some_and(|p| p != pool.job.name) {
            continue;
        }
        if show_active {
            for t in pool.active_targets() {
                let s = t.status();
                active.push(json!({
                    "discoveredLabels": t.discovered,
                    "labels": t.labels,
                    "scrapePool": pool.job.name,
                    "scrapeUrl": t.url,
                    "globalUrl": t.url,
                    "lastError": s.last_error,
                    "lastScrape": s.last_scrape.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                    "lastScrapeDuration": s.last_duration,
                    "health": match s.up { None => "unknown", Some(true) => "up", Some(false) => "down" },
                    "scrapeInterval": format_duration(t.interval),
                    "scrapeTimeout": format_duration(t.timeout),
                }));
            }
        }
        if show_dropped {
            let d = pool.dropped_targets();
            dropped_counts.insert(pool.job.name.clone(), json!(d.len()));
            for labels in d {
                dropped.push(json!({
                    "discoveredLabels": labels,
                    "scrapePool": pool.job.name,
                }));
            }
        }
    }
    let mut data = json!({
        "activeTargets": active,
        "droppedTargets": dropped,
    });
    if show_dropped {
        data["droppedTargetCounts"] = Value::Object(dropped_counts);
    }
    success(data)
}

async fn targets_metadata(
    State(manager): State<Arc<ScrapeManager>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let param = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let limit = match param("limit") {
        None | Some("") => None,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    "limit must be a number",
                )
            }
        },
    };
    let matchers = match param("match_target") {
        None | Some("") => Vec::new(),
        Some(m) => match parse_selector(m) {
            Ok(ms) => ms,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_data", e),
        },
    };
    let metric = param("metric").filter(|m| !m.is_empty());
    let mut out = Vec::new();
    'pools: for pool in manager.pools() {
        for t in pool.active_targets() {
            let matched = matchers
                .iter()
                .all(|m| m.matches(t.labels.get(&m.name).map(String::as_str).unwrap_or("")));
            if !matched {
                continue;
            }
            for (name, m) in t.metadata() {
                if metric.is_some_and(|want| want != name) {
                    continue;
                }
                if limit.is_some_and(|l| out.len() >= l) {
                    break 'pools;
                }
                out.push(json!({
                    "target": t.labels,
                    "metric": name,
                    "type": if m.metric_type.is_empty() { "unknown" } else { m.metric_type.as_str() },
                    "help": m.help,
                    "unit": m.unit,
                }));
            }
        }
    }
    if out.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "specified metadata not found",
        );
    }
    success(Value::Array(out))
}

/// Parses a label selector `{name op "value", …}` (no metric name outside the braces).
fn parse_selector(s: &str) -> Result<Vec<Matcher>, String> {
    let bad = || format!("invalid match_target {s:?}");
    let inner = s
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut out = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if name_end == 0 {
            return Err(bad());
        }
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        let (op, len) = if rest.starts_with("=~") {
            (MatchOp::Regex, 2)
        } else if rest.starts_with("!~") {
            (MatchOp::NotRegex, 2)
        } else if rest.starts_with("!=") {
            (MatchOp::NotEqual, 2)
        } else if rest.starts_with('=') {
            (MatchOp::Equal, 1)
        } else {
            return Err(bad());
        };
        rest = rest[len..].trim_start();
        let quote = rest
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(bad)?;
        rest = &rest[1..];
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, e)) => value.push(e),
                    None => return Err(bad()),
                },
                c if c == quote => {
                    end = Some(i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(bad)?;
        out.push(Matcher::new(op, name, value).map_err(|e| e.to_string())?);
        rest = rest[end..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(bad());
        }
    }
    Ok(out)
}

/// RFC 3339 with nanoseconds in UTC, trailing zeros trimmed (Go's `RFC3339Nano`).
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let nanos = d.subsec_nanos();
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn selectors() {
        let ms = parse_selector(r#"{job="node", instance=~"a.*",x!="y"}"#).unwrap();
        assert_eq!(ms.len(), 3);
        assert!(ms[1].matches("abc") && !ms[1].matches("bab"));
        assert!(parse_selector("{job=node}").is_err());
        assert!(parse_selector("job=\"x\"").is_err());
        assert!(parse_selector("{}").unwrap().is_empty());
    }
}
