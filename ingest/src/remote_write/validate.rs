//! Validation of one remote-write series: what makes it unstorable, and why.

use sextant_storage::METRIC_NAME;
#[cfg(test)]
use sextant_storage::{Label, Labels};

#[cfg(test)]
use super::proto;

/// Limits on one series' labels, configurable per server.
#[derive(Clone, Debug)]
pub struct RemoteWriteLimits {
    /// Largest accepted body after snappy decompression (default 32 MiB).
    pub max_decompressed_bytes: usize,
    /// Most labels on one series, `__name__` included (default 64).
    pub max_labels_per_series: usize,
    /// Longest label name in bytes (default 1024).
    pub max_label_name_bytes: usize,
    /// Longest label value in bytes (default 4096).
    pub max_label_value_bytes: usize,
}

impl Default for RemoteWriteLimits {
    fn default() -> Self {
        RemoteWriteLimits {
            max_decompressed_bytes: 32 * 1024 * 1024,
            max_labels_per_series: 64,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 4096,
        }
    }
}

/// Why a whole series was refused. `reason()` is the metric label; `Display` the message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error("series has no labels")]
    NoLabels,
    #[error("series has no metric name (empty or missing __name__)")]
    MissingMetricName,
    #[error("label {index} has an empty name")]
    EmptyLabelName { index: usize },
    #[error("label name is not valid UTF-8: {0:?}")]
    InvalidUtf8Name(String),
    #[error("value of label {name:?} is not valid UTF-8: {lossy:?}")]
    InvalidUtf8Value { name: String, lossy: String },
    #[error("labels are not sorted by name: {before:?} comes before {after:?}")]
    NotSorted { before: String, after: String },
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    #[error("series has {count} labels, more than the limit of {limit}")]
    TooManyLabels { count: usize, limit: usize },
    #[error("label name {name:?} is {len} bytes long, more than the limit of {limit}")]
    NameTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("value of label {name:?} is {len} bytes long, more than the limit of {limit}")]
    ValueTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
}

impl SeriesError {
    pub fn reason(&self) -> &'static str {
        match self {
            SeriesError::NoLabels | SeriesError::MissingMetricName => "missing_metric_name",
            SeriesError::EmptyLabelName { .. } => "empty_label_name",
            SeriesError::InvalidUtf8Name(_) | SeriesError::InvalidUtf8Value { .. } => {
                "invalid_utf8"
            }
            SeriesError::NotSorted { .. } => "labels_not_sorted",
            SeriesError::Duplicate(_) => "duplicate_label_name",
            SeriesError::TooManyLabels { .. } => "too_many_labels",
            SeriesError::NameTooLong { .. } => "label_name_too_long",
            SeriesError::ValueTooLong { .. } => "label_value_too_long",
        }
    }
}

/// `a < b`, deciding on the first byte when it differs (label names usually do).
#[inline]
fn sorts_before(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

/// What is wrong with one label, before it is described.
#[derive(Clone, Copy)]
enum Defect {
    EmptyName,
    Utf8Name,
    Utf8Value,
    NameTooLong,
    ValueTooLong,
    Order,
}

/// Checks one series' labels as they arrive, in wire order, without copying them.
///
/// Gives the same verdict as checking the whole list at once: no labels, then too many labels,
/// then the first defective label in order, then a missing metric name. Labels with empty
/// values pass but are not handed back, as Prometheus treats an empty value as an absent label.
pub struct LabelCheck<'a, 'l> {
    limits: &'l RemoteWriteLimits,
    count: usize,
    prev: &'a [u8],
    has_name: bool,
    error: Option<SeriesError>,
}

impl<'a, 'l> LabelCheck<'a, 'l> {
    pub fn new(limits: &'l RemoteWriteLimits) -> Self {
        LabelCheck {
            limits,
            count: 0,
            prev: &[],
            has_name: false,
            error: None,
        }
    }

    /// Takes the next label; returns it as strings when it is valid and has a value. `text`
    /// is the same name and value when the caller already knows them to be UTF-8.
    #[inline]
    pub fn push(
        &mut self,
        name: &'a [u8],
        value: &'a [u8],
        text: Option<(&'a str, &'a str)>,
    ) -> Option<(&'a str, &'a str)> {
        let index = self.count;
        self.count += 1;
        if self.error.is_some() || self.count > self.limits.max_labels_per_series {
            return None;
        }
        match self.check(index, name, value, text) {
            Ok(pair) => pair,
            Err(defect) => {
                self.error = Some(self.describe(defect, index, name, value));
                None
            }
        }
    }

    /// The hot path: a cheap verdict, with the message built only on failure.
    #[inline]
    fn check(
        &mut self,
        index: usize,
        name: &'a [u8],
        value: &'a [u8],
        text: Option<(&'a str, &'a str)>,
    ) -> Result<Option<(&'a str, &'a str)>, Defect> {
        if name.is_empty() {
            return Err(Defect::EmptyName);
        }
        let (name, value) = match text {
            Some(t) => t,
            None => (
                std::str::from_utf8(name).map_err(|_| Defect::Utf8Name)?,
                std::str::from_utf8(value).map_err(|_| Defect::Utf8Value)?,
            ),
        };
        if name.len() > self.limits.max_label_name_bytes {
            return Err(Defect::NameTooLong);
        }
        if value.len() > self.limits.max_label_value_bytes {
            return Err(Defect::ValueTooLong);
        }
        if index > 0 && !sorts_before(self.prev, name.as_bytes()) {
            return Err(Defect::Order);
        }
        self.prev = name.as_bytes();
        if name == METRIC_NAME {
            self.has_name = !value.is_empty();
        }
        Ok((!value.is_empty()).then_some((name, value)))
    }

    #[cold]
    #[inline(never)]
    fn describe(&self, defect: Defect, index: usize, name: &[u8], value: &[u8]) -> SeriesError {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match defect {
            Defect::EmptyName => SeriesError::EmptyLabelName { index },
            Defect::Utf8Name => SeriesError::InvalidUtf8Name(lossy(name)),
            Defect::Utf8Value => SeriesError::InvalidUtf8Value {
                name: lossy(name),
                lossy: lossy(value),
            },
            Defect::NameTooLong => SeriesError::NameTooLong {
                name: truncate(&String::from_utf8_lossy(name)),
                len: name.len(),
                limit: self.limits.max_label_name_bytes,
            },
            Defect::ValueTooLong => SeriesError::ValueTooLong {
                name: lossy(name),
                len: value.len(),
                limit: self.limits.max_label_value_bytes,
            },
            Defect::Order if self.prev == name => SeriesError::Duplicate(lossy(name)),
            Defect::Order => SeriesError::NotSorted {
                before: lossy(self.prev),
                after: lossy(name),
            },
        }
    }

    /// The verdict on the whole series.
    pub fn finish(self) -> Result<(), SeriesError> {
        if self.count == 0 {
            return Err(SeriesError::NoLabels);
        }
        if self.count > self.limits.max_labels_per_series {
            return Err(SeriesError::TooManyLabels {
                count: self.count,
                limit: self.limits.max_labels_per_series,
            });
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.has_name {
            return Err(SeriesError::MissingMetricName);
        }
        Ok(())
    }
}

/// Checks a series' labels and converts them (the reference the wire decoder is tested against).
#[cfg(test)]
pub fn series_labels(
    labels: &[proto::Label],
    limits: &RemoteWriteLimits,
) -> Result<Labels, SeriesError> {
    let mut check = LabelCheck::new(limits);
    let mut out = Vec::with_capacity(labels.len());
    for l in labels {
        if let Some((n, v)) = check.push(&l.name, &l.value, None) {
            out.push(Label::new(n, v));
        }
    }
    check.finish()?;
    Ok(Labels::from_sorted(out))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: &[u8], v: &[u8]) -> proto::Label {
        proto::Label {
            name: n.to_vec(),
            value: v.to_vec(),
        }
    }

    #[test]
    fn each_defect_has_its_reason() {
        let lim = RemoteWriteLimits {
            max_labels_per_series: 3,
            max_label_name_bytes: 8,
            max_label_value_bytes: 8,
            ..Default::default()
        };
        let cases: Vec<(Vec<proto::Label>, &str)> = vec![
            (vec![], "missing_metric_name"),
            (vec![l(b"job", b"x")], "missing_metric_name"),
            (
                vec![l(b"__name__", b""), l(b"job", b"x")],
                "missing_metric_name",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"", b"x")],
                "empty_label_name",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"job", b"\xff")],
                "invalid_utf8",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"\xc3\x28", b"x")],
                "invalid_utf8",
            ),
            (
                vec![l(b"job", b"x"), l(b"__name__", b"up")],
                "labels_not_sorted",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"a", b"1"), l(b"a", b"2")],
                "duplicate_label_name",
            ),
            (
                vec![
                    l(b"__name__", b"up"),
                    l(b"a", b"1"),
                    l(b"b", b"1"),
                    l(b"c", b"1"),
                ],
                "too_many_labels",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"abcdefghi", b"1")],
                "label_name_too_long",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"a", b"123456789")],
                "label_value_too_long",
            ),
        ];
        for (labels, reason) in cases {
            let err = series_labels(&labels, &lim).unwrap_err();
            assert_eq!(err.reason(), reason, "{err}");
        }
    }

    #[test]
    fn empty_values_are_dropped() {
        let got = series_labels(
            &[l(b"__name__", b"up"), l(b"a", b""), l(b"job", b"x")],
            &RemoteWriteLimits::default(),
        )
        .unwrap();
        assert_eq!(got.to_string(), r#"up{job="x"}"#);
    }
}
