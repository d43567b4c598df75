//! Rule unit tests in promtool's format (`promtool test rules`): test files list rule files,
//! input series in the expanding notation, and expected alerts (`alert_rule_test`) and query
//! results (`promql_expr_test`) at given times.
//!
//! Each test group gets its own in-memory [`Db`] loaded with its input series; the groups of
//! the rule files are evaluated with the ruler's [`GroupEvaluator`] from the start time up to
//! the last `eval_time`, every `evaluation_interval`. Firing alerts are compared after the
//! evaluation at or just before each alert test's `eval_time` (as promtool does); PromQL
//! expectations are queried after the whole run. Output and exit status follow promtool.

mod series;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sextant_query::promql::{parse, Engine, EngineOptions, Value};
use sextant_storage::{Db, FloatHistogram, HistogramSample, Labels, Sample};

use self::series::{expand_values, histogram_notation, parse_series, SeqValue};
use super::eval::{AlertState, EvalOptions, GroupEvaluator};
use super::file::{load_rule_files_with, parse_duration, RuleFileOptions};
use super::model::RuleGroup;
use crate::template::value::go_duration_string;

/// Command-line switches of `test rules`.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run only test groups whose name matches one of these regular expressions (unanchored).
    pub run: Vec<String>,
    /// Ignore unknown fields in the rule files.
    pub ignore_unknown_fields: bool,
}

/// A whole test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default, deserialize_with = "opt_scalar")]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "opt_scalar")]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default, deserialize_with = "opt_scalar")]
    start_timestamp: Option<String>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<PromqlTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(deserialize_with = "scalar")]
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default = "zero", deserialize_with = "scalar")]
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTest {
    expr: String,
    #[serde(default = "zero", deserialize_with = "scalar")]
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default, deserialize_with = "opt_scalar")]
    labels: Option<String>,
    #[serde(default)]
    value: f64,
    #[serde(default)]
    histogram: Option<String>,
}

/// Accepts any YAML scalar as its text as written (`values: 0x10` stays `0x10`, as Go's
/// YAML decoder keeps it for string fields).
fn scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(ScalarText)
}

fn opt_scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_str(ScalarText).map(Some)
}

/// The default `eval_time`.
fn zero() -> String {
    "0".into()
}

/// Visitor taking the text of any scalar.
struct ScalarText;

impl serde::de::Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Runs every test file, printing promtool's report to `out` (progress) and `err`
/// (failures). Returns whether all passed.
pub fn run_files(
    paths: &[PathBuf],
    opts: &RunOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> bool {
    let mut ok = true;
    let filters: Result<Vec<regex::Regex>, _> =
        opts.run.iter().map(|r| regex::Regex::new(r)).collect();
    let filters = match filters {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "invalid --run expression: {e}");
            return false;
        }
    };
    for p in paths {
        let _ = writeln!(out, "Unit Testing:  {}", p.display());
        let errors = run_file(p, opts, &filters);
        if errors.is_empty() {
            let _ = writeln!(out, "  SUCCESS");
        } else {
            ok = false;
            let _ = writeln!(err, "  FAILED:");
            for e in errors {
                let _ = writeln!(err, "{e}");
            }
        }
        let _ = writeln!(out);
    }
    ok
}

/// Runs one test file; returns the failure messages (empty when everything passed).
pub fn run_file(path: &Path, opts: &RunOptions, filters: &[regex::Regex]) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("  open {}: {e}", path.display())],
    };
    let file: TestFile = match serde_yaml::from_str(&text) {
        Ok(f) => f,
        Err(e) => return vec![format!("  {e}")],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let eval_interval = match file.evaluation_interval.as_deref() {
        None => Duration::from_secs(60),
        Some(s) => match parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => return vec!["  evaluation_interval must be positive".into()],
            Err(e) => return vec![format!("  evaluation_interval: {e}")],
        },
    };
    let rule_paths: Vec<PathBuf> = file
        .rule_files
        .iter()
        .flat_map(|f| resolve_rule_files(base, f))
        .collect();
    let rule_opts = RuleFileOptions {
        ignore_unknown_fields: opts.ignore_unknown_fields,
        ..Default::default()
    };
    let groups = match load_rule_files_with(&rule_paths, &rule_opts) {
        Ok(g) => g,
        Err(errs) => return errs.iter().map(|e| format!("  {e}")).collect(),
    };
    let groups = match order_groups(groups, &file.group_eval_order) {
        Ok(g) => g,
        Err(e) => return vec![format!("  {e}")],
    };
    let mut errors = Vec::new();
    for tg in &file.tests {
        if !filters.is_empty() && !filters.iter().any(|r| r.is_match(&tg.name)) {
            continue;
        }
        let cx = GroupRun {
            tg,
            groups: &groups,
            eval_interval,
            fuzzy: file.fuzzy_compare,
        };
        let errs = cx.run();
        if !errs.is_empty() {
            errors.extend(errs);
        }
    }
    errors
}

/// A rule file entry relative to the test file; `*` globs in the file name are expanded.
fn resolve_rule_files(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let p = base.join(pattern);
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains('*') {
        return vec![p];
    }
    let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Orders groups as `group_eval_order` says (every group must be listed when it is given).
fn order_groups(groups: Vec<RuleGroup>, order: &[String]) -> Result<Vec<RuleGroup>, String> {
    if order.is_empty() {
        return Ok(groups);
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut rest = groups;
    for name in order {
        match rest.iter().position(|g| &g.name == name) {
            Some(i) => out.push(rest.remove(i)),
            None => {
                return Err(format!(
                    "group name provided in group_eval_order not present in rule files: {name}"
                ))
            }
        }
    }
    if !rest.is_empty() {
        let names: Vec<&str> = rest.iter().map(|g| g.name.as_str()).collect();
        return Err(format!(
            "one or more groups are missing from group_eval_order: {}",
            names.join(", ")
        ));
    }
    Ok(out)
}

/// One test group's run.
struct GroupRun<'a> {
    tg: &'a TestGroup,
    groups: &'a [RuleGroup],
    eval_interval: Duration,
    fuzzy: bool,
}

/// An alert as compared: labels and annotations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LabelsAndAnnotations {
    labels: Labels,
    annotations: Labels,
}

impl GroupRun<'_> {
    fn run(&self) -> Vec<String> {
        let name_prefix = if self.tg.name.is_empty() {
            String::new()
        } else {
            format!("    name: {},\n", self.tg.name)
        };
        let prefixed = |v: Vec<String>| -> Vec<String> {
            v.into_iter().map(|e| format!("{name_prefix}{e}")).collect()
        };
        let interval = match self.tg.interval.as_deref() {
            None => self.eval_interval,
            Some(s) => match parse_duration(s) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return prefixed(vec!["    interval must be positive".into()]),
                Err(e) => return prefixed(vec![format!("    interval: {e}")]),
            },
        };
        let start_ms = match self.tg.start_timestamp.as_deref() {
            None => 0,
            Some(s) => match parse_start(s) {
                Ok(t) => t,
                Err(e) => return prefixed(vec![format!("    start_timestamp: {e}")]),
            },
        };
        let db = Db::in_memory();
        if let Err(e) = load_series(&db, &self.tg.input_series, start_ms, interval) {
            return prefixed(vec![format!("    {e}")]);
        }
        let opts = EvalOptions {
            external_labels: self.tg.external_labels.clone(),
            external_url: self.tg.external_url.clone(),
            default_interval: self.eval_interval,
            ..Default::default()
        };
        let mut evaluators = Vec::new();
        for g in self.groups {
            match GroupEvaluator::new(g.clone(), opts.clone()) {
                Ok(e) => evaluators.push(e),
                Err(e) => return prefixed(vec![format!("    {e}")]),
            }
        }
        let engine = Engine::new(EngineOptions::default());

        // Alert tests by eval time.
        let mut alert_tests: Vec<(i64, &AlertTest)> = Vec::new();
        let mut errors = Vec::new();
        for at in &self.tg.alert_rule_test {
            match parse_duration(&at.eval_time) {
                Ok(d) => alert_tests.push((d.as_millis() as i64, at)),
                Err(e) => errors.push(format!("    alertname: {}, {e}", at.alertname)),
            }
        }
        alert_tests.sort_by_key(|(t, _)| *t);
        let mut max_t = alert_tests.last().map(|(t, _)| *t).unwrap_or(0);
        let mut promql_tests = Vec::new();
        for pt in &self.tg.promql_expr_test {
            match parse_duration(&pt.eval_time) {
                Ok(d) => {
                    let t = d.as_millis() as i64;
                    max_t = max_t.max(t);
                    promql_tests.push((t, pt));
                }
                Err(e) => errors.push(format!("    expr: {:?}, {e}", pt.expr)),
            }
        }
        if !errors.is_empty() {
            return prefixed(errors);
        }

        let step = self.eval_interval.as_millis() as i64;
        let mut next_alert = 0usize;
        let mut rel = 0i64;
        while rel <= max_t {
            let ts = start_ms + rel;
            let mut eval_errs = Vec::new();
            for ev in &mut evaluators {
                ev.evaluate(&engine, &db, ts);
                for r in ev.rule_states() {
                    if let Some(e) = &r.last_error {
                        let name = match &r.kind {
                            super::model::RuleKind::Record(n)
                            | super::model::RuleKind::Alert(n) => n,
                        };
                        eval_errs.push(format!(
                            "    rule: {name}, time: {}, err: {e}",
                            go_duration_string(ts.saturating_mul(1_000_000))
                        ));
                    }
                }
            }
            if !eval_errs.is_empty() {
                return prefixed(eval_errs);
            }
            // Alert tests with rel <= eval_time < rel + step are checked against this state.
            while next_alert < alert_tests.len()
                && alert_tests[next_alert].0 >= rel
                && alert_tests[next_alert].0 < rel + step
            {
                let (t, at) = alert_tests[next_alert];
                if let Some(e) = self.check_alerts(&evaluators, t, at) {
                    errors.push(e);
                }
                next_alert += 1;
            }
            rel += step;
        }
        for (t, pt) in promql_tests {
            if let Some(e) = self.check_promql(&engine, &db, start_ms, t, pt) {
                errors.push(e);
            }
        }
        prefixed(errors)
    }

    fn check_alerts(&self, evs: &[GroupEvaluator], t: i64, at: &AlertTest) -> Option<String> {
        let mut got: Vec<LabelsAndAnnotations> = evs
            .iter()
            .flat_map(|e| e.active_alerts())
            .filter(|a| a.state == AlertState::Firing)
            .filter(|a| a.labels.get("alertname") == Some(&at.alertname))
            .map(|a| LabelsAndAnnotations {
                labels: Labels::from_pairs(a.labels),
                annotations: Labels::from_pairs(a.annotations),
            })
            .collect();
        let mut exp: Vec<LabelsAndAnnotations> = at
            .exp_alerts
            .iter()
            .map(|e| {
                let mut l = e.exp_labels.clone();
                l.insert("alertname".into(), at.alertname.clone());
                LabelsAndAnnotations {
                    labels: Labels::from_pairs(l),
                    annotations: Labels::from_pairs(e.exp_annotations.clone()),
                }
            })
            .collect();
        got.sort();
        exp.sort();
        if got == exp {
            return None;
        }
        Some(format!(
            "    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
            at.alertname,
            go_duration_string(t.saturating_mul(1_000_000)),
            indent(&alerts_string(&exp), "            "),
            indent(&alerts_string(&got), "            ")
        ))
    }

    fn check_promql(
        &self,
        engine: &Engine,
        db: &Db,
        start_ms: i64,
        t: i64,
        pt: &PromqlTest,
    ) -> Option<String> {
        let when = go_duration_string(t.saturating_mul(1_000_000));
        let fail = |e: String| Some(format!("    expr: {:?}, time: {when}, err: {e}", pt.expr));
        let expr = match parse(&pt.expr) {
            Ok(e) => e,
            Err(e) => return fail(e.to_string()),
        };
        let res = match engine.instant_query(db, &pt.expr, &expr, start_ms + t) {
            Ok(r) => r,
            Err(e) => return fail(e.to_string()),
        };
        let mut got: Vec<ParsedSample> = match res.value {
            Value::Vector(v) => v
                .into_iter()
                .map(|s| ParsedSample {
                    labels: s.labels,
                    value: s.v,
                    histogram: s.h,
                })
                .collect(),
            Value::Scalar(_, v) => vec![ParsedSample {
                labels: Labels::empty(),
                value: v,
                histogram: None,
            }],
            Value::String(..) | Value::Matrix(_) => {
                return fail("expression must evaluate to a vector or a scalar".into())
            }
        };
        let mut exp = Vec::with_capacity(pt.exp_samples.len());
        for s in &pt.exp_samples {
            let labels = match s.labels.as_deref() {
                None | Some("") | Some("{}") => Labels::empty(),
                Some(l) => match parse_series(l) {
                    Ok(l) => l,
                    Err(e) => return fail(format!("parsing labels {l:?}: {e}")),
                },
            };
            let histogram = match &s.histogram {
                None => None,
                Some(h) => match histogram_notation::parse_histogram(h) {
                    Ok(h) => Some(h),
                    Err(e) => return fail(format!("parsing histogram {h:?}: {e}")),
                },
            };
            exp.push(ParsedSample {
                labels,
                value: s.value,
                histogram,
            });
        }
        got.sort_by(|a, b| a.labels.cmp(&b.labels));
        exp.sort_by(|a, b| a.labels.cmp(&b.labels));
        let same = got.len() == exp.len()
            && got.iter().zip(&exp).all(|(g, e)| {
                g.labels == e.labels
                    && match (&e.histogram, &g.histogram) {
                        (Some(eh), Some(gh)) => histogram_notation::histograms_match(eh, gh),
                        (None, None) => floats_equal(e.value, g.value, self.fuzzy),
                        _ => false,
                    }
            });
        if same {
            return None;
        }
        Some(format!(
            "    expr: {:?}, time: {when},\n        exp: {}\n        got: {}",
            pt.expr,
            samples_string(&exp),
            samples_string(&got)
        ))
    }
}

/// An expected or returned sample.
struct ParsedSample {
    labels: Labels,
    value: f64,
    histogram: Option<FloatHistogram>,
}

/// Exact float comparison (NaN equals NaN); with `fuzzy`, one ULP either way is accepted.
fn floats_equal(exp: f64, got: f64, fuzzy: bool) -> bool {
    if exp.is_nan() && got.is_nan() {
        return true;
    }
    if exp == got {
        return true;
    }
    fuzzy && (next_toward(exp, f64::NEG_INFINITY) == got || next_toward(exp, f64::INFINITY) == got)
}

/// The next float after `x` toward `dir` (Go's `math.Nextafter` for finite `x`).
fn next_toward(x: f64, dir: f64) -> f64 {
    if x.is_nan() || x == dir {
        return x;
    }
    if x == 0.0 {
        let tiny = f64::from_bits(1);
        return if dir > 0.0 { tiny } else { -tiny };
    }
    let bits = x.to_bits();
    let up = (dir > x) == (x > 0.0);
    f64::from_bits(if up { bits + 1 } else { bits - 1 })
}

fn samples_string(s: &[ParsedSample]) -> String {
    if s.is_empty() {
        return "nil".into();
    }
    s.iter()
        .map(|x| match &x.histogram {
            Some(h) => format!("{} {}", x.labels, h.test_expression()),
            None => format!("{} {}", x.labels, go_float_upper_e(x.value)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: `1E+00`, `6.5E-01`.
fn go_float_upper_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:E}");
    match s.split_once('E') {
        Some((m, e)) => {
            let e: i32 = e.parse().unwrap_or(0);
            format!("{m}E{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        None => s,
    }
}

fn alerts_string(a: &[LabelsAndAnnotations]) -> String {
    if a.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[");
    for (i, x) in a.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let body = format!(
            "\nLabels:{}\nAnnotations:{}",
            braces(&x.labels),
            braces(&x.annotations)
        );
        let _ = write!(s, "\n{i}:{}", indent(&body, "  "));
    }
    s.push_str("\n]");
    s
}

/// `{a="b", c="d"}` for any label set (Prometheus' `Labels.String()`).
fn braces(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|x| format!("{}={:?}", x.name, x.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Prefixes every line but the first with `prefix` (promtool's `indentLines`).
fn indent(s: &str, prefix: &str) -> String {
    s.replace('\n', &format!("\n{prefix}"))
}

/// `start_timestamp`: RFC 3339 or Unix seconds; returns milliseconds.
fn parse_start(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0).round() as i64);
    }
    parse_rfc3339(s).ok_or_else(|| format!("cannot parse {s:?} as RFC 3339 or Unix seconds"))
}

/// Minimal RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        let padded = format!("{:0<3}", &digits[..digits.len().min(3)]);
        frac_ms = padded.parse().ok()?;
    }
    let offset_s = match s.get(i..)? {
        "Z" | "z" => 0,
        tz => {
            let sign = match tz.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = tz.get(1..3)?.parse().ok()?;
            let om: i64 = tz.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se - offset_s) * 1000) + frac_ms)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Appends the input series: value i at `start + i * interval`.
fn load_series(
    db: &Db,
    input: &[InputSeries],
    start_ms: i64,
    interval: Duration,
) -> Result<(), String> {
    let step = interval.as_millis() as i64;
    for s in input {
        let labels =
            parse_series(&s.series).map_err(|e| format!("parse series {:?}: {e}", s.series))?;
        let values = expand_values(&s.values).map_err(|e| format!("series {:?}: {e}", s.series))?;
        let mut floats = Vec::new();
        let mut hists = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            let t = start_ms + i as i64 * step;
            match v {
                SeqValue::Omitted => {}
                SeqValue::Float(v) => floats.push(Sample { t, v }),
                SeqValue::Histogram(h) => hists.push(HistogramSample { t, h: *h }),
            }
        }
        if !floats.is_empty() {
            db.append(&[(labels.clone(), floats)])
                .map_err(|e| format!("loading series {:?}: {e}", s.series))?;
        }
        if !hists.is_empty() {
            db.append_histograms(&[(labels, hists)])
                .map_err(|e| format!("loading series {:?}: {e}", s.series))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
