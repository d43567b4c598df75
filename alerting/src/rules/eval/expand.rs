//! Expansion of alert label and annotation templates for the evaluator.
//!
//! This is the single place where the evaluator turns a template into text. Until the
//! Go-compatible engine (`crate::template`) is merged, it understands the common subset of Go
//! templates used in alerting rules: `{{ $labels.name }}`, `{{ .Labels.name }}`,
//! `{{ $value }}` / `{{ .Value }}`, `{{ $externalLabels.name }}`, `{{ $externalURL }}`, and
//! the `-` trim markers. Anything else is reported as an error, which the evaluator renders
//! as Prometheus does: `<error expanding template: …>`.

use std::collections::BTreeMap;

/// What a template can refer to, as Prometheus' `AlertTemplateData`.
pub(crate) struct TemplateInput<'a> {
    /// The series' labels (including `__name__` when the result has one).
    pub labels: &'a BTreeMap<String, String>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
}

/// Expands `text`; `Err` carries the reason for `<error expanding template: …>`.
pub(crate) fn expand(name: &str, text: &str, input: &TemplateInput<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let mut literal = &rest[..open];
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("template: {name}:1: unclosed action"))?;
        let mut action = &after[..close];
        rest = &after[close + 2..];
        if let Some(a) = action.strip_prefix('-') {
            literal = literal.trim_end();
            action = a;
        }
        let trim_right = action.ends_with('-') && action.trim_end_matches('-').ends_with(' ');
        if trim_right {
            action = &action[..action.len() - 1];
        }
        out.push_str(literal);
        out.push_str(&eval_action(name, action.trim(), input)?);
        if trim_right {
            rest = rest.trim_start();
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn eval_action(name: &str, action: &str, input: &TemplateInput<'_>) -> Result<String, String> {
    let field =
        |map: &BTreeMap<String, String>, key: &str| map.get(key).cloned().unwrap_or_default();
    if let Some(k) = action
        .strip_prefix("$labels.")
        .or_else(|| action.strip_prefix(".Labels."))
    {
        return Ok(field(input.labels, k));
    }
    if let Some(k) = action
        .strip_prefix("$externalLabels.")
        .or_else(|| action.strip_prefix(".ExternalLabels."))
    {
        return Ok(field(input.external_labels, k));
    }
    match action {
        "$value" | ".Value" => Ok(go_float(input.value)),
        "$externalURL" | ".ExternalURL" => Ok(input.external_url.to_string()),
        "" => Err(format!("template: {name}:1: missing value for command")),
        other => Err(format!(
            "template: {name}:1: unsupported action {{{{{other}}}}}"
        )),
    }
}

/// Go's `fmt.Sprint(float64)`: `strconv.FormatFloat(v, 'g', -1, 64)` (shortest digits, exponent
/// form when the decimal exponent is below -4 or at least 6, as Go decides for shortest `%g`).
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits: `d.ddde±x`.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        labels: &'a BTreeMap<String, String>,
        ext: &'a BTreeMap<String, String>,
    ) -> TemplateInput<'a> {
        TemplateInput {
            labels,
            external_labels: ext,
            external_url: "http://sextant:9090",
            value: 0.5,
        }
    }

    #[test]
    fn expands_labels_value_and_external_labels() {
        let labels = BTreeMap::from([("instance".to_string(), "a:1".to_string())]);
        let ext = BTreeMap::from([("cluster".to_string(), "eu".to_string())]);
        let got = expand(
            "t",
            "{{ $labels.instance }} at {{$value}} in {{ $externalLabels.cluster }} ({{ .Labels.missing }}) {{ $externalURL }}",
            &input(&labels, &ext),
        );
        assert_eq!(
            got.as_deref(),
            Ok("a:1 at 0.5 in eu () http://sextant:9090")
        );
    }

    #[test]
    fn trim_markers_and_errors() {
        let empty = BTreeMap::new();
        assert_eq!(
            expand("t", "a  {{- $value -}}  b", &input(&empty, &empty)).as_deref(),
            Ok("a0.5b")
        );
        assert!(expand("t", "{{ $value ", &input(&empty, &empty)).is_err());
        assert!(expand("t", "{{ nosuch }}", &input(&empty, &empty)).is_err());
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.25), "0.25");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(100000.0), "100000");
    }
}
