//! OTLP names → Prometheus names, after the OpenTelemetry "Prometheus and OpenMetrics
//! compatibility" specification: metric names get unit and type suffixes, attribute names
//! are sanitised to `[a-zA-Z_][a-zA-Z0-9_]*`.

use std::borrow::Cow;

/// How OTLP metric and attribute names become Prometheus names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameTranslation {
    /// Invalid characters become `_`, unit and type suffixes are added (`_seconds`,
    /// `_total`, `_ratio`, …). Prometheus' `UnderscoreEscapingWithSuffixes`.
    #[default]
    UnderscoreEscapingWithSuffixes,
    /// Names are kept as sent (UTF-8), without suffixes. Prometheus' `NoTranslation`.
    NoTranslation,
}

/// The Prometheus kind a metric translates to, as far as naming cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Counter,
    Gauge,
    Other,
}

/// The metric name suffix for an OTLP main unit (UCUM), if it has a well-known one.
fn main_unit(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        "1" => "",
        _ => return None,
    })
}

/// The suffix for the denominator of a `x/y` unit.
fn per_unit(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// Characters of a unit that cannot appear in a metric name become `_`, then leading and
/// trailing `_` go.
fn clean_unit(unit: &str) -> String {
    let replaced: String = unit
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    replaced.trim_matches('_').to_string()
}

/// The unit suffix words for an OTLP unit: the main unit (e.g. `seconds`) and the per-unit
/// (e.g. `per_second`). Annotations in braces (`{requests}`) produce nothing.
pub fn unit_words(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let per = parts.next().unwrap_or("").trim();
    let word = |u: &str, map: fn(&str) -> Option<&'static str>| -> String {
        if u.is_empty() || u.contains(['{', '}']) {
            return String::new();
        }
        clean_unit(map(u).unwrap_or(u))
    };
    let main_word = word(main, main_unit);
    let per_word = word(per, per_unit);
    let per_word = if per_word.is_empty() {
        per_word
    } else {
        format!("per_{per_word}")
    };
    (main_word, per_word)
}

/// The Prometheus metric name for an OTLP metric.
pub fn metric_name<'a>(
    name: &'a str,
    unit: &str,
    kind: NameKind,
    mode: NameTranslation,
) -> Cow<'a, str> {
    if mode == NameTranslation::NoTranslation {
        return Cow::Borrowed(name);
    }
    // Split on every character that cannot appear in a metric name (`_` included, which
    // collapses runs of underscores), then append the unit and type words not yet present.
    let mut tokens: Vec<&str> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .collect();
    let (main, per) = unit_words(unit);
    let mut extra: Vec<&str> = Vec::new();
    if !main.is_empty() && !tokens.contains(&main.as_str()) {
        extra.push(&main);
    }
    if !per.is_empty() {
        let per_tail = per.trim_start_matches("per_");
        let already = tokens.windows(2).any(|w| w[0] == "per" && w[1] == per_tail);
        if !already {
            extra.push(&per);
        }
    }
    tokens.extend(extra);
    match kind {
        NameKind::Counter => {
            tokens.retain(|t| *t != "total");
            tokens.push("total");
        }
        NameKind::Gauge if unit == "1" => {
            tokens.retain(|t| *t != "ratio");
            tokens.push("ratio");
        }
        _ => {}
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    Cow::Owned(out)
}

/// True when `name` is a valid legacy label name already.
fn is_plain_label(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() => {}
        // `_x` is rewritten to `key_x`, `__x` is kept.
        Some(b'_') => return name.starts_with("__") && name.bytes().all(is_label_byte),
        _ => return false,
    }
    bytes.all(is_label_byte)
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// True when [`label_name`] would change `key`.
pub fn needs_translation(key: &str, mode: NameTranslation) -> bool {
    !(mode == NameTranslation::NoTranslation || key.is_empty() || is_plain_label(key))
}

/// The Prometheus label name for an OTLP attribute key: invalid characters become `_`, a
/// leading digit gets a `key_` prefix and a single leading `_` a `key` prefix.
pub fn label_name(key: &str, mode: NameTranslation) -> Cow<'_, str> {
    if !needs_translation(key, mode) {
        return Cow::Borrowed(key);
    }
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    Cow::Owned(out)
}

/// Formats a bucket bound or quantile as Prometheus does for `le` and `quantile`.
pub fn format_float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NameKind::*;
    use NameTranslation::*;

    fn name(n: &str, unit: &str, kind: NameKind) -> String {
        metric_name(n, unit, kind, UnderscoreEscapingWithSuffixes).into_owned()
    }

    #[test]
    fn suffixes_follow_the_spec() {
        assert_eq!(
            name("http.server.duration", "s", Other),
            "http_server_duration_seconds"
        );
        assert_eq!(name("requests", "{request}", Counter), "requests_total");
        assert_eq!(
            name("system.network.io", "By", Counter),
            "system_network_io_bytes_total"
        );
        assert_eq!(name("cpu.utilization", "1", Gauge), "cpu_utilization_ratio");
        assert_eq!(name("hits_total", "1", Counter), "hits_total");
        assert_eq!(
            name("throughput", "By/s", Gauge),
            "throughput_bytes_per_second"
        );
        assert_eq!(name("latency_seconds", "s", Gauge), "latency_seconds");
        assert_eq!(name("foo__bar", "", Gauge), "foo_bar");
        assert_eq!(name("2xx.count", "", Gauge), "_2xx_count");
        assert_eq!(name("total.requests", "", Counter), "requests_total");
        assert_eq!(name("temp", "Cel", Gauge), "temp_celsius");
        assert_eq!(name("weird", "m/s2", Gauge), "weird_meters_per_s2");
        assert_eq!(
            metric_name("a.b/c", "s", Counter, NoTranslation),
            "a.b/c".to_string()
        );
    }

    #[test]
    fn label_names_are_sanitised() {
        let l = |k| label_name(k, UnderscoreEscapingWithSuffixes).into_owned();
        assert_eq!(l("http.method"), "http_method");
        assert_eq!(l("already_ok"), "already_ok");
        assert_eq!(l("0abc"), "key_0abc");
        assert_eq!(l("_private"), "key_private");
        assert_eq!(l("__reserved"), "__reserved");
        assert_eq!(l("ünï"), "key_n_");
        assert_eq!(label_name("a.b", NoTranslation), "a.b");
    }

    #[test]
    fn floats_format_like_prometheus() {
        assert_eq!(format_float(0.5), "0.5");
        assert_eq!(format_float(1000.0), "1000");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(1e-9), "0.000000001");
    }
}
