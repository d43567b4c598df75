//! Loki's request parameters: nanosecond / seconds / RFC 3339 times, `since`, `step` and
//! `interval` (float seconds or durations such as `15000ms`), `limit`, `direction`, and the
//! stream selector at the head of a `query`.

use sextant_storage::logs::Direction;
use sextant_storage::Matcher;

use super::super::params::{parse_duration, parse_matcher_sets, Params};

/// Loki's default `limit` for log queries and series/label requests.
pub const DEFAULT_LIMIT: usize = 100;
/// Default lookback when `start` is absent: one hour.
pub const DEFAULT_SINCE_NS: i64 = 3600 * 1_000_000_000;

/// Parses a time as Loki does: with a `.`, float unix seconds; an integer of at most ten
/// digits, unix seconds; a longer integer, nanoseconds; otherwise RFC 3339.
pub fn parse_loki_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.contains('.') {
        if let Ok(f) = s.parse::<f64>() {
            if !f.is_finite() {
                return Err(format!("cannot parse {s:?} to a valid timestamp"));
            }
            let secs = f.trunc();
            let frac = ((f - secs) * 1e9).round();
            return Ok((secs as i64)
                .saturating_mul(1_000_000_000)
                .saturating_add(frac as i64));
        }
    }
    if let Ok(n) = s.parse::<i64>() {
        let digits = s.trim_start_matches('-').len();
        return Ok(if digits <= 10 {
            n.saturating_mul(1_000_000_000)
        } else {
            n
        });
    }
    jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.f%:z", s)
        .or_else(|_| s.parse::<jiff::Timestamp>())
        .ok()
        .and_then(|t| i64::try_from(t.as_nanosecond()).ok())
        .ok_or_else(|| format!("cannot parse {s:?} to a valid timestamp"))
}

/// Float seconds or a duration (`15000ms`, `1m30s`), in nanoseconds.
pub fn parse_step(s: &str) -> Result<i64, String> {
    parse_duration(s.trim()).map_err(|_| format!("cannot parse {s:?} to a valid duration"))
}

/// `start` and `end` of a range request: `end` defaults to `now_ns`; `start` to `end` minus
/// `since` (default one hour).
pub fn range(params: &Params, now_ns: i64) -> Result<(i64, i64), String> {
    let end = match params.get("end") {
        "" => now_ns,
        v => parse_loki_time(v)?,
    };
    let since = match params.get("since") {
        "" => DEFAULT_SINCE_NS,
        v => parse_step(v)?,
    };
    let start = match params.get("start") {
        "" => end.saturating_sub(since),
        v => parse_loki_time(v)?,
    };
    if end < start {
        return Err("end timestamp must not be before or equal to start time".into());
    }
    Ok((start, end))
}

/// `limit`, default [`DEFAULT_LIMIT`]; must be positive.
pub fn limit(params: &Params) -> Result<usize, String> {
    match params.get("limit") {
        "" => Ok(DEFAULT_LIMIT),
        v => match v.trim().parse::<i64>() {
            Ok(n) if n > 0 => Ok(n as usize),
            Ok(_) => Err("limit must be a positive value".into()),
            Err(_) => Err(format!("strconv.Atoi: parsing {v:?}: invalid syntax")),
        },
    }
}

/// `direction`: `forward` or `backward` (default), any case.
pub fn direction(params: &Params) -> Result<Direction, String> {
    match params.get("direction").to_ascii_lowercase().as_str() {
        "" | "backward" => Ok(Direction::Backward),
        "forward" => Ok(Direction::Forward),
        other => Err(format!("invalid direction '{other}'")),
    }
}

/// `step`, or Loki's default for the range: one point per 250 s of range, at least 1 s.
pub fn step(params: &Params, start_ns: i64, end_ns: i64) -> Result<i64, String> {
    match params.get("step") {
        "" => {
            let secs = ((end_ns - start_ns) / 1_000_000_000 / 250).max(1);
            Ok(secs * 1_000_000_000)
        }
        v => {
            let ns = parse_step(v)?;
            if ns <= 0 {
                return Err(
                    "zero or negative query resolution step widths are not accepted. Try a positive integer"
                        .into(),
                );
            }
            Ok(ns)
        }
    }
}

/// `interval` for log queries (0 when absent).
pub fn interval(params: &Params) -> Result<i64, String> {
    match params.get("interval") {
        "" => Ok(0),
        v => parse_step(v),
    }
}

/// The matchers of the stream selector a query starts with (`{a="b"} |= "x"` → `a="b"`);
/// pipelines and metric wrappers around the first selector are ignored, as Loki's index
/// endpoints do.
pub fn selector_matchers(query: &str) -> Result<Vec<Matcher>, String> {
    let bytes = query.as_bytes();
    let open = query
        .find('{')
        .ok_or_else(|| format!("parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will: {query}"))?;
    let mut i = open + 1;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == b'\\' && q == b'"' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'`' => quote = Some(b),
            None if b == b'}' => break,
            None => {}
        }
        i += 1;
    }
    if i >= bytes.len() {
        return Err(format!(
            "parse error : unclosed stream selector in {query:?}"
        ));
    }
    let selector = &query[open..=i];
    let mut sets = parse_matcher_sets(&[selector]).map_err(|e| match e {
        super::super::params::ParamError::EmptyMatchers => "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will".to_string(),
        other => format!("parse error : {other}"),
    })?;
    Ok(sets.pop().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::from_parts(None, Some(q))
    }

    #[test]
    fn times_in_every_loki_form() {
        assert_eq!(
            parse_loki_time("1714557600").unwrap(),
            1_714_557_600_000_000_000
        );
        assert_eq!(
            parse_loki_time("1714557600123456789").unwrap(),
            1_714_557_600_123_456_789
        );
        assert_eq!(
            parse_loki_time("1714557600.5").unwrap(),
            1_714_557_600_500_000_000
        );
        assert_eq!(
            parse_loki_time("2024-05-01T10:00:00.25Z").unwrap(),
            1_714_557_600_250_000_000
        );
        assert_eq!(
            parse_loki_time("2024-05-01T12:00:00+02:00").unwrap(),
            1_714_557_600_000_000_000
        );
        assert!(parse_loki_time("yesterday").is_err());
    }

    #[test]
    fn steps_as_grafana_sends_them() {
        assert_eq!(parse_step("15000ms").unwrap(), 15_000_000_000);
        assert_eq!(parse_step("2").unwrap(), 2_000_000_000);
        assert_eq!(parse_step("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_step("1m30s").unwrap(), 90_000_000_000);
        assert!(parse_step("fast").is_err());
        let p = params("step=0");
        assert!(step(&p, 0, 10).unwrap_err().starts_with("zero or negative"));
        // Default: range / 250 s, at least one second.
        assert_eq!(
            step(&params(""), 0, 3600 * 1_000_000_000).unwrap(),
            14_000_000_000
        );
        assert_eq!(step(&params(""), 0, 1_000_000_000).unwrap(), 1_000_000_000);
    }

    #[test]
    fn range_defaults_and_errors() {
        let now = 10_000 * 1_000_000_000;
        assert_eq!(
            range(&params(""), now).unwrap(),
            (now - DEFAULT_SINCE_NS, now)
        );
        assert_eq!(
            range(&params("since=10s"), now).unwrap(),
            (now - 10_000_000_000, now)
        );
        assert!(range(&params("start=20&end=10"), now).is_err());
        assert_eq!(limit(&params("")).unwrap(), 100);
        assert_eq!(
            limit(&params("limit=0")).unwrap_err(),
            "limit must be a positive value"
        );
        assert_eq!(
            direction(&params("direction=FORWARD")).unwrap(),
            Direction::Forward
        );
        assert!(direction(&params("direction=up")).is_err());
    }

    #[test]
    fn selector_of_a_query_with_pipeline_and_metric_wrapper() {
        let m =
            selector_matchers(r#"sum(count_over_time({job="a", x=~"b}"} |= "}" [1m]))"#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "job");
        assert_eq!(m[1].name, "x");
        assert!(selector_matchers("vector(1)").is_err());
        assert!(selector_matchers(r#"{job=~".*"}"#).is_err());
    }
}
