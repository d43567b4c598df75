//! Values flowing through template pipelines, with Go's truthiness, type names and `%v`
//! printing.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::gofmt::float_v;
use super::QuerySample;

/// A template value. Go types are named in comments.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// A nil interface (`<no value>` when printed), e.g. a missing `args` key.
    Nil,
    Bool(bool),
    /// `int`
    Int(i64),
    /// `float64`
    Float(f64),
    Str(String),
    /// `map[string]string` (label sets): a missing key reads as "".
    Labels(Rc<BTreeMap<String, String>>),
    /// `map[string]interface{}` (the result of `args`).
    Map(Rc<BTreeMap<String, Value>>),
    /// `*sample` of a query result.
    Sample(Rc<QuerySample>),
    /// `queryResult` (a slice of samples).
    Samples(Rc<Vec<QuerySample>>),
    /// `time.Time` as milliseconds since the epoch (Prometheus' `toTime` has ms precision).
    Time(i64),
    /// `time.Duration` in nanoseconds.
    Duration(i64),
    /// The root data struct (`.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value`).
    Root(Rc<RootData>),
}

/// The fields of the root data (Prometheus' `tmplData`).
#[derive(Debug)]
pub(crate) struct RootData {
    pub labels: Rc<BTreeMap<String, String>>,
    pub external_labels: Rc<BTreeMap<String, String>>,
    pub external_url: String,
    pub value: f64,
}

impl Value {
    /// Go's type name, for error messages and `%!verb(type=value)`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Labels(_) => "map[string]string",
            Value::Map(_) => "map[string]interface {}",
            Value::Sample(_) => "*template.sample",
            Value::Samples(_) => "template.queryResult",
            Value::Time(_) => "*time.Time",
            Value::Duration(_) => "time.Duration",
            Value::Root(_) => "*template.tmplData",
        }
    }

    /// Go's `truth`: false, 0, "", nil and empty collections are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Labels(m) => !m.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Samples(v) => !v.is_empty(),
            Value::Duration(d) => *d != 0,
            Value::Sample(_) | Value::Time(_) | Value::Root(_) => true,
        }
    }

    /// How `{{.}}` / `fmt.Sprint` prints the value.
    pub fn print(&self) -> String {
        match self {
            Value::Nil => "<no value>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => float_v(*f),
            Value::Str(s) => s.clone(),
            Value::Labels(m) => print_labels(m),
            Value::Map(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.print()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
            Value::Sample(s) => format!("&{{{} {}}}", print_labels(&s.labels), float_v(s.value)),
            Value::Samples(v) => {
                let parts: Vec<String> = v
                    .iter()
                    .map(|s| format!("&{{{} {}}}", print_labels(&s.labels), float_v(s.value)))
                    .collect();
                format!("[{}]", parts.join(" "))
            }
            Value::Time(ms) => go_time_string(*ms),
            Value::Duration(ns) => go_duration_string(*ns),
            Value::Root(r) => format!(
                "&{{{} {} {} {}}}",
                print_labels(&r.labels),
                print_labels(&r.external_labels),
                r.external_url,
                float_v(r.value)
            ),
        }
    }

    /// Reads field `name` (`.Name` on structs, a key on maps).
    pub fn field(&self, name: &str) -> Result<Value, String> {
        match self {
            Value::Root(r) => match name {
                "Labels" => Ok(Value::Labels(r.labels.clone())),
                "ExternalLabels" => Ok(Value::Labels(r.external_labels.clone())),
                "ExternalURL" => Ok(Value::Str(r.external_url.clone())),
                "Value" => Ok(Value::Float(r.value)),
                _ => Err(format!(
                    "can't evaluate field {name} in type *template.tmplData"
                )),
            },
            Value::Sample(s) => match name {
                "Labels" => Ok(Value::Labels(Rc::new(s.labels.clone()))),
                "Value" => Ok(Value::Float(s.value)),
                _ => Err(format!(
                    "can't evaluate field {name} in type *template.sample"
                )),
            },
            Value::Labels(m) => Ok(Value::Str(m.get(name).cloned().unwrap_or_default())),
            Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Nil)),
            Value::Nil => Err(format!("nil pointer evaluating interface {{}}.{name}")),
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    /// The value as a number, if it is one (ints widen to float).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

fn print_labels(m: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", parts.join(" "))
}

/// Go's `time.Time.String()` for a UTC time: `2015-06-23 13:19:44.128 +0000 UTC`.
pub(crate) fn go_time_string(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac_ms = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if frac_ms != 0 {
        let f = format!("{frac_ms:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `150ms`, `0s`.
pub(crate) fn go_duration_string(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1u64)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", frac_str(u, div));
    }
    let h = u / 3_600_000_000_000;
    let rem = u % 3_600_000_000_000;
    let m = rem / 60_000_000_000;
    let s_ns = rem % 60_000_000_000;
    let secs = frac_str(s_ns, 1_000_000_000);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

fn frac_str(v: u64, div: u64) -> String {
    let int = v / div;
    let frac = v % div;
    if frac == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{frac:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}
